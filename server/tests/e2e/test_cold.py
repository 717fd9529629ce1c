"""The cold tier against a real S3-compatible server (moto, a fresh process per test run):
load through the API -> segments and manifests uploaded -> SIGTERM -> restore on an empty data
directory -> counts and recall unchanged. Credentials never appear in output or logs."""

import signal
import socket
import subprocess
import sys
import time
import uuid

import boto3
import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from conftest import BIN

KEY_ID = "AKIASTRATAE2ETESTKEY"
SECRET = "strata-e2e-secret-value-that-must-not-leak"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(endpoint, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "moto exited"
        assert time.time() < deadline, "moto did not start"
        time.sleep(0.1)
    yield endpoint
    proc.kill()
    proc.wait()


def client_for(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def cold_env(endpoint, bucket, prefix):
    return {
        "STRATA_COLD_STORE_URL": f"s3://{bucket}/{prefix}",
        "STRATA_S3_ENDPOINT": endpoint,
        "STRATA_S3_ALLOW_HTTP": "true",
        "STRATA_S3_REGION": "us-east-1",
        "STRATA_S3_ACCESS_KEY_ID": KEY_ID,
        "STRATA_S3_SECRET_ACCESS_KEY": SECRET,
        "STRATA_S3_CONNECTION_TIMEOUT": "2s",
        "STRATA_S3_RETRY_COUNT": "2",
    }


def load_bigann(server, base):
    """Creates collection `v` (128-d, Euclid) on `server` and loads `base` in batches of 1,000."""
    c = QdrantClient(url=server.http, api_key=server.admin_token, https=False, timeout=60)
    c.create_collection("v", vectors_config=models.VectorParams(size=128, distance=models.Distance.EUCLID))
    ids = list(range(len(base)))
    for i in range(0, len(base), 1000):
        c.upsert("v", points=models.Batch(ids=ids[i:i + 1000], vectors=base[i:i + 1000].tolist()), wait=True)
    return c


def answers(client, name, queries, k=10):
    return [[p.id for p in client.query_points(name, query=q.tolist(), limit=k).points] for q in queries]


def recall(client, name, queries, truth, k=10):
    found = answers(client, name, queries, k)
    return sum(len(set(f) & set(t[:k].tolist())) for f, t in zip(found, truth)) / (len(queries) * k)


def test_restore_from_s3_alone_after_sigterm(s3, start, bigann):
    base, queries, truth = bigann
    bucket = f"strata-{uuid.uuid4().hex[:8]}"
    s3c = client_for(s3)
    s3c.create_bucket(Bucket=bucket)
    env = cold_env(s3, bucket, "node-a")

    a = start("a", env=env)
    c = load_bigann(a, base)
    c.delete("v", points_selector=models.PointIdsList(points=[0, 1, 2]), wait=True)
    q, t = queries[:50], truth[:50]
    before = recall(c, "v", q, t)
    assert c.count("v", exact=True).count == len(base) - 3
    metrics = httpx.get(f"{a.metrics}/metrics").text
    assert 'strata_object_store_requests_total{op="put"}' in metrics, "manifest uploads are counted"
    assert SECRET not in metrics and KEY_ID not in metrics
    assert a.stop(signal.SIGTERM) == 0, "graceful shutdown flushes and uploads"

    objs = [o["Key"] for o in s3c.list_objects_v2(Bucket=bucket, Prefix="node-a/").get("Contents", [])]
    assert any(k.startswith("node-a/segments/") for k in objs), objs
    assert any(k.startswith("node-a/manifests/") for k in objs), objs

    # A new node: an empty data directory (and a new JWT secret), the same cold store.
    b = start("b", env=env)
    assert b.report["recovery"]["restored_from_cold_generation"] is not None, b.report
    c = QdrantClient(url=b.http, api_key=b.admin_token, https=False, timeout=60)
    assert c.count("v", exact=True).count == len(base) - 3
    assert c.retrieve("v", [0, 1, 2]) == []
    got = c.retrieve("v", [5], with_vectors=True)[0]
    assert np.allclose(got.vector, base[5])
    after = recall(c, "v", q, t)
    assert after >= before - 0.02, (before, after)
    assert b.stop(signal.SIGTERM) == 0

    for s in (a, b):
        log = (s.data_dir.parent / f"{s.data_dir.name}.log").read_text(errors="replace")
        assert SECRET not in log and KEY_ID not in log
        assert all(SECRET not in line and KEY_ID not in line for line in s.lines)


def test_cold_settings_are_validated_by_name_and_never_echoed(s3, tmp_path):
    base = {k: v for k, v in __import__("os").environ.items() if not k.startswith("STRATA_")}
    env = dict(base, **cold_env(s3, "bucket", "p"))
    out = subprocess.run([BIN, "serve", "--validate", "--data-dir", str(tmp_path / "d")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr and KEY_ID not in out.stdout + out.stderr
    assert "(set, hidden)" in out.stdout
    for bad, name in [
        ({"STRATA_COLD_STORE_URL": "ftp://x/y"}, "STRATA_COLD_STORE_URL"),
        ({"STRATA_S3_ENDPOINT": "http://127.0.0.1:1", "STRATA_S3_ALLOW_HTTP": "false"}, "STRATA_S3_ENDPOINT"),
        ({"STRATA_S3_SECRET_ACCESS_KEY": SECRET, "STRATA_S3_ACCESS_KEY_ID": ""}, None),
        ({"STRATA_S3_CONNECTION_TIMEOUT": "soon"}, "STRATA_S3_CONNECTION_TIMEOUT"),
    ]:
        e = dict(env, **bad)
        if name is None:
            del e["STRATA_S3_ACCESS_KEY_ID"]
            name = "STRATA_S3_ACCESS_KEY_ID"
        out = subprocess.run([BIN, "serve", "--validate", "--data-dir", str(tmp_path / "d")], env=e,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, bad
        assert name in out.stderr, (bad, out.stderr)
        assert SECRET not in out.stdout + out.stderr
    # S3 settings without a cold store are a mistake, named.
    e = dict(base, STRATA_S3_REGION="eu-west-1")
    out = subprocess.run([BIN, "serve", "--validate", "--data-dir", str(tmp_path / "d")], env=e,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "STRATA_S3_REGION" in out.stderr, out.stderr


def gauge(metrics_url, name, tier):
    """The value of gauge `name{tier="..."}` (0 when absent)."""
    for line in httpx.get(f"{metrics_url}/metrics").text.splitlines():
        if line.startswith(f'{name}{{tier="{tier}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_tiny_warm_budget_evicts_to_s3_and_answers_stay_exact(s3, start, bigann):
    """Load with a local budget of one byte: every segment is uploaded, then evicted (only its
    meta file stays local); searches stream what they need and recall is unchanged; after a
    SIGTERM a node with an empty data directory restores it all."""
    base, queries, truth = bigann
    bucket = f"strata-{uuid.uuid4().hex[:8]}"
    client_for(s3).create_bucket(Bucket=bucket)
    env = dict(cold_env(s3, bucket, "tiny"), STRATA_WARM_BYTES="1", STRATA_TIER_MIN_RESIDENCE="0s",
               STRATA_MEMTABLE_MAX_AGE="1s")
    a = start("tiny-a", env=env)
    c = load_bigann(a, base)
    # The memtable is flushed after a second; the mover then evicts every segment written.
    deadline = time.time() + 120
    while True:
        segs = [gauge(a.metrics, "strata_tier_segments", t) for t in ("hot", "warm", "cold")]
        mem = httpx.get(f"{a.metrics}/metrics").text
        if segs[2] >= 1 and segs[0] == segs[1] == 0 and 'strata_points{tier="memtable"} 0' in mem:
            break
        assert time.time() < deadline, f"segments never evicted: {segs}"
        time.sleep(0.5)
    local = sorted(p.name for p in (a.data_dir / "segments").iterdir())
    assert local and all(n.endswith(".meta") for n in local), local
    q, t = queries[:50], truth[:50]
    assert c.count("v", exact=True).count == len(base)
    r = recall(c, "v", q, t)
    assert r >= 0.95, r
    evicted = answers(c, "v", q)
    got = c.retrieve("v", [5], with_vectors=True)[0]
    assert np.allclose(got.vector, base[5])
    metrics = httpx.get(f"{a.metrics}/metrics").text
    for name in ["strata_tier_cold_reads_total", "strata_tier_moves_total", "strata_tier_misses_total",
                 "strata_tier_fetch_seconds_bucket", "strata_tier_streamed_bytes_total",
                 'strata_object_store_requests_total{op="get"}', "strata_search_cold_segments_total"]:
        assert name in metrics, name
    assert a.stop(signal.SIGTERM) == 0

    b = start("tiny-b", env=env)
    c = QdrantClient(url=b.http, api_key=b.admin_token, https=False, timeout=60)
    assert c.count("v", exact=True).count == len(base)
    # The same segments, read from S3 by a node that has nothing local: the same answers.
    assert answers(c, "v", q) == evicted
    assert recall(c, "v", q, t) == r
    assert b.stop(signal.SIGTERM) == 0


def counter(metrics_url, series):
    """The value of counter line `series` (e.g. 'x_total{op="get"}'; 0 when absent)."""
    for line in httpx.get(f"{metrics_url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_actor_states_age_out_to_s3_and_a_cold_get_is_one_ranged_get(s3, start):
    """Actor states flushed to actor segments move to S3 under a one-byte local budget; gets
    return the same value and version at the cost of one ranged GET each; the actor type's
    hint is set over HTTP and shown by /v1/tiers; a node restored from S3 alone answers."""
    bucket = f"strata-{uuid.uuid4().hex[:8]}"
    client_for(s3).create_bucket(Bucket=bucket)
    env = dict(cold_env(s3, bucket, "actors"), STRATA_WARM_BYTES="1", STRATA_TIER_MIN_RESIDENCE="0s",
               STRATA_MEMTABLE_MAX_AGE="1s")
    a = start("actors-a", env=env)
    h = {"api-key": a.admin_token}
    base = f"{a.http}/v1/actors/player"
    versions = {}
    with httpx.Client(headers=h, timeout=30) as c:
        r = c.put(f"{a.http}/v1/actor_types/player/tier", json={"hint": "offload"})
        assert r.status_code == 200, r.text
        for i in range(300):
            r = c.put(f"{base}/p{i:04}", json={"level": i}, headers={"if-none-match": "*"})
            assert r.status_code == 201, r.text
            versions[i] = r.headers["etag"]
        deadline = time.time() + 60
        while True:
            segs = [gauge(a.metrics, "strata_actor_segments", t) for t in ("hot", "warm", "cold")]
            hot_states = gauge(a.metrics, "strata_actor_states", "hot")
            if segs[2] >= 1 and segs[0] == segs[1] == 0 and hot_states == 0:
                break
            assert time.time() < deadline, f"actor segments never reached S3: {segs}, {hot_states} hot"
            time.sleep(0.3)
        assert gauge(a.metrics, "strata_actor_states", "cold") == 300
        local = sorted(p.name for p in (a.data_dir / "segments").iterdir())
        assert local and all(n.endswith(".meta") for n in local), local
        tiers = c.get(f"{a.http}/v1/tiers").json()["result"]
        assert tiers["actor_types"] == [{"actor_type": "player", "hint": "offload",
                                          "segments": {"hot": 0, "warm": 0, "cold": segs[2]}}], tiers
        ranged = 'strata_object_store_requests_total{op="get_ranges"}'
        cold_reads = 'strata_actor_segment_reads_total{tier="cold"}'
        for i in [0, 7, 150, 299]:
            before, reads = counter(a.metrics, ranged), counter(a.metrics, cold_reads)
            g = c.get(f"{base}/p{i:04}")
            assert g.status_code == 200 and g.json() == {"level": i}
            assert g.headers["etag"] == versions[i] and g.headers["content-type"] == "application/json"
            assert counter(a.metrics, ranged) - before == 1, "one ranged GET per cold get"
            assert counter(a.metrics, cold_reads) - reads == 1
        # A conditional write against a cold state: stale → 412 with its cold version; current → 200.
        r = c.put(f"{base}/p0007", json={"level": 70}, headers={"if-match": versions[150]})
        assert r.status_code == 412 and r.headers["etag"] == versions[7]
        r = c.put(f"{base}/p0007", json={"level": 70}, headers={"if-match": versions[7]})
        assert r.status_code == 200
        versions[7] = r.headers["etag"]
        page = c.get(base, params={"limit": 3}).json()["result"]
        assert page["actors"] == ["p0000", "p0001", "p0002"], page
    assert a.stop(signal.SIGTERM) == 0

    b = start("actors-b", env=env)
    with httpx.Client(headers={"api-key": b.admin_token}, timeout=30) as c:
        for i in [7, 299]:
            g = c.get(f"{b.http}/v1/actors/player/p{i:04}")
            assert g.status_code == 200 and g.headers["etag"] == versions[i], (i, g.text)
        assert g.json() == {"level": 299}
    assert b.stop(signal.SIGTERM) == 0
