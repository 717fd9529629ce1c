"""The official qdrant-client against Strata, unchanged: the everyday scenario on bigann10k, over
REST and over gRPC (`prefer_grpc=True`: Qdrant's `qdrant.*` services)."""

import time

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models


def make_client(server, grpc):
    if not grpc:
        return QdrantClient(url=server.http, api_key=server.admin_token, timeout=120)
    host, port = server.grpc.rsplit(":", 1)
    http_port = int(server.http.rsplit(":", 1)[1])
    return QdrantClient(host=host, port=http_port, grpc_port=int(port), prefer_grpc=True, https=False,
                        api_key=server.admin_token, timeout=120)


def recall(found, truth):
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / sum(len(t) for t in truth)


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_everyday_scenario(server, bigann, grpc):
    base, queries, truth = bigann
    client = make_client(server, grpc)
    rest = make_client(server, False)
    name = "bigann"
    assert client.create_collection(name, vectors_config=models.VectorParams(size=128, distance=models.Distance.EUCLID),
                                    hnsw_config=models.HnswConfigDiff(m=16, ef_construct=100))
    assert client.collection_exists(name)
    assert name in [c.name for c in client.get_collections().collections]

    # Upsert in batches: the points list form, and the columnar batch form.
    for start in range(0, 5000, 1000):
        ids = range(start, start + 1000)
        res = client.upsert(name, wait=True, points=[
            models.PointStruct(id=i, vector=base[i].tolist(), payload={"bucket": i % 10, "i": i}) for i in ids])
        assert res.status == models.UpdateStatus.COMPLETED
    for start in range(5000, 10000, 1000):
        ids = list(range(start, start + 1000))
        client.upsert(name, wait=True, points=models.Batch(
            ids=ids, vectors=[base[i].tolist() for i in ids], payloads=[{"bucket": i % 10, "i": i} for i in ids]))
    info = client.get_collection(name)
    assert info.points_count == 10000
    assert info.config.params.vectors.size == 128

    # Search without a filter: recall@10 against the shipped ground truth.
    found = [[p.id for p in client.query_points(name, query=q.tolist(), limit=10).points] for q in queries]
    r = recall(found, truth[:, :10].tolist())
    assert r >= 0.95, r
    # Over gRPC exactly what REST answers for the same searches (ids and scores).
    for q in queries[:20]:
        a = client.query_points(name, query=q.tolist(), limit=10).points
        b = rest.query_points(name, query=q.tolist(), limit=10).points
        assert [(p.id, round(p.score, 4)) for p in a] == [(p.id, round(p.score, 4)) for p in b]

    # With a filter keeping 10 %: every hit matches; recall against an exact filtered scan.
    flt = models.Filter(must=[models.FieldCondition(key="bucket", match=models.MatchValue(value=3))])
    keep = np.array([i % 10 == 3 for i in range(10000)])
    exact = []
    for q in queries:
        d = ((base - q) ** 2).sum(axis=1)
        d[~keep] = np.inf
        exact.append(np.argsort(d, kind="stable")[:10].tolist())
    found = []
    for q in queries:
        pts = client.query_points(name, query=q.tolist(), query_filter=flt, limit=10, with_payload=True).points
        assert all(p.payload["bucket"] == 3 for p in pts)
        found.append([p.id for p in pts])
    r = recall(found, exact)
    assert r >= 0.95, r

    # Batch query, score threshold, offset, search params.
    batch = client.query_batch_points(name, requests=[
        models.QueryRequest(query=queries[0].tolist(), limit=5),
        models.QueryRequest(query=queries[1].tolist(), limit=3, filter=flt, params=models.SearchParams(hnsw_ef=200)),
    ])
    assert [len(b.points) for b in batch] == [5, 3]
    top = client.query_points(name, query=queries[0].tolist(), limit=10).points
    page2 = client.query_points(name, query=queries[0].tolist(), limit=5, offset=5).points
    assert [p.id for p in page2] == [p.id for p in top[5:]]
    near = client.query_points(name, query=queries[0].tolist(), limit=10, score_threshold=top[2].score).points
    assert [p.id for p in near] == [p.id for p in top[:3]]
    assert abs(top[0].score - float(np.sqrt(((base[top[0].id] - queries[0]) ** 2).sum()))) < 1e-2
    # Walking the full vectors instead of their one-byte codes: the same neighbours, exact scores.
    full = client.query_points(name, query=queries[0].tolist(), limit=10, search_params=models.SearchParams(
        quantization=models.QuantizationSearchParams(ignore=True))).points
    assert [(p.id, round(p.score, 3)) for p in full] == [(p.id, round(p.score, 3)) for p in top]
    # Without the re-score (indexed segments answer with distances over the codes): nearly the
    # same neighbours, scores within the codes' error (half a step per component, ≤ √128 · 0.5),
    # and — once the background compaction has indexed the points — not all exact.
    no_rescore = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=False))
    deadline = time.time() + 60
    while True:
        inexact = 0
        for q in queries[:5]:
            exact_score = {p.id: p.score for p in client.query_points(name, query=q.tolist(), limit=10).points}
            approx = client.query_points(name, query=q.tolist(), limit=10, search_params=no_rescore).points
            assert len([p for p in approx if p.id in exact_score]) >= 8, (approx, exact_score)
            for p in approx:
                if p.id in exact_score:
                    assert abs(p.score - exact_score[p.id]) <= 6 + 0.02 * exact_score[p.id], (p, exact_score)
                    inexact += round(p.score, 3) != round(exact_score[p.id], 3)
        if inexact > 0:
            break
        assert time.time() < deadline, "rescore=False never returned a score over the codes"
        time.sleep(0.5)
    bad = httpx.post(f"{server.http}/collections/{name}/points/query", headers={"api-key": server.admin_token},
                     json={"query": queries[0].tolist(), "params": {"quantization": {"rescore": "no"}}})
    assert bad.status_code == 400 and "params.quantization.rescore" in bad.json()["status"]["error"], bad.text
    bad = httpx.post(f"{server.http}/collections/{name}/points/query", headers={"api-key": server.admin_token},
                     json={"query": queries[0].tolist(), "params": {"quantization": {"oversampling": 0.5}}})
    assert bad.status_code == 400 and "params.quantization.oversampling" in bad.json()["status"]["error"], bad.text

    # The older search endpoints other SDKs still call.
    headers = {"api-key": server.admin_token}
    old = httpx.post(f"{server.http}/collections/{name}/points/search", headers=headers,
                     json={"vector": queries[0].tolist(), "limit": 10}).json()["result"]
    assert [p["id"] for p in old] == [p.id for p in top]
    olds = httpx.post(f"{server.http}/collections/{name}/points/search/batch", headers=headers,
                      json={"searches": [{"vector": queries[0].tolist(), "limit": 2}, {"vector": queries[1].tolist(), "limit": 1}]}).json()["result"]
    assert [len(x) for x in olds] == [2, 1]

    # Retrieve (POST and GET by id).
    recs = client.retrieve(name, ids=[0, 1, 9999], with_vectors=True)
    assert sorted(r.id for r in recs) == [0, 1, 9999]
    assert all(np.allclose(r.vector, base[r.id]) for r in recs)
    one = httpx.get(f"{server.http}/collections/{name}/points/42", headers=headers).json()["result"]
    assert one["payload"] == {"bucket": 2, "i": 42}

    # Scroll through every point.
    seen, offset = [], None
    while True:
        pts, offset = client.scroll(name, limit=999, offset=offset, with_payload=False)
        seen += [p.id for p in pts]
        if offset is None:
            break
    assert seen == list(range(10000))

    # Count.
    assert client.count(name).count == 10000
    assert client.count(name, count_filter=flt).count == 1000

    # Set payload keeps the other keys.
    client.set_payload(name, payload={"tag": "x"}, points=[5])
    assert client.retrieve(name, ids=[5])[0].payload == {"bucket": 5, "i": 5, "tag": "x"}

    # Delete by id, then by filter.
    client.delete(name, points_selector=models.PointIdsList(points=[0, 1, 2]))
    assert client.count(name).count == 9997
    client.delete(name, points_selector=models.FilterSelector(filter=flt))
    assert client.count(name).count == 8997
    assert client.count(name, count_filter=flt).count == 0

    # Delete the collection.
    assert client.delete_collection(name)
    assert not client.collection_exists(name)
    if grpc:
        # The calls really went through Qdrant's gRPC services.
        metrics = httpx.get(f"{server.metrics}/metrics").text
        for method in ["qdrant.Collections/Create", "qdrant.Points/Upsert", "qdrant.Points/Query",
                       "qdrant.Points/QueryBatch", "qdrant.Points/Scroll", "qdrant.Points/Count",
                       "qdrant.Points/Get", "qdrant.Points/Delete", "qdrant.Points/SetPayload"]:
            assert f'method="{method}",code="Ok"' in metrics, method


def test_errors_name_the_problem(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("c", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    h = {"api-key": server.admin_token}
    r = httpx.put(f"{server.http}/collections/c/points", headers=h, json={"points": [{"id": 1, "vector": [1, 2, 3]}]})
    assert r.status_code == 400 and "points[0].vector: expected 4 dimensions, got 3" in r.json()["status"]["error"]
    r = httpx.put(f"{server.http}/collections/c/points", headers=h, json={"points": [{"id": 1, "vector": [1, 2, 3, 4], "payload": [1]}]})
    assert r.status_code == 400 and "points[0].payload" in r.json()["status"]["error"]
    r = httpx.post(f"{server.http}/collections/c/points/query", headers=h, json={"query": {"discover": {"target": [1.0]}}})
    assert r.status_code == 501 and "query.discover" in r.json()["status"]["error"]
    r = httpx.post(f"{server.http}/collections/c/points/query", headers=h, json={"query": [1, 2, 3, 4], "limit": 1000000})
    assert r.status_code == 400 and "limit" in r.json()["status"]["error"]
    r = httpx.post(f"{server.http}/collections/c/points/scroll", headers=h, json={"filter": {"must": [{"key": "a", "geo_radius": {}}]}})
    assert r.status_code == 400 and "geo_radius" in r.json()["status"]["error"]
    r = httpx.put(f"{server.http}/collections/d", headers=h, json={"vectors": {"size": 4, "distance": "Cosine"}, "quantization_config": {"scalar": {}}})
    assert r.status_code == 501 and "quantization_config" in r.json()["status"]["error"]
    r = httpx.get(f"{server.http}/collections/nope", headers=h)
    assert r.status_code == 404
    r = httpx.put(f"{server.http}/collections/c/points", headers={**h, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and "invalid JSON" in r.json()["status"]["error"]
