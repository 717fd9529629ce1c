"""Point updates beyond upsert through the official client: payload overwrite / delete keys /
clear, vector update / delete, and batch_update_points, each checked by reading the points back."""

import httpx
from qdrant_client import QdrantClient, models


def make(client, name):
    client.create_collection(name, vectors_config={"a": models.VectorParams(size=2, distance=models.Distance.DOT),
                                                   "b": models.VectorParams(size=3, distance=models.Distance.EUCLID)})
    client.upsert(name, points=[models.PointStruct(id=i, vector={"a": [float(i), 1.0], "b": [0.0, float(i), 0.0]},
                                                   payload={"n": i, "keep": True, "nested": {"x": 1, "y": 2}}) for i in range(10)])


def get(client, name, i):
    return client.retrieve(name, ids=[i], with_payload=True, with_vectors=True)[0]


def test_payload_and_vector_edits(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    make(client, "edits")
    client.overwrite_payload("edits", payload={"only": 1}, points=[0, 999])
    client.delete_payload("edits", keys=["keep", "nested.x"], points=[1])
    client.clear_payload("edits", points_selector=models.PointIdsList(points=[2]))
    client.delete_vectors("edits", vectors=["b"], points=[3])
    client.set_payload("edits", payload={"tag": "big"}, points=models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=8))]))
    client.update_vectors("edits", points=[models.PointVectors(id=5, vector={"a": [-1.0, -2.0]})])
    assert get(client, "edits", 0).payload == {"only": 1}
    assert get(client, "edits", 1).payload == {"n": 1, "nested": {"y": 2}}
    assert get(client, "edits", 2).payload == {}
    p3 = get(client, "edits", 3)
    assert set(p3.vector) == {"a"} and p3.payload["n"] == 3
    assert [get(client, "edits", i).payload.get("tag") for i in (7, 8, 9)] == [None, "big", "big"]
    p5 = get(client, "edits", 5)
    assert p5.vector["a"] == [-1.0, -2.0] and p5.vector["b"] == [0.0, 5.0, 0.0] and p5.payload["n"] == 5
    assert client.count("edits").count == 10
    # Clearing by filter.
    client.clear_payload("edits", points_selector=models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(key="tag", match=models.MatchValue(value="big"))])))
    assert get(client, "edits", 9).payload == {}
    # Errors name the field or the point; nothing is applied.
    h = {"api-key": server.admin_token}
    base = f"{server.http}/collections/edits/points"
    for method, path, body, status, field in [
        ("PUT", "/vectors", {"points": [{"id": 1, "vector": {"a": [1.0, 2.0]}}, {"id": 77, "vector": {"a": [1.0, 2.0]}}]}, 404, "77"),
        ("PUT", "/vectors", {"points": [{"id": 1, "vector": {"a": [1.0]}}]}, 400, "points[0].vector.a"),
        ("PUT", "/vectors", {"points": [{"id": 1, "vector": {"zz": [1.0, 2.0]}}]}, 400, "zz"),
        ("POST", "/vectors/delete", {"points": [1], "vector": ["zz"]}, 400, "zz"),
        ("POST", "/vectors/delete", {"points": [1]}, 400, "vector"),
        ("POST", "/payload/delete", {"points": [1], "keys": "n"}, 400, "keys"),
        ("PUT", "/payload", {"points": [1]}, 400, "payload"),
        ("POST", "/payload/clear", {}, 400, "points"),
        ("POST", "/payload/clear", {"points": [1], "filter": {}}, 400, "not both"),
    ]:
        r = httpx.request(method, base + path, headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], (path, body, r.text)
    assert get(client, "edits", 1).vector["a"] == [1.0, 1.0]
    assert get(client, "edits", 1).payload == {"n": 1, "nested": {"y": 2}}


def test_batch_update_points(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    make(client, "batch")
    res = client.batch_update_points("batch", update_operations=[
        models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(id=100, vector={"a": [1.0, 0.0]}, payload={"n": 100})])),
        models.DeleteOperation(delete=models.PointIdsList(points=[0, 1])),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"s": 1}, points=[2])),
        models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload={"o": 1}, points=[3])),
        models.DeletePayloadOperation(delete_payload=models.DeletePayload(keys=["n"], points=[4])),
        models.ClearPayloadOperation(clear_payload=models.PointIdsList(points=[5])),
        models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=[models.PointVectors(id=6, vector={"b": [1.0, 1.0, 1.0]})])),
        models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(points=[7], vector=["a"])),
    ])
    assert len(res) == 8 and all(r.status == models.UpdateStatus.COMPLETED for r in res)
    assert [r.operation_id for r in res] == sorted(r.operation_id for r in res)
    assert client.count("batch").count == 9
    assert get(client, "batch", 100).payload == {"n": 100}
    assert get(client, "batch", 2).payload["s"] == 1
    assert get(client, "batch", 3).payload == {"o": 1}
    assert "n" not in get(client, "batch", 4).payload
    assert get(client, "batch", 5).payload == {}
    assert get(client, "batch", 6).vector["b"] == [1.0, 1.0, 1.0]
    assert set(get(client, "batch", 7).vector) == {"b"}
    # A malformed operation is refused before anything runs; a failing one stops the batch.
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/batch/points/batch"
    r = httpx.post(url, headers=h, json={"operations": [{"delete": {"points": [2]}}, {"set_payload": {"points": [3]}}]})
    assert r.status_code == 400 and "operations[1].set_payload.payload" in r.json()["status"]["error"], r.text
    assert client.count("batch").count == 9
    r = httpx.post(url, headers=h, json={"operations": [{"delete": {"points": [2]}}, {"bogus": {}}]})
    assert r.status_code == 400 and "operations[1].bogus" in r.json()["status"]["error"], r.text
    r = httpx.post(url, headers=h, json={"operations": [{"delete": {"points": [2]}},
                                                        {"update_vectors": {"points": [{"id": 555, "vector": {"a": [1.0, 1.0]}}]}}]})
    assert r.status_code == 404 and "operations 0..1 of 2 were applied" in r.json()["status"]["error"], r.text
    assert client.count("batch").count == 8


def test_update_collection_changes_hnsw_parameters(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    make(client, "patch")
    assert client.update_collection("patch", hnsw_config=models.HnswConfigDiff(m=8, ef_construct=64),
                                    optimizers_config=models.OptimizersConfigDiff(indexing_threshold=1000))
    vecs = client.get_collection("patch").config.params.vectors
    assert (vecs["a"].hnsw_config.m, vecs["b"].hnsw_config.ef_construct) == (8, 64)
    assert client.update_collection("patch", vectors_config={"b": models.VectorParamsDiff(hnsw_config=models.HnswConfigDiff(m=24))})
    vecs = client.get_collection("patch").config.params.vectors
    assert (vecs["a"].hnsw_config.m, vecs["b"].hnsw_config.m, vecs["b"].hnsw_config.ef_construct) == (8, 24, 64)
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/patch"
    # A bad value names the field as the request gave it: collection-wide or per vector.
    r = httpx.patch(url, headers=h, json={"hnsw_config": {"m": 1}})
    assert r.status_code == 400 and r.json()["status"]["error"].startswith("hnsw_config.m must be"), r.text
    r = httpx.patch(url, headers=h, json={"vectors": {"b": {"hnsw_config": {"ef_construct": 2}}}})
    assert r.status_code == 400 and r.json()["status"]["error"].startswith("vectors.b.hnsw_config.ef_construct"), r.text
    for body, status, field in [({"hnsw_config": {"m": 1}}, 400, "m"), ({"vectors": {"zz": {"on_disk": True}}}, 400, "zz"),
                                ({"quantization_config": {"scalar": {"type": "int8"}}}, 501, "quantization_config"),
                                ({"hnsw_config": {"m": "x"}}, 400, "hnsw_config.m"), ({"bogus": 1}, 400, "bogus")]:
        r = httpx.patch(url, headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], (body, r.text)
    assert client.get_collection("patch").config.params.vectors["b"].hnsw_config.m == 24
    assert httpx.patch(f"{server.http}/collections/nope", headers=h, json={}).status_code == 404
