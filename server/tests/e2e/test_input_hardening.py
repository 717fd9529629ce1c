"""Input hardening (issue 11): vectors whose squared norm would overflow f32 are refused at write
and query time with a 400 / INVALID_ARGUMENT naming the point (or the field), over REST and
Qdrant's gRPC, for every distance; no score is ever null (the engine's own tests cover vectors
stored unchecked by older versions, through WAL replay and compaction)."""

import grpc as grpclib
import httpx
import pytest
from qdrant_client import models

from test_qdrant_client import make_client

HUGE = [3e38, 3e38, 3e38, 3e38]  # every component a finite f32; the squared norm is not
PAST = [1e19, 0.0, 0.0, 0.0]  # squared norm 1e38: past the 1e37 bound


@pytest.mark.parametrize("distance", ["Cosine", "Euclid", "Dot"])
def test_overflowing_norms_are_refused_over_rest(server, distance):
    h = {"api-key": server.admin_token}
    base = f"{server.http}/collections/n{distance}"
    r = httpx.put(base, headers=h, json={"vectors": {"size": 4, "distance": distance}})
    assert r.status_code == 200, r.text
    ok = {"points": [{"id": 1, "vector": [1, 2, 3, 4]}, {"id": 2, "vector": [-1, 0.5, 0, 2]}]}
    assert httpx.put(f"{base}/points?wait=true", headers=h, json=ok).status_code == 200
    for vector in (HUGE, PAST):
        body = {"points": [{"id": 3, "vector": [1, 1, 1, 1]}, {"id": 17, "vector": vector}]}
        r = httpx.put(f"{base}/points?wait=true", headers=h, json=body)
        assert r.status_code == 400, r.text
        err = r.json()["status"]["error"]
        assert "points[1].vector" in err and "(point 17)" in err and "squared norm" in err, err
        r = httpx.put(f"{base}/points/vectors", headers=h, json={"points": [{"id": 2, "vector": vector}]})
        assert r.status_code == 400 and "(point 2)" in r.json()["status"]["error"], r.text
        r = httpx.post(f"{base}/points/search", headers=h, json={"vector": vector, "limit": 3})
        assert r.status_code == 400 and "vector" in r.json()["status"]["error"], r.text
        r = httpx.post(f"{base}/points/query", headers=h, json={"query": vector, "limit": 3})
        assert r.status_code == 400, r.text
    r = httpx.post(f"{base}/points/count", headers=h, json={"exact": True})
    assert r.json()["result"]["count"] == 2, "nothing of a refused batch is applied"
    r = httpx.post(f"{base}/points/search", headers=h, json={"vector": [1, 2, 3, 4], "limit": 5})
    hits = r.json()["result"]
    assert all(isinstance(p["score"], float) for p in hits), hits
    if distance != "Dot":
        assert hits[0]["id"] == 1, hits


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID, models.Distance.DOT])
def test_overflowing_norms_are_refused_over_grpc(server, distance):
    g = make_client(server, True)
    name = f"g{distance.value}"
    g.create_collection(name, vectors_config=models.VectorParams(size=4, distance=distance))
    g.upsert(name, [models.PointStruct(id=1, vector=[1.0, 2.0, 3.0, 4.0])])
    for vector in (HUGE, PAST):
        with pytest.raises(grpclib.RpcError) as e:
            g.upsert(name, [models.PointStruct(id=17, vector=vector)])
        assert e.value.code() == grpclib.StatusCode.INVALID_ARGUMENT
        assert "points[0].vector" in e.value.details() and "(point 17)" in e.value.details(), e.value.details()
        with pytest.raises(grpclib.RpcError) as e:
            g.query_points(name, query=vector, limit=3)
        assert e.value.code() == grpclib.StatusCode.INVALID_ARGUMENT and "squared norm" in e.value.details()
    hits = g.query_points(name, query=[1.0, 2.0, 3.0, 4.0], limit=3).points
    assert [p.id for p in hits] == [1] and all(p.score == p.score for p in hits)
