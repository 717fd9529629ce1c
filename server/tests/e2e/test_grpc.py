"""gRPC end to end with Python grpcio and stubs generated from the checked-in proto."""

import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def test_health_reflection_and_scenario(server, strata_pb, bigann):
    pb, pb_grpc = strata_pb
    base, queries, truth = bigann
    ch = grpc.insecure_channel(server.grpc)
    md = (("authorization", f"Bearer {server.admin_token}"),)

    health = health_pb2_grpc.HealthStub(ch)
    for service in ["", "strata.v1.Points", "strata.v1.Collections"]:
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING

    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"strata.v1.Points", "strata.v1.Collections", "grpc.health.v1.Health"} <= names

    cols, pts = pb_grpc.CollectionsStub(ch), pb_grpc.PointsStub(ch)
    cols.Create(pb.CreateCollectionRequest(collection="g", dim=128, distance=pb.EUCLID), metadata=md)
    assert "g" in cols.List(pb.ListCollectionsRequest(), metadata=md).collections
    for start in range(0, 10000, 1000):
        pts.Upsert(pb.UpsertPointsRequest(collection="g", points=[
            pb.Point(id=pb.PointId(num=i), vector=base[i].tolist(), payload_json=json.dumps({"bucket": i % 10}))
            for i in range(start, start + 1000)]), metadata=md)
    info = cols.Get(pb.GetCollectionRequest(collection="g"), metadata=md)
    assert info.points == 10000 and info.dim == 128 and info.distance == pb.EUCLID

    hits = 0
    for q, t in zip(queries, truth):
        res = pts.Search(pb.SearchPointsRequest(collection="g", vector=q.tolist(), limit=10), metadata=md)
        hits += len({p.id.num for p in res.points} & set(t[:10].tolist()))
    assert hits / 1000 >= 0.95

    flt = json.dumps({"must": [{"key": "bucket", "match": {"value": 3}}]})
    res = pts.Search(pb.SearchPointsRequest(collection="g", vector=queries[0].tolist(), limit=10, filter_json=flt, with_payload=True), metadata=md)
    assert len(res.points) == 10 and all(json.loads(p.payload_json)["bucket"] == 3 for p in res.points)
    batch = pts.SearchBatch(pb.SearchBatchRequest(collection="g", searches=[
        pb.SearchPointsRequest(vector=queries[0].tolist(), limit=3), pb.SearchPointsRequest(vector=queries[1].tolist(), limit=2)]), metadata=md)
    assert [len(r.points) for r in batch.results] == [3, 2]

    got = pts.Get(pb.GetPointsRequest(collection="g", ids=[pb.PointId(num=7)], with_vector=True, with_payload=True), metadata=md)
    assert np.allclose(got.points[0].vector, base[7]) and json.loads(got.points[0].payload_json) == {"bucket": 7}
    seen, offset = 0, None
    while True:
        req = pb.ScrollPointsRequest(collection="g", limit=3000)
        if offset is not None:
            req.offset.CopyFrom(offset)
        page = pts.Scroll(req, metadata=md)
        seen += len(page.points)
        if not page.HasField("next_offset"):
            break
        offset = page.next_offset
    assert seen == 10000
    assert pts.Count(pb.CountPointsRequest(collection="g", filter_json=flt), metadata=md).count == 1000
    pts.SetPayload(pb.SetPayloadRequest(collection="g", payload_json='{"tag": 1}', ids=pb.PointIds(ids=[pb.PointId(num=7)])), metadata=md)
    got = pts.Get(pb.GetPointsRequest(collection="g", ids=[pb.PointId(num=7)], with_payload=True), metadata=md)
    assert json.loads(got.points[0].payload_json) == {"bucket": 7, "tag": 1}
    pts.Delete(pb.DeletePointsRequest(collection="g", filter_json=flt), metadata=md)
    pts.Delete(pb.DeletePointsRequest(collection="g", ids=pb.PointIds(ids=[pb.PointId(num=0)])), metadata=md)
    assert pts.Count(pb.CountPointsRequest(collection="g"), metadata=md).count == 8999
    assert cols.Delete(pb.DeleteCollectionRequest(collection="g"), metadata=md).existed


def test_status_codes(server, strata_pb):
    pb, pb_grpc = strata_pb
    ch = grpc.insecure_channel(server.grpc)
    md = (("authorization", f"Bearer {server.admin_token}"),)
    cols, pts = pb_grpc.CollectionsStub(ch), pb_grpc.PointsStub(ch)
    cols.Create(pb.CreateCollectionRequest(collection="s", dim=2, distance=pb.DOT), metadata=md)

    def code(call, *args, **kw):
        with pytest.raises(grpc.RpcError) as e:
            call(*args, **kw)
        return e.value.code(), e.value.details()

    assert code(cols.Create, pb.CreateCollectionRequest(collection="s", dim=2, distance=pb.DOT), metadata=md)[0] == grpc.StatusCode.ALREADY_EXISTS
    assert code(cols.Get, pb.GetCollectionRequest(collection="nope"), metadata=md)[0] == grpc.StatusCode.NOT_FOUND
    c, d = code(pts.Upsert, pb.UpsertPointsRequest(collection="s", points=[pb.Point(id=pb.PointId(num=1), vector=[1, 2, 3])]), metadata=md)
    assert c == grpc.StatusCode.INVALID_ARGUMENT and "points[0].vector" in d
    c, d = code(pts.Search, pb.SearchPointsRequest(collection="s", vector=[1, 2], filter_json='{"must": [{"key": "a", "geo_radius": {}}]}'), metadata=md)
    assert c == grpc.StatusCode.INVALID_ARGUMENT and "geo_radius" in d
    assert code(cols.List, pb.ListCollectionsRequest())[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code(cols.List, pb.ListCollectionsRequest(), metadata=(("authorization", "Bearer nope"),))[0] == grpc.StatusCode.UNAUTHENTICATED
    ro = (("api-key", server.token(access="r")),)
    assert code(pts.Upsert, pb.UpsertPointsRequest(collection="s", points=[pb.Point(id=pb.PointId(num=1), vector=[1, 2])]), metadata=ro)[0] == grpc.StatusCode.PERMISSION_DENIED
    big = [pb.Point(id=pb.PointId(num=i), vector=[1, 2]) for i in range(10001)]
    assert code(pts.Upsert, pb.UpsertPointsRequest(collection="s", points=big), metadata=md)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_norm_contract_and_the_token_rule_over_strata_v1(server, strata_pb):
    """Issue 11 over strata.v1 too: a vector whose squared norm would overflow is refused naming
    the point, a query past the bound is refused, and the token rule is HTTP's (api-key first,
    else Bearer; another scheme is refused)."""
    pb, pb_grpc = strata_pb
    ch = grpc.insecure_channel(server.grpc)
    md = (("authorization", f"Bearer {server.admin_token}"),)
    cols, pts = pb_grpc.CollectionsStub(ch), pb_grpc.PointsStub(ch)
    cols.Create(pb.CreateCollectionRequest(collection="nv", dim=4, distance=pb.DOT), metadata=md)
    pts.Upsert(pb.UpsertPointsRequest(collection="nv", points=[pb.Point(id=pb.PointId(num=1), vector=[1.0, 2.0, 3.0, 4.0])]), metadata=md)
    with pytest.raises(grpc.RpcError) as e:
        pts.Upsert(pb.UpsertPointsRequest(collection="nv", points=[pb.Point(id=pb.PointId(num=17), vector=[3e38] * 4)]), metadata=md)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "(point 17)" in e.value.details(), e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        pts.Search(pb.SearchPointsRequest(collection="nv", vector=[1e19, 0.0, 0.0, 0.0], limit=3), metadata=md)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "squared norm" in e.value.details()
    res = pts.Search(pb.SearchPointsRequest(collection="nv", vector=[1.0, 2.0, 3.0, 4.0], limit=3), metadata=md)
    assert [p.id.num for p in res.points] == [1] and res.points[0].score == 30.0
    for meta, ok in [
        ((("api-key", server.admin_token), ("authorization", "Basic Zm9vOmJhcg==")), True),
        ((("api-key", server.admin_token), ("authorization", "Bearer garbage")), True),
        ((("authorization", "Basic Zm9vOmJhcg=="),), False),
    ]:
        try:
            cols.List(pb.ListCollectionsRequest(), metadata=meta)
            assert ok, meta
        except grpc.RpcError as err:
            assert not ok and err.code() == grpc.StatusCode.UNAUTHENTICATED, (meta, err)
