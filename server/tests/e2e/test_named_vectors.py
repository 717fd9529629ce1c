"""Named dense vectors through the official qdrant-client (REST), unchanged: the forms LangChain
and LlamaIndex use (the empty name) and several named vectors with points carrying a subset."""

import httpx
import numpy as np
from qdrant_client import QdrantClient, models


def recall(found, truth):
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / sum(len(t) for t in truth)


def test_the_empty_name_as_frameworks_send_it(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token, timeout=60)
    # What langchain-qdrant and llama-index send: vectors {"": {...}}, sparse_vectors {}.
    client.create_collection("frameworks", vectors_config={"": models.VectorParams(size=4, distance=models.Distance.COSINE)},
                             sparse_vectors_config={})
    info = client.get_collection("frameworks")
    assert isinstance(info.config.params.vectors, dict) and info.config.params.vectors[""].size == 4
    client.upsert("frameworks", points=[
        models.PointStruct(id=i, vector={"": [1.0, float(i), 0.0, 1.0]}, payload={"page_content": f"doc {i}"})
        for i in range(20)])
    hits = client.query_points("frameworks", query=[1.0, 3.0, 0.0, 1.0], using="", limit=3, with_vectors=True).points
    assert hits[0].id == 3
    # The unnamed vector is answered as a plain list (as Qdrant does).
    assert isinstance(hits[0].vector, list) and len(hits[0].vector) == 4
    got = client.retrieve("frameworks", ids=[5], with_vectors=True)
    assert np.allclose(np.linalg.norm(got[0].vector), 1.0)


def test_several_named_vectors_with_subsets(server, bigann):
    base, queries, truth = bigann
    client = QdrantClient(url=server.http, api_key=server.admin_token, timeout=120)
    name = "named"
    client.create_collection(name, vectors_config={
        "image": models.VectorParams(size=128, distance=models.Distance.EUCLID),
        "tag": models.VectorParams(size=3, distance=models.Distance.DOT),
    })
    cfg = client.get_collection(name).config.params.vectors
    assert cfg["image"].size == 128 and cfg["tag"].distance == models.Distance.DOT
    n = 4000
    for start in range(0, n, 1000):
        pts = []
        for i in range(start, start + 1000):
            v = {"image": base[i].tolist()}
            if i % 2 == 0:
                v["tag"] = [float(i % 7), 1.0, 0.0]
            pts.append(models.PointStruct(id=i, vector=v, payload={"i": i}))
        client.upsert(name, points=pts)
    # The columnar form with named vectors.
    ids = list(range(n, n + 100))
    client.upsert(name, points=models.Batch(ids=ids, vectors={"image": [base[i].tolist() for i in ids]}))
    total = n + 100
    # Recall of "image" against an exact scan of the points stored.
    exact = [np.argsort(((base[:total] - q) ** 2).sum(axis=1), kind="stable")[:10].tolist() for q in queries]
    found = [[p.id for p in client.query_points(name, query=q.tolist(), using="image", limit=10).points] for q in queries]
    r = recall(found, exact)
    assert r >= 0.95, r
    # "tag": only points that have one are candidates.
    hits = client.query_points(name, query=[1.0, 0.0, 0.0], using="tag", limit=20, with_vectors=["tag"]).points
    assert len(hits) == 20 and all(h.id % 2 == 0 and h.id < n for h in hits)
    assert all(set(h.vector) == {"tag"} for h in hits)
    assert hits[0].vector["tag"][0] == 6.0
    # The legacy search body with a NamedVector (qdrant-client 1.20 no longer sends it).
    legacy = httpx.post(f"{server.http}/collections/{name}/points/search",
                        headers={"api-key": server.admin_token},
                        json={"vector": {"name": "tag", "vector": [1.0, 0.0, 0.0]}, "limit": 3}).json()
    assert [p["score"] for p in legacy["result"]] == [h.score for h in hits[:3]]
    got = client.retrieve(name, ids=[2, 3], with_vectors=True)
    assert set(got[0].vector) == {"image", "tag"} and set(got[1].vector) == {"image"}
    # Errors name the vector.
    try:
        client.query_points(name, query=[1.0, 2.0], using="audio", limit=3)
        raise AssertionError("unknown vector accepted")
    except Exception as e:  # noqa: BLE001 - the client's UnexpectedResponse
        assert "audio" in str(e)


def test_each_named_vector_keeps_its_own_hnsw_config_from_creation(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    client.create_collection("per_vec", vectors_config={
        "a": models.VectorParams(size=4, distance=models.Distance.COSINE, hnsw_config=models.HnswConfigDiff(m=8)),
        "b": models.VectorParams(size=2, distance=models.Distance.EUCLID,
                                 hnsw_config=models.HnswConfigDiff(m=0, ef_construct=50)),
        "c": models.VectorParams(size=3, distance=models.Distance.DOT),
    }, hnsw_config=models.HnswConfigDiff(ef_construct=64))
    v = client.get_collection("per_vec").config.params.vectors
    # The collection-wide value applies first, each vector's own over it.
    assert (v["a"].hnsw_config.m, v["a"].hnsw_config.ef_construct) == (8, 64)
    assert (v["b"].hnsw_config.m, v["b"].hnsw_config.ef_construct) == (0, 50)
    assert (v["c"].hnsw_config.m, v["c"].hnsw_config.ef_construct) == (16, 64)
