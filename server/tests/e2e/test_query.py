"""The universal query API beyond plain nearest search, through the official client: MMR checked
against the formula written out here, query by point id, and payload index routes."""

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models


def similarity(distance, a, b):
    """Qdrant's "larger is closer" similarity: dot (Cosine on unit vectors, Dot), -|a-b|² (Euclid)."""
    if distance == models.Distance.EUCLID:
        return -float(((a - b) ** 2).sum())
    return float(a @ b)


def reference_mmr(distance, q, vectors, diversity, k):
    rel = [similarity(distance, q, v) for v in vectors]
    picked = [int(np.argmax(rel))] if len(vectors) else []
    while len(picked) < min(k, len(vectors)):
        scores = {i: (1 - diversity) * rel[i] - diversity * max(similarity(distance, vectors[i], vectors[p]) for p in picked)
                  for i in range(len(vectors)) if i not in picked}
        picked.append(max(scores, key=lambda i: (scores[i], -i)))
    return picked


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.DOT])
def test_mmr_matches_the_formula(server, distance):
    client = QdrantClient(url=server.http, api_key=server.admin_token, timeout=60)
    name = f"mmr_{distance.value.lower()}"
    client.create_collection(name, vectors_config=models.VectorParams(size=8, distance=distance))
    rng = np.random.default_rng(3)
    # Clusters of near-duplicates: plain nearest search returns one cluster, MMR spreads out.
    centers = rng.standard_normal((10, 8)).astype(np.float32)
    vectors = np.concatenate([c + 0.05 * rng.standard_normal((30, 8)).astype(np.float32) for c in centers])
    client.upsert(name, points=[models.PointStruct(id=i, vector=v.tolist(), payload={"cluster": i // 30})
                                for i, v in enumerate(vectors)])
    for trial in range(5):
        q = (centers[trial] + 0.3 * rng.standard_normal(8)).astype(np.float32)
        diversity = [0.0, 0.3, 0.5, 0.8, 1.0][trial]
        cands = client.query_points(name, query=q.tolist(), limit=40, with_vectors=True, with_payload=True,
                                    search_params=models.SearchParams(exact=True)).points
        stored = np.asarray([c.vector for c in cands], dtype=np.float32)
        qq = q / np.linalg.norm(q) if distance == models.Distance.COSINE else q
        want = [cands[i].id for i in reference_mmr(distance, qq, stored, diversity, 10)]
        got = client.query_points(name, query=models.NearestQuery(nearest=q.tolist(), mmr=models.Mmr(diversity=diversity, candidates_limit=40)),
                                  limit=10, search_params=models.SearchParams(exact=True), with_payload=True).points
        assert [p.id for p in got] == want, (distance, diversity)
        # Each hit keeps its similarity score.
        scores = {c.id: c.score for c in cands}
        assert all(p.score == pytest.approx(scores[p.id], rel=1e-5, abs=1e-5) for p in got)
        if diversity >= 0.5:
            spread = len({p.payload["cluster"] for p in got})
            assert spread > len({c.payload["cluster"] for c in cands[:10]}), "MMR spreads over more clusters"
    # offset skips the first picks; a filter restricts the candidates.
    q = centers[0].tolist()
    mmr = models.NearestQuery(nearest=q, mmr=models.Mmr(diversity=0.5, candidates_limit=50))
    ten = [p.id for p in client.query_points(name, query=mmr, limit=10).points]
    assert [p.id for p in client.query_points(name, query=mmr, limit=5, offset=5).points] == ten[5:]
    flt = models.Filter(must=[models.FieldCondition(key="cluster", match=models.MatchValue(value=4))])
    assert {p.payload["cluster"] for p in client.query_points(name, query=mmr, query_filter=flt, limit=5, with_payload=True).points} == {4}
    # Errors name the field.
    h = {"api-key": server.admin_token}
    for bad, field in [({"diversity": 1.5}, "diversity"), ({"candidates_limit": 0}, "candidates_limit"),
                       ({"candidates_limit": 100000}, "candidates_limit"), ({"lambda": 1}, "lambda")]:
        r = httpx.post(f"{server.http}/collections/{name}/points/query", headers=h,
                       json={"query": {"nearest": q, "mmr": bad}})
        assert r.status_code == 400 and field in r.json()["status"]["error"], r.text
    r = httpx.post(f"{server.http}/collections/{name}/points/query", headers=h, json={"query": {"recommend": {"positive": [1]}}})
    assert r.status_code == 501 and "query.recommend" in r.json()["status"]["error"]


def test_query_by_id_leaves_the_example_out(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("byid", vectors_config=models.VectorParams(size=2, distance=models.Distance.EUCLID))
    client.upsert("byid", points=[models.PointStruct(id=i, vector=[float(i), 0.0]) for i in range(10)])
    # Nearest to point 4 (at distance 1: 3, 5; at 2: 2 and 6, ties by id), without 4 itself.
    assert [p.id for p in client.query_points("byid", query=4, limit=3).points] == [3, 5, 2]
    mmr = client.query_points("byid", query=models.NearestQuery(nearest=4, mmr=models.Mmr(diversity=0.0)), limit=2).points
    assert sorted(p.id for p in mmr) == [3, 5]


def test_payload_index_routes(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("idx", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert("idx", points=[models.PointStruct(id=i, vector=[1.0, float(i)], payload={"city": f"c{i % 3}", "n": i} if i % 2 else {"n": i})
                                 for i in range(20)])
    client.create_payload_index("idx", "city", models.PayloadSchemaType.KEYWORD)
    client.create_payload_index("idx", "n", models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=True))
    schema = client.get_collection("idx").payload_schema
    assert schema["city"].data_type == models.PayloadSchemaType.KEYWORD and schema["city"].points == 10
    assert schema["n"].data_type == models.PayloadSchemaType.INTEGER and schema["n"].points == 20
    client.delete_payload_index("idx", "city")
    assert set(client.get_collection("idx").payload_schema) == {"n"}
    client.delete_payload_index("idx", "city")  # not indexed: still fine
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/idx/index"
    for body, status, field in [({"field_name": "x"}, 400, "field_schema"),
                                ({"field_name": "x", "field_schema": "words"}, 400, "field_schema"),
                                ({"field_name": "x", "field_schema": "text"}, 501, "field_schema: text"),
                                ({"field_name": "", "field_schema": "keyword"}, 400, "field_name"),
                                ({"field_name": "x", "field_schema": {"type": "keyword", "bogus": 1}}, 400, "bogus"),
                                ({"field_name": "x", "field_schema": {"type": "keyword", "is_tenant": "yes"}}, 400, "is_tenant")]:
        r = httpx.put(url, headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], r.text
    r = httpx.put(f"{server.http}/collections/nope/index", headers=h, json={"field_name": "x", "field_schema": "keyword"})
    assert r.status_code == 404
    # A read-only token cannot change indexes.
    ro = server.token(access="r")
    r = httpx.put(url, headers={"authorization": f"Bearer {ro}"}, json={"field_name": "x", "field_schema": "keyword"})
    assert r.status_code == 403
