"""qdrant-client with `prefer_grpc=True` (Qdrant's `qdrant.*` gRPC services) against Strata:
named dense and sparse vectors, filters of every served kind, prefetch + fusion, payload edits,
aliases and errors — each answered exactly as the same call over REST."""

import grpc as grpclib
import pytest
from qdrant_client import QdrantClient, models

from test_qdrant_client import make_client


def points():
    out = []
    for i in range(200):
        out.append(models.PointStruct(
            id=i,
            vector={"a": [float(i % 7), float(i % 5), 1.0, 0.5],
                    "s": models.SparseVector(indices=[i % 11, 11 + i % 3], values=[1.0 + i % 4, 0.5])},
            payload={"color": ["red", "green", "blue"][i % 3], "n": i, "tags": [f"t{i % 4}", "all"],
                     "when": f"2024-01-{1 + i % 28:02d}T00:00:00Z", "nested": {"x": i % 2}}))
    return out


FILTERS = [
    models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red"))]),
    models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=20, lt=90))],
                  must_not=[models.FieldCondition(key="tags", match=models.MatchAny(any=["t1"]))]),
    models.Filter(should=[models.HasIdCondition(has_id=[1, 5, 9, 150]),
                          models.FieldCondition(key="nested.x", match=models.MatchValue(value=1))],
                  must_not=[models.FieldCondition(key="color", match=models.MatchExcept(**{"except": ["red"]}))]),
    models.Filter(must=[models.FieldCondition(key="when", range=models.DatetimeRange(gte="2024-01-10T00:00:00Z", lt="2024-01-20T00:00:00Z"))]),
    models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="missing"))]),
]


def test_grpc_answers_as_rest(server):
    g, r = make_client(server, True), make_client(server, False)
    g.create_collection("gq", vectors_config={"a": models.VectorParams(size=4, distance=models.Distance.COSINE)},
                        sparse_vectors_config={"s": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    g.create_payload_index("gq", "color", models.PayloadSchemaType.KEYWORD)
    g.upsert("gq", points())
    info = g.get_collection("gq")
    assert info.points_count == 200 and info.config.params.vectors["a"].size == 4
    assert info.config.params.sparse_vectors["s"].modifier == models.Modifier.IDF
    assert info.payload_schema["color"].data_type == models.PayloadSchemaType.KEYWORD
    q = [1.0, 2.0, 1.0, 0.5]
    sq = models.SparseVector(indices=[3, 12], values=[1.0, 2.0])
    for f in FILTERS:
        for kw in [dict(query=q, using="a"), dict(query=sq, using="s")]:
            a = g.query_points("gq", query_filter=f, limit=10, with_payload=True, **kw).points
            b = r.query_points("gq", query_filter=f, limit=10, with_payload=True, **kw).points
            assert [(p.id, round(p.score, 4), p.payload) for p in a] == [(p.id, round(p.score, 4), p.payload) for p in b]
        assert g.count("gq", count_filter=f).count == r.count("gq", count_filter=f).count
    hybrid = dict(prefetch=[models.Prefetch(query=q, using="a", limit=20), models.Prefetch(query=sq, using="s", limit=20)],
                  query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10)
    assert [p.id for p in g.query_points("gq", **hybrid).points] == [p.id for p in r.query_points("gq", **hybrid).points]
    # Qdrant's quantization search params: the same answer with or without the codes.
    for qp in [models.QuantizationSearchParams(ignore=True), models.QuantizationSearchParams(rescore=False, oversampling=2.5)]:
        a = g.query_points("gq", query=q, using="a", limit=10, search_params=models.SearchParams(quantization=qp)).points
        b = r.query_points("gq", query=q, using="a", limit=10, search_params=models.SearchParams(quantization=qp)).points
        c = r.query_points("gq", query=q, using="a", limit=10).points
        assert [(p.id, round(p.score, 4)) for p in a] == [(p.id, round(p.score, 4)) for p in b] == [(p.id, round(p.score, 4)) for p in c]
    for bad in [0.5, float("nan"), float("inf")]:
        with pytest.raises(grpclib.RpcError) as e:
            g.query_points("gq", query=q, using="a", limit=10, search_params=models.SearchParams(
                quantization=models.QuantizationSearchParams(oversampling=bad)))
        assert e.value.code() == grpclib.StatusCode.INVALID_ARGUMENT and "oversampling" in e.value.details(), bad
    mmr = dict(query=models.NearestQuery(nearest=q, mmr=models.Mmr(diversity=0.5, candidates_limit=30)), using="a", limit=5)
    assert [p.id for p in g.query_points("gq", **mmr).points] == [p.id for p in r.query_points("gq", **mmr).points]
    # Vectors come back in Qdrant's shapes, dense and sparse.
    rec = g.retrieve("gq", ids=[7], with_vectors=True)[0]
    assert rec.vector["s"].indices == [7, 12] and len(rec.vector["a"]) == 4
    # Payload edits, vector deletes, aliases.
    g.set_payload("gq", payload={"k": 1}, points=[7])
    g.overwrite_payload("gq", payload={"only": True}, points=[8])
    g.delete_payload("gq", keys=["n"], points=[9])
    g.clear_payload("gq", points_selector=models.PointIdsList(points=[10]))
    got = {p.id: p.payload for p in r.retrieve("gq", ids=[7, 8, 9, 10])}
    assert got[7]["k"] == 1 and got[8] == {"only": True} and "n" not in got[9] and got[10] == {}
    g.delete_vectors("gq", vectors=["s"], points=[11])
    assert "s" not in r.retrieve("gq", ids=[11], with_vectors=True)[0].vector
    g.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="gq", alias_name="gq_alias"))])
    assert [a.alias_name for a in g.get_collection_aliases("gq").aliases] == ["gq_alias"]
    assert g.count("gq_alias").count == 200


def test_grpc_errors_carry_the_rest_message(server):
    g = make_client(server, True)
    g.create_collection("ge", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    with pytest.raises(grpclib.RpcError) as e:
        g.upsert("ge", [models.PointStruct(id=1, vector=[1.0, 2.0, 3.0])])
    assert e.value.code() == grpclib.StatusCode.INVALID_ARGUMENT
    assert "points[0].vector: expected 4 dimensions, got 3" in e.value.details()
    with pytest.raises(grpclib.RpcError) as e:
        g.get_collection("nope")
    assert e.value.code() == grpclib.StatusCode.NOT_FOUND
    with pytest.raises(grpclib.RpcError) as e:
        g.query_points("ge", query=models.DiscoverQuery(discover=models.DiscoverInput(target=[1.0, 0, 0, 0], context=[])))
    assert e.value.code() == grpclib.StatusCode.UNIMPLEMENTED and "query.discover" in e.value.details()
    # Without a token: UNAUTHENTICATED, as strata.v1.
    host, port = server.grpc.rsplit(":", 1)
    anon = QdrantClient(host=host, grpc_port=int(port), prefer_grpc=True, https=False)
    with pytest.raises(grpclib.RpcError) as e:
        anon.get_collections()
    assert e.value.code() == grpclib.StatusCode.UNAUTHENTICATED



def test_health_reflection_and_qdrant_health_check(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    ch = grpclib.insecure_channel(server.grpc)
    health = health_pb2_grpc.HealthStub(ch)
    for service in ["qdrant.Points", "qdrant.Collections"]:
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"qdrant.Qdrant", "qdrant.Points", "qdrant.Collections", "strata.v1.Points"} <= names
    # Qdrant's own health call answers without a token, as /healthz.
    from qdrant_client.grpc import qdrant_pb2, qdrant_pb2_grpc
    reply = qdrant_pb2_grpc.QdrantStub(ch).HealthCheck(qdrant_pb2.HealthCheckRequest())
    assert reply.title.startswith("qdrant") and reply.version


def test_groups_and_facet_over_grpc_answer_as_rest(server):
    g, r = make_client(server, True), make_client(server, False)
    g.create_collection("gg", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    g.create_payload_index("gg", "color", models.PayloadSchemaType.KEYWORD)
    g.upsert("gg", [models.PointStruct(id=i, vector=[float(i % 7), float(i % 5), 1.0, 0.5],
                                       payload={"color": ["red", "green", "blue"][i % 3], "n": i}) for i in range(60)])
    kw = dict(query=[1.0, 2.0, 1.0, 0.5], group_by="color", group_size=2, limit=3, with_payload=True)
    a, b = g.query_points_groups("gg", **kw).groups, r.query_points_groups("gg", **kw).groups
    assert [(x.id, [(p.id, round(p.score, 4)) for p in x.hits]) for x in a] == \
        [(x.id, [(p.id, round(p.score, 4)) for p in x.hits]) for x in b]
    fa, fb = g.facet("gg", key="color", limit=5), r.facet("gg", key="color", limit=5)
    assert [(h.value, h.count) for h in fa.hits] == [(h.value, h.count) for h in fb.hits] == \
        [("blue", 20), ("green", 20), ("red", 20)]


def test_update_batch_and_the_rest_of_the_writes_over_grpc(server):
    g, r = make_client(server, True), make_client(server, False)
    g.create_collection("gb", vectors_config={"a": models.VectorParams(size=2, distance=models.Distance.DOT)},
                        hnsw_config=models.HnswConfigDiff(m=8))
    res = g.batch_update_points("gb", update_operations=[
        models.UpsertOperation(upsert=models.PointsList(points=[
            models.PointStruct(id=i, vector={"a": [float(i), 1.0]}, payload={"n": i}) for i in range(10)])),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"tag": "x"}, points=[1, 2])),
        models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload={"only": 1}, points=[3])),
        models.DeletePayloadOperation(delete_payload=models.DeletePayload(keys=["n"], points=[4])),
        models.ClearPayloadOperation(clear_payload=models.PointIdsList(points=[5])),
        models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=[
            models.PointVectors(id=6, vector={"a": [60.0, 1.0]})])),
        models.DeleteOperation(delete=models.PointIdsList(points=[9])),
    ])
    assert len(res) == 7 and all(x.status == models.UpdateStatus.COMPLETED for x in res)
    assert [x.operation_id for x in res] == sorted(x.operation_id for x in res)
    got = {p.id: p for p in r.retrieve("gb", ids=list(range(10)), with_vectors=True)}
    assert sorted(got) == list(range(9))
    assert got[1].payload == {"n": 1, "tag": "x"} and got[3].payload == {"only": 1}
    assert got[4].payload == {} and got[5].payload == {} and got[6].vector["a"] == [60.0, 1.0]
    # A failing operation stops the batch; the error says how many were applied.
    with pytest.raises(grpclib.RpcError) as e:
        g.batch_update_points("gb", update_operations=[
            models.SetPayloadOperation(set_payload=models.SetPayload(payload={"z": 1}, points=[0])),
            models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=[
                models.PointVectors(id=999, vector={"a": [1.0, 1.0]})])),
        ])
    assert e.value.code() == grpclib.StatusCode.NOT_FOUND and "999" in e.value.details()
    assert r.retrieve("gb", ids=[0])[0].payload["z"] == 1
    # Collection update, field index delete, alias listing over gRPC.
    assert g.update_collection("gb", hnsw_config=models.HnswConfigDiff(ef_construct=64))
    assert r.get_collection("gb").config.hnsw_config.ef_construct == 64 or \
        r.get_collection("gb").config.params.vectors["a"].hnsw_config.ef_construct == 64
    g.create_payload_index("gb", "n", models.PayloadSchemaType.INTEGER)
    assert "n" in r.get_collection("gb").payload_schema
    g.delete_payload_index("gb", "n")
    assert "n" not in r.get_collection("gb").payload_schema
    g.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="gb", alias_name="gb_a"))])
    assert ("gb_a", "gb") in [(a.alias_name, a.collection_name) for a in g.get_aliases().aliases]


def test_snapshots_over_grpc(server):
    g, r = make_client(server, True), make_client(server, False)
    g.create_collection("gs", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    g.upsert("gs", [models.PointStruct(id=i, vector=[float(i), 1.0]) for i in range(5)])
    snap = g.create_snapshot("gs")
    assert snap.name and snap.size > 0 and snap.checksum and snap.creation_time
    listed = g.list_snapshots("gs")
    assert [(s.name, s.size, s.checksum) for s in listed] == [(s.name, s.size, s.checksum) for s in r.list_snapshots("gs")]
    assert [s.name for s in listed] == [snap.name]
    assert g.delete_snapshot("gs", snap.name)
    assert r.list_snapshots("gs") == []
    with pytest.raises(grpclib.RpcError) as e:
        g.create_full_snapshot()
    assert e.value.code() == grpclib.StatusCode.UNIMPLEMENTED and "full storage snapshots" in e.value.details()
