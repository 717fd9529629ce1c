"""Operations: metrics, graceful shutdown under write load, readiness."""

import re
import signal
import threading
import time

import httpx


def test_metrics_are_exposed(server):
    h = {"api-key": server.admin_token}
    httpx.put(f"{server.http}/collections/m", headers=h, json={"vectors": {"size": 2, "distance": "Dot"}})
    httpx.put(f"{server.http}/collections/m/points", headers=h, json={"points": [{"id": 1, "vector": [1, 0]}]})
    httpx.get(f"{server.http}/collections/nope", headers=h)
    text = httpx.get(server.metrics + "/metrics").text
    for name in ["strata_http_requests_total", "strata_http_errors_total", "strata_http_request_duration_seconds_bucket",
                 "strata_wal_fsync_seconds_bucket", "strata_collections", "strata_points", "strata_segments",
                 "strata_bytes", "strata_process_resident_memory_bytes"]:
        assert name in text, name
    # The upsert above is counted under its route template, method and status; the 404 of the
    # missing collection under its own. Parse the samples rather than search for substrings.
    def sample(name, **labels):
        for line in text.splitlines():
            m = re.match(name + r"\{(.*)\} (\S+)$", line)
            if not m:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(m.group(2))
        return None
    ok = sample("strata_http_requests_total", route="/collections/{collection_name}/points",
                method="PUT", status="200")
    assert ok is not None and ok >= 1, text
    missing = sample("strata_http_errors_total", route="/collections/{collection_name}",
                     method="GET", status="404")
    assert missing is not None and missing >= 1, text
    assert sample("strata_http_requests_total", route="/collections/{collection_name}/points",
                  method="PUT", status="503") is None, "no upsert failed"


def test_readiness_reports_writability_and_maintenance(server):
    r = httpx.get(server.http + "/health/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["writable"] is True and body["maintenance"] == "ok" and body["failing_jobs"] == [], body


def test_sigterm_during_writes_loses_no_acknowledged_write(start):
    s = start("shutdown")
    h = {"api-key": s.admin_token}
    assert httpx.put(f"{s.http}/collections/w", headers=h, json={"vectors": {"size": 4, "distance": "Euclid"}}).status_code == 200
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(t):
        i = 0
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                pid = t * 1_000_000 + i
                try:
                    r = c.put(f"{s.http}/collections/w/points", headers=h,
                              json={"points": [{"id": pid, "vector": [float(t), float(i), 0.0, 1.0]}]})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.append(pid)
                i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    code = s.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    assert code == 0
    assert len(acked) > 50, len(acked)
    again = start("shutdown")
    h = {"api-key": again.token(access="r")}
    ids = set()
    offset = None
    while True:
        body = {"limit": 10000, "with_payload": False}
        if offset is not None:
            body["offset"] = offset
        res = httpx.post(f"{again.http}/collections/w/points/scroll", headers=h, json=body).json()["result"]
        ids.update(p["id"] for p in res["points"])
        offset = res["next_page_offset"]
        if offset is None:
            break
    missing = [p for p in acked if p not in ids]
    assert not missing, f"{len(missing)} acknowledged writes lost"
    # It flushed on the way out: nothing to replay.
    assert again.report["recovery"]["wal_records_replayed"] == 0


def test_openapi_document_is_valid_and_complete(server):
    from openapi_spec_validator import validate
    doc = httpx.get(server.http + "/openapi.json").json()
    validate(doc)
    for path in ["/collections/{collection_name}/points/query", "/collections/{collection_name}/points/search/batch", "/health/ready"]:
        assert path in doc["paths"], path


def test_refused_requests_get_the_json_envelope_and_a_warn_log_with_the_route(server):
    h = {"api-key": server.admin_token}
    httpx.put(f"{server.http}/collections/w", headers=h, json={"vectors": {"size": 2, "distance": "Dot"}})
    # A known path with a method it does not serve: 405 with the envelope and the Allow header.
    r = httpx.post(f"{server.http}/collections/w/index", headers=h, json={})
    assert r.status_code == 405, r.text
    assert "PUT" in r.headers.get("allow", ""), r.headers
    assert "(allowed: PUT)" in r.json()["status"]["error"], r.text
    msg = r.json()["status"]["error"]
    assert "POST" in msg and "/collections/{collection_name}/index" in msg, msg
    # An unknown path: 404 with the envelope.
    r = httpx.get(f"{server.http}/no/such/route", headers=h)
    assert r.status_code == 404 and "no route for GET /no/such/route" in r.json()["status"]["error"], r.text
    # A 400 and a 501.
    r400 = httpx.post(f"{server.http}/collections/w/points/count", headers=h, json={"filter": {"must": "nope"}})
    assert r400.status_code == 400 and "filter.must" in r400.json()["status"]["error"], r400.text
    # A path segment that is not UTF-8: still the JSON envelope.
    r = httpx.get(f"{server.http}/collections/%FF", headers=h)
    assert r.status_code in (400, 404) and "error" in r.json()["status"], r.text
    r501 = httpx.post(f"{server.http}/collections/w/points/query", headers=h, json={"query": {"discover": {"target": [1.0, 2.0]}}})
    assert r501.status_code == 501, r501.text
    # Each is logged at warn with method, route template and path (and a 501 is not an ERROR).
    deadline = time.time() + 5
    while True:
        log = open(server.log.name, encoding="utf-8", errors="replace").read()
        if "/no/such/route" in log and "query" in log:
            break
        assert time.time() < deadline, log[-3000:]
        time.sleep(0.05)
    lines = [l for l in log.splitlines() if "request refused" in l]
    def logged(status, method, route):
        return any(str(status) in l and method in l and route in l and "WARN" in l for l in lines)
    assert logged(405, "POST", "/collections/{collection_name}/index"), lines
    assert logged(404, "GET", "/no/such/route"), lines
    assert logged(501, "POST", "/collections/{collection_name}/points/query"), lines
    assert logged(400, "POST", "/collections/{collection_name}/points/count"), lines
    assert not [l for l in log.splitlines() if "ERROR" in l and "discover" in l], "a 501 is logged at warn, not error"


def test_every_qdrant_route_is_served_or_named_in_a_501(server):
    """Qdrant's REST routes (server/tests/e2e/data/qdrant-routes.txt, from its OpenAPI document):
    each is routed here — it answers like a served route, or a JSON 501 naming the feature and the
    route — never the 404 of an unknown path or a 405. docs/api.md lists the 501s."""
    import pathlib
    import re
    listed = pathlib.Path(__file__).parent / "data" / "qdrant-routes.txt"
    routes = [l.split(" ", 1) for l in listed.read_text().splitlines() if l and not l.startswith("#")]
    assert len(routes) > 60
    h = {"api-key": server.admin_token}
    api_doc = (pathlib.Path(__file__).parents[3] / "docs" / "api.md").read_text()
    unsupported = []
    for method, path in routes:
        url = server.http + re.sub(r"\{[^}]+\}", "x1", path)
        r = httpx.request(method, url, headers=h, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert r.status_code != 405, (method, path, r.text)
        assert r.status_code < 500 or r.status_code == 501, (method, path, r.status_code, r.text)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        error = body.get("status", {}).get("error", "") if isinstance(body.get("status"), dict) else ""
        assert not error.startswith("no route for"), (method, path, r.text)
        if r.status_code == 501:
            assert f"{method} {path}" in error, (method, path, error)
            unsupported.append(f"{method} {path}")
    # The 501s are exactly the routes docs/api.md lists as not served (its table of them).
    for u in unsupported:
        assert f"`{u}`" in api_doc, f"docs/api.md does not list {u}"
    table = api_doc[api_doc.index("**Qdrant routes not served.**"):]
    listed_501 = set(re.findall(r"^\| `((?:GET|POST|PUT|PATCH|DELETE) /[^`]+)`", table, re.M))
    assert listed_501 == set(unsupported), (listed_501 ^ set(unsupported))
