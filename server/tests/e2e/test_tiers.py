"""The tiers API over HTTP and gRPC against a real S3-compatible server (moto): where segments
are, hints that move them, per-query cold controls and the headers that report them, readiness
with the cold store, and the rights that guard it all."""

import time
import uuid

import grpc
import httpx
import numpy as np

from test_cold import client_for, cold_env, s3  # noqa: F401  (the moto fixture)


def wait_for(pred, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def clusters(n_clusters=4, per=200, dim=8, seed=7):
    """Points in tight, far-apart clusters: one segment each, so summaries can skip."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_clusters):
        centre = np.full(dim, 100.0 * c, dtype=np.float32)
        vecs = centre + rng.normal(0, 0.5, size=(per, dim)).astype(np.float32)
        out.append((list(range(c * per, (c + 1) * per)), vecs))
    return out


def test_tiers_api_hints_and_cold_controls(s3, start, strata_pb):  # noqa: F811
    pb, pb_grpc = strata_pb
    bucket = f"strata-{uuid.uuid4().hex[:8]}"
    client_for(s3).create_bucket(Bucket=bucket)
    env = dict(cold_env(s3, bucket, "tiers"), STRATA_WARM_BYTES="1", STRATA_TIER_MIN_RESIDENCE="0s",
               STRATA_MEMTABLE_MAX_AGE="1s")
    srv = start("tiers", env=env)
    admin = {"api-key": srv.admin_token}
    http = httpx.Client(base_url=srv.http, headers=admin, timeout=60)
    assert http.put("/collections/c", json={"vectors": {"size": 8, "distance": "Euclid"}}).status_code == 200
    data = clusters()
    for ids, vecs in data:
        r = http.put("/collections/c/points?wait=true",
                     json={"points": [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs)]})
        assert r.status_code == 200, r.text
        # One flush per cluster (the memtable age bound is 1 s).
        wait_for(lambda: http.get("/collections/c").json()["result"]["points_count"] == ids[-1] + 1
                 and 'strata_points{tier="memtable"} 0' in httpx.get(f"{srv.metrics}/metrics").text,
                 "the flush")

    # Every segment uploaded and evicted: the tiers report says where they are.
    def all_cold():
        t = http.get("/v1/tiers").json()["result"]
        segs = t["collections"][0]["segments"]
        return t if segs["hot"] == segs["warm"] == 0 and segs["cold"] >= 4 else None
    t = wait_for(all_cold, "eviction")
    assert t["tiers"]["warm"]["budget_bytes"] == 1
    assert t["tiers"]["hot"]["budget_bytes"] == 0
    assert t["cold_store"] == {"configured": True, "reachable": True}
    assert t["collections"][0]["hint"] == "auto"
    ready = httpx.get(f"{srv.http}/readyz").json()
    assert ready["cold_store"]["reachable"] is True, ready

    # A query near one cluster reads that segment and skips the others (their summaries cannot
    # beat its hits); the answer is the exact one, and headers say what was touched.
    q = data[2][1][0].tolist()
    r = http.post("/collections/c/points/query", json={"query": q, "limit": 5})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["points"][0]["id"] == data[2][0][0]
    cold = dict(kv.split("=") for kv in r.headers["strata-cold-segments"].split(", "))
    assert int(cold["searched"]) >= 1 and int(cold["skipped"]) >= 2, cold
    assert "strata-partial" not in r.headers
    # Streamed, not promoted (no room): only the sections a search needs were fetched.
    t = http.get("/v1/tiers").json()["result"]
    assert t["cold_reads"]["streamed"] >= 1, t
    assert 0 < t["cold_reads"]["streamed_bytes"] < t["tiers"]["cold"]["bytes"], t
    # cold = skip: nothing cold is read, and the answer says it is partial.
    r = http.post("/collections/c/points/search", json={"vector": q, "limit": 5, "params": {"cold": "skip"}})
    assert r.status_code == 200 and r.json()["result"] == []
    assert r.headers["strata-partial"] == "true"
    r = http.post("/collections/c/points/search", json={"vector": q, "limit": 5, "params": {"cold": "maybe"}})
    assert r.status_code == 400 and "params.cold" in r.json()["status"]["error"]
    # A cold deadline: 0 ms leaves every cold segment out (partial), a long one reads what the
    # answer needs; a bad one is named.
    def search(params):
        return http.post("/collections/c/points/search", json={"vector": q, "limit": 5, "params": params})
    r = search({"cold_deadline_ms": 0})
    assert r.status_code == 200 and r.json()["result"] == [] and r.headers["strata-partial"] == "true"
    r = search({"cold_deadline_ms": 60000})
    assert r.json()["result"][0]["id"] == data[2][0][0] and "strata-partial" not in r.headers
    r = search({"cold_deadline_ms": -5})
    assert r.status_code == 400 and "cold_deadline_ms" in r.json()["status"]["error"], r.text

    # Hints are set, shown and kept (how they move segments within the budgets is tested in
    # engine/tests/cold.rs; here a one-byte local budget leaves no room to pre-warm).
    assert http.put("/v1/collections/c/tier", json={"hint": "warm"}).json()["result"] is True
    assert http.get("/v1/tiers").json()["result"]["collections"][0]["hint"] == "warm"
    assert http.get("/collections/c").status_code == 200
    r = http.put("/v1/collections/c/tier", json={"hint": "lukewarm"})
    assert r.status_code == 400 and "hint" in r.json()["status"]["error"]
    assert http.put("/v1/collections/c/tier", json={}).status_code == 400
    assert http.put("/v1/collections/nope/tier", json={"hint": "warm"}).status_code == 404

    # Rights: the tiers API needs access m.
    reader = {"api-key": srv.token(access="r")}
    assert httpx.get(f"{srv.http}/v1/tiers", headers=reader).status_code == 403
    assert httpx.put(f"{srv.http}/v1/collections/c/tier", headers=reader, json={"hint": "auto"}).status_code == 403
    assert httpx.get(f"{srv.http}/v1/tiers").status_code == 401

    # gRPC: the same report and hints, and the cold counts on each search.
    ch = grpc.insecure_channel(srv.grpc)
    tiers, pts = pb_grpc.TiersStub(ch), pb_grpc.PointsStub(ch)
    md = (("authorization", f"Bearer {srv.admin_token}"),)
    g = tiers.Get(pb.GetTiersRequest(), metadata=md)
    assert g.cold_store_configured and g.cold_store_reachable
    assert g.cold_streamed_bytes > 0
    assert g.collections[0].hint == "warm" and g.warm.budget_bytes == 1
    tiers.SetHint(pb.SetTierHintRequest(collection="c", hint="offload"), metadata=md)
    wait_for(lambda: tiers.Get(pb.GetTiersRequest(), metadata=md).collections[0].cold_segments >= 4, "offload")
    res = pts.Search(pb.SearchPointsRequest(collection="c", vector=q, limit=5), metadata=md)
    assert res.points[0].id.num == data[2][0][0]
    assert res.cold_searched >= 1 and res.cold_skipped >= 2
    res = pts.Search(pb.SearchPointsRequest(collection="c", vector=q, limit=5, cold="skip"), metadata=md)
    assert len(res.points) == 0 and res.cold_left_out >= 4
    res = pts.Search(pb.SearchPointsRequest(collection="c", vector=q, limit=5, cold_deadline_ms=60000), metadata=md)
    assert res.points[0].id.num == data[2][0][0] and res.cold_left_out == 0
    try:
        tiers.SetHint(pb.SetTierHintRequest(collection="c", hint="x"), metadata=md)
        raise AssertionError("a bad hint was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "hint" in e.details()
    reader_md = (("authorization", f"Bearer {srv.token(access='r')}"),)
    try:
        tiers.Get(pb.GetTiersRequest(), metadata=reader_md)
        raise AssertionError("a reader saw the tiers")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED

    # The hint survives a restart.
    assert srv.stop() == 0
    srv = start("tiers", env=env)
    t = httpx.get(f"{srv.http}/v1/tiers", headers={"api-key": srv.token(access="m")}).json()["result"]
    assert t["collections"][0]["hint"] == "offload"


def test_io_mode_is_chosen_once_reported_and_a_bad_one_refused(start, strata_pb):  # noqa: F811
    pb, pb_grpc = strata_pb
    # auto: io_uring where it works, pread (with the reason) where it does not.
    srv = start("auto")
    io = httpx.get(f"{srv.http}/readyz").json()["io"]
    assert io["backend"] in ("io_uring", "pread") and io["depth"] == 32, io
    assert (io["backend"] == "pread") == (io["fallback_reason"] is not None), io
    metrics = httpx.get(f"{srv.metrics}/metrics").text
    assert f'strata_io_mode{{backend="{io["backend"]}"}} 1' in metrics
    srv.stop()
    assert "batched reads" in (srv.data_dir.parent / "auto.log").read_text()

    # pread on request: data written, flushed, and verified at the next start through it.
    env = {"STRATA_IO_MODE": "pread", "STRATA_MEMTABLE_MAX_AGE": "1s"}
    srv = start("pread", env=env)
    admin = {"api-key": srv.admin_token}
    http = httpx.Client(base_url=srv.http, headers=admin, timeout=60)
    assert http.put("/collections/c", json={"vectors": {"size": 4, "distance": "Dot"}}).status_code == 200
    pts = [{"id": i, "vector": [float(i), 1.0, 2.0, 3.0]} for i in range(100)]
    assert http.put("/collections/c/points?wait=true", json={"points": pts}).status_code == 200
    wait_for(lambda: 'strata_points{tier="memtable"} 0' in httpx.get(f"{srv.metrics}/metrics").text, "the flush")
    srv.stop()
    token = srv.admin_token  # printed at the first start only; the secret stays
    srv = start("pread", env=env)
    io = httpx.get(f"{srv.http}/readyz").json()["io"]
    assert io == {"backend": "pread", "depth": 32, "fallback_reason": None}, io
    assert 'strata_io_mode{backend="pread"} 1' in httpx.get(f"{srv.metrics}/metrics").text
    http = httpx.Client(base_url=srv.http, headers={"api-key": token}, timeout=60)
    assert http.post("/collections/c/points/count", json={}).json()["result"]["count"] == 100
    assert http.get("/v1/tiers").json()["result"]["io"]["backend"] == "pread"
    tiers = pb_grpc.TiersStub(grpc.insecure_channel(srv.grpc))
    g = tiers.Get(pb.GetTiersRequest(), metadata=(("authorization", f"Bearer {token}"),))
    assert g.io_backend == "pread" and g.io_depth == 32 and g.io_fallback_reason == ""
    srv.stop()

    # A mode that does not exist is refused at start, naming the setting.
    try:
        start("bad", env={"STRATA_IO_MODE": "uring"})
        raise AssertionError("a bad io mode was accepted")
    except RuntimeError:
        pass
    log = (srv.data_dir.parent / "bad.log").read_text()
    assert "STRATA_IO_MODE" in log and "uring" in log, log
