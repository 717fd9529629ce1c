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
    r = httpx.post(f"{server.http}/collections/{name}/points/query", headers=h, json={"query": {"discover": {"target": [1.0]}}})
    assert r.status_code == 501 and "query.discover" in r.json()["status"]["error"]


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


def test_facet_counts_indexed_values(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("facet", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    rng = np.random.default_rng(5)
    colors = ["red", "green", "blue", "black"]
    payloads = []
    for i in range(300):
        p = {"color": colors[int(rng.integers(0, 4)) if i % 7 else 0], "size": int(rng.integers(0, 5)), "even": i % 2 == 0}
        if i % 11 == 0:
            p["color"] = ["red", "blue", "red"]  # counted once under each value
        if i % 13 == 0:
            del p["color"]
        payloads.append(p)
    half = len(payloads) // 2
    client.upsert("facet", points=[models.PointStruct(id=i, vector=[1.0, 0.0], payload=p) for i, p in enumerate(payloads[:half])])
    # No index yet: facet is refused naming the key.
    h = {"api-key": server.admin_token}
    r = httpx.post(f"{server.http}/collections/facet/facet", headers=h, json={"key": "color"})
    assert r.status_code == 400 and "color" in r.json()["status"]["error"], r.text
    client.create_payload_index("facet", "color", models.PayloadSchemaType.KEYWORD)
    client.create_payload_index("facet", "size", models.PayloadSchemaType.INTEGER)
    client.create_payload_index("facet", "even", models.PayloadSchemaType.BOOL)
    client.upsert("facet", points=[models.PointStruct(id=half + i, vector=[1.0, 0.0], payload=p) for i, p in enumerate(payloads[half:])])
    client.delete("facet", points_selector=models.PointIdsList(points=[1, 2, 3]))
    live = {i: p for i, p in enumerate(payloads) if i not in (1, 2, 3)}

    def reference(key, keep=lambda p: True, limit=10):
        counts = {}
        for p in live.values():
            if not keep(p) or key not in p:
                continue
            vals = p[key] if isinstance(p[key], list) else [p[key]]
            for v in set(vals):
                counts[v] = counts.get(v, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    got = client.facet("facet", "color")
    assert [(h.value, h.count) for h in got.hits] == reference("color")
    got = client.facet("facet", "size", limit=3, facet_filter=models.Filter(must=[models.FieldCondition(key="even", match=models.MatchValue(value=True))]))
    assert [(h.value, h.count) for h in got.hits] == reference("size", lambda p: p["even"], 3)
    got = client.facet("facet", "even", exact=True)
    assert sorted((h.value, h.count) for h in got.hits) == sorted(reference("even"))
    # A float index cannot facet; malformed requests name the field (segments: engine/tests/model.rs).
    client.create_payload_index("facet", "size_f", models.PayloadSchemaType.FLOAT)
    for body, field in [({"key": "size_f"}, "size_f"), ({"key": 5}, "key"), ({}, "key"), ({"key": "color", "limit": 0}, "limit"),
                        ({"key": "color", "exact": "yes"}, "exact"), ({"key": "color", "bogus": 1}, "bogus")]:
        r = httpx.post(f"{server.http}/collections/facet/facet", headers=h, json=body)
        assert r.status_code == 400 and field in r.json()["status"]["error"], (body, r.text)


def test_query_groups_match_a_brute_force_and_look_up(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("docs_g", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    client.create_collection("authors", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((200, 4)).astype(np.float32)
    author = [int(rng.integers(0, 12)) for _ in range(200)]
    client.upsert("docs_g", points=[models.PointStruct(id=i, vector=v.tolist(), payload={"author": author[i], "tag": f"t{i % 5}"})
                                    for i, v in enumerate(vectors)])
    client.upsert("authors", points=[models.PointStruct(id=a, vector=[1.0, 0.0], payload={"name": f"author {a}"}) for a in range(12)])
    q = rng.standard_normal(4).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.argsort(-(unit @ (q / np.linalg.norm(q))), kind="stable")
    want = []
    for i in order:
        g = next((w for w in want if w[0] == author[i]), None)
        if g is None:
            want.append((author[i], [int(i)]))
        elif len(g[1]) < 2:
            g[1].append(int(i))
    want = want[:4]
    res = client.query_points_groups("docs_g", group_by="author", query=q.tolist(), limit=4, group_size=2,
                                     search_params=models.SearchParams(exact=True),
                                     with_lookup=models.WithLookup(collection="authors", with_payload=True))
    got = [(g.id, [h.id for h in g.hits]) for g in res.groups]
    assert got == want
    assert all(g.lookup is not None and g.lookup.payload == {"name": f"author {g.id}"} for g in res.groups)
    # String group ids, a filter, and the legacy search/groups route.
    flt = models.Filter(must=[models.FieldCondition(key="author", match=models.MatchAny(any=[1, 2, 3]))])
    res = client.query_points_groups("docs_g", group_by="tag", query=q.tolist(), limit=5, group_size=3, query_filter=flt)
    assert {g.id for g in res.groups} <= {f"t{k}" for k in range(5)}
    assert all(h.payload["author"] in (1, 2, 3) and h.payload["tag"] == g.id for g in res.groups for h in g.hits)
    h = {"api-key": server.admin_token}
    r = httpx.post(f"{server.http}/collections/docs_g/points/search/groups", headers=h,
                   json={"vector": q.tolist(), "group_by": "author", "limit": 4, "group_size": 2, "params": {"exact": True}})
    assert r.status_code == 200, r.text
    assert [(g["id"], [p["id"] for p in g["hits"]]) for g in r.json()["result"]["groups"]] == want
    for body, status, field in [({"query": q.tolist()}, 400, "group_by"), ({"query": q.tolist(), "group_by": "author", "group_size": 0}, 400, "group_size"),
                                ({"query": q.tolist(), "group_by": 3}, 400, "group_by"),
                                ({"query": q.tolist(), "group_by": "author", "with_lookup": {"collection": "nope"}}, 404, "nope"),
                                ({"query": {"nearest": q.tolist(), "mmr": {}}, "group_by": "author"}, 501, "mmr")]:
        r = httpx.post(f"{server.http}/collections/docs_g/points/query/groups", headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], (body, r.text)


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.DOT])
def test_recommend_matches_qdrants_formulas(server, distance):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    name = f"reco_{distance.value.lower()}"
    client.create_collection(name, vectors_config={"v": models.VectorParams(size=6, distance=distance)})
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((200, 6)).astype(np.float32)
    client.upsert(name, points=[models.PointStruct(id=i, vector={"v": v.tolist()}) for i, v in enumerate(vectors)])
    stored = vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if distance == models.Distance.COSINE else vectors

    def sim(a, b):
        return -float(((a - b) ** 2).sum()) if distance == models.Distance.EUCLID else float(a @ b)

    def sigmoid(x):
        return 0.5 * (x / (1 + abs(x)) + 1)

    pos_ids, neg_ids = [3, 17], [42]
    extra = rng.standard_normal(6).astype(np.float32)  # a vector example, positive
    extra_s = extra / np.linalg.norm(extra) if distance == models.Distance.COSINE else extra
    pos = [stored[i] for i in pos_ids] + [extra_s]
    neg = [stored[i] for i in neg_ids]
    candidates = [i for i in range(200) if i not in pos_ids + neg_ids]

    def best(i):
        p, n = max(sim(stored[i], x) for x in pos), max(sim(stored[i], x) for x in neg)
        return sigmoid(p) if p > n else -sigmoid(n)

    def total(i):
        return sum(sim(stored[i], x) for x in pos) - sum(sim(stored[i], x) for x in neg)

    for strategy, f in [(models.RecommendStrategy.BEST_SCORE, best), (models.RecommendStrategy.SUM_SCORES, total)]:
        want = sorted(candidates, key=lambda i: (-f(i), i))[:10]
        got = client.query_points(name, using="v", limit=10, search_params=models.SearchParams(exact=True),
                                  query=models.RecommendQuery(recommend=models.RecommendInput(
                                      positive=pos_ids + [extra.tolist()], negative=neg_ids, strategy=strategy))).points
        assert [p.id for p in got] == want, strategy
        assert all(p.score == pytest.approx(f(p.id), rel=1e-4, abs=1e-4) for p in got)
    # Negatives only (best_score, sum_scores): every point is scored, so the far side of the
    # examples is found without `exact` — the whole ranking, not just the nearest neighbourhood.
    only_neg = [42, 7]
    rest = [i for i in range(200) if i not in only_neg]
    for strategy, f in [(models.RecommendStrategy.BEST_SCORE,
                         lambda i: -sigmoid(max(sim(stored[i], stored[n]) for n in only_neg))),
                        (models.RecommendStrategy.SUM_SCORES,
                         lambda i: -sum(sim(stored[i], stored[n]) for n in only_neg))]:
        want = sorted(rest, key=lambda i: (-f(i), i))[2:7]  # a window far below the 198 points
        got = client.query_points(name, using="v", limit=5, offset=2,
                                  query=models.RecommendQuery(recommend=models.RecommendInput(
                                      negative=only_neg, strategy=strategy))).points
        assert [p.id for p in got] == want, strategy
        assert all(p.score == pytest.approx(f(p.id), rel=1e-4, abs=1e-4) for p in got)
    # average_vector: a search for 2·avg(positive) − avg(negative), examples left out.
    q = 2 * np.mean(pos, axis=0) - np.mean(neg, axis=0)
    qq = q / np.linalg.norm(q) if distance == models.Distance.COSINE else q
    ranked = sorted(candidates, key=lambda i: (-sim(stored[i], qq), i))[:10]
    got = client.query_points(name, using="v", limit=10, search_params=models.SearchParams(exact=True),
                              query=models.RecommendQuery(recommend=models.RecommendInput(positive=pos_ids + [extra.tolist()], negative=neg_ids))).points
    assert [p.id for p in got] == ranked
    # Errors: an absent example point, no positive with average_vector, a bad strategy.
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/{name}/points/query"
    for body, status, field in [({"recommend": {"positive": [999]}}, 404, "999"),
                                ({"recommend": {"negative": [1]}}, 400, "query.recommend.positive"),
                                ({"recommend": {"positive": [[1.0]]}}, 400, "query.recommend.positive[0]"),
                                ({"recommend": {"positive": [1], "strategy": "best"}}, 400, "strategy"),
                                ({"recommend": {"positive": [[1.0, 2.0]]}}, 400, "positive[0]")]:
        r = httpx.post(url, headers=h, json={"query": body, "using": "v"})
        assert r.status_code == status and field in r.json()["status"]["error"], (body, r.text)


def reference_rrf(lists, k=2):
    """Reciprocal rank fusion as Qdrant defines it: Σ 1 / (rank + k), rank from 0."""
    scores = {}
    for ids in lists:
        for rank, i in enumerate(ids):
            scores[i] = scores.get(i, 0.0) + 1.0 / (rank + k)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def reference_dbsf(lists):
    """Distribution-based score fusion: each list normalised by mean ± 3 sample deviations."""
    scores = {}
    for pairs in lists:
        s = np.asarray([x for _, x in pairs], dtype=np.float64)
        if len(s) == 1:
            norm = [0.5]
        else:
            lo, hi = s.mean() - 3 * s.std(ddof=1), s.mean() + 3 * s.std(ddof=1)
            norm = (s - lo) / (hi - lo) if hi > lo else [0.5] * len(s)
        for (i, _), n in zip(pairs, norm):
            scores[i] = scores.get(i, 0.0) + float(n)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def test_prefetch_fusion_matches_reference_rrf_and_dbsf(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("hybrid", vectors_config={"a": models.VectorParams(size=8, distance=models.Distance.COSINE),
                                                       "b": models.VectorParams(size=4, distance=models.Distance.EUCLID)})
    rng = np.random.default_rng(21)
    va, vb = rng.standard_normal((300, 8)).astype(np.float32), rng.standard_normal((300, 4)).astype(np.float32)
    client.upsert("hybrid", points=[models.PointStruct(id=i, vector={"a": va[i].tolist(), "b": vb[i].tolist()}, payload={"odd": i % 2 == 1})
                                    for i in range(300)])
    qa, qb = rng.standard_normal(8).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    exact = models.SearchParams(exact=True)
    flt = models.Filter(must=[models.FieldCondition(key="odd", match=models.MatchValue(value=True))])
    prefetch = [models.Prefetch(query=qa.tolist(), using="a", limit=30, params=exact),
                models.Prefetch(query=qb.tolist(), using="b", limit=20, params=exact)]
    # The lists the fusion sees: each prefetch under the outer filter too.
    la = client.query_points("hybrid", query=qa.tolist(), using="a", limit=30, search_params=exact, query_filter=flt).points
    lb = client.query_points("hybrid", query=qb.tolist(), using="b", limit=20, search_params=exact, query_filter=flt).points
    want = reference_rrf([[p.id for p in la], [p.id for p in lb]])[:10]
    got = client.query_points("hybrid", prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10, query_filter=flt,
                              with_payload=True).points
    assert [(p.id, round(p.score, 5)) for p in got] == [(i, round(s, 5)) for i, s in want]
    assert all(p.payload["odd"] for p in got)
    # rrf with k; dbsf (Euclid distances negated first); offset.
    got = client.query_points("hybrid", prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=60)), limit=5, query_filter=flt).points
    assert [p.id for p in got] == [i for i, _ in reference_rrf([[p.id for p in la], [p.id for p in lb]], k=60)[:5]]
    want = reference_dbsf([[(p.id, p.score) for p in la], [(p.id, -p.score) for p in lb]])
    got = client.query_points("hybrid", prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=8, offset=2, query_filter=flt).points
    assert [(p.id, round(p.score, 4)) for p in got] == [(i, round(s, 4)) for i, s in want[2:10]]
    # Only plain searches on a Euclid vector give distances: a best_score recommendation on it
    # scores larger-is-better and is not negated, nor is a nested fusion.
    reco = models.RecommendQuery(recommend=models.RecommendInput(positive=[qb.tolist()], strategy=models.RecommendStrategy.BEST_SCORE))
    lr = client.query_points("hybrid", query=reco, using="b", limit=20, query_filter=flt).points
    assert lr[0].score > lr[-1].score
    nested = [models.Prefetch(query=reco, using="b", limit=20),
              models.Prefetch(prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=15)]
    inner = reference_rrf([[p.id for p in la], [p.id for p in lb]])[:15]
    want = reference_dbsf([[(p.id, p.score) for p in lr], inner])
    got = client.query_points("hybrid", prefetch=nested, query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=10, query_filter=flt).points
    assert [(p.id, round(p.score, 4)) for p in got] == [(i, round(s, 4)) for i, s in want[:10]]
    # One prefetch and no outer query: its list passes through, under the outer score_threshold
    # (a similarity floor for Cosine, a distance ceiling for Euclid).
    for prefetched, ranked in [(prefetch[0], la), (prefetch[1], lb)]:
        t = ranked[6].score
        got = client.query_points("hybrid", prefetch=[prefetched], score_threshold=t, limit=30, query_filter=flt).points
        assert [p.id for p in got] == [p.id for p in ranked[:7]], prefetched.using
    # An outer vector re-scores the prefetched candidates.
    got = client.query_points("hybrid", prefetch=[models.Prefetch(query=qb.tolist(), using="b", limit=50, params=exact)],
                              query=qa.tolist(), using="a", limit=5).points
    cands = [p.id for p in client.query_points("hybrid", query=qb.tolist(), using="b", limit=50, search_params=exact).points]
    unit = va / np.linalg.norm(va, axis=1, keepdims=True)
    best = sorted(cands, key=lambda i: (-float(unit[i] @ (qa / np.linalg.norm(qa))), i))[:5]
    assert [p.id for p in got] == best
    # Errors name the field.
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/hybrid/points/query"
    for body, field in [({"query": {"fusion": "rrf"}}, "prefetch"), ({"prefetch": [{"query": qa.tolist(), "using": "a"}] * 2}, "query"),
                        ({"prefetch": [{"query": qa.tolist(), "using": "a"}], "query": {"fusion": "max"}}, "fusion"),
                        ({"prefetch": [{"query": qa.tolist(), "using": "a", "with_payload": True}], "query": {"fusion": "rrf"}}, "prefetch[0].with_payload"),
                        ({"prefetch": {"query": qa.tolist(), "using": "zz"}, "query": {"fusion": "rrf"}}, "zz")]:
        r = httpx.post(url, headers=h, json=body)
        assert r.status_code == 400 and field in r.json()["status"]["error"], (body, r.text)
