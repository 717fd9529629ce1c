"""Collection snapshots through the official client: create / list / download / delete, and
recover from a file:// location (in place, with a checksum) and an http:// location on a second
server (whose log is behind), with the data checked exactly."""

import hashlib
import http.server
import tarfile
import io
import threading

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models


def everything(client, name):
    pts, _ = client.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
    return sorted((p.id, tuple(np.round(p.vector, 5)), tuple(sorted(p.payload.items()))) for p in pts)


def test_snapshot_create_download_recover(start, tmp_path):
    a = start("a")
    client = QdrantClient(url=a.http, api_key=a.admin_token)
    client.create_collection("docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    rng = np.random.default_rng(1)
    for batch in range(5):
        client.upsert("docs", points=[models.PointStruct(id=batch * 100 + i, vector=rng.standard_normal(4).tolist(),
                                                         payload={"batch": batch, "tag": f"t{i % 3}"}) for i in range(50)])
    client.create_payload_index("docs", "tag", models.PayloadSchemaType.KEYWORD)
    client.delete("docs", points_selector=models.PointIdsList(points=[0, 1, 2]))
    want = everything(client, "docs")
    snap = client.create_snapshot("docs")
    assert snap.name.endswith(".snapshot") and snap.size > 0 and len(snap.checksum) == 64
    assert [s.name for s in client.list_snapshots("docs")] == [snap.name]
    h = {"api-key": a.admin_token}
    r = httpx.get(f"{a.http}/collections/docs/snapshots/{snap.name}", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(r.content).hexdigest() == snap.checksum
    names = tarfile.open(fileobj=io.BytesIO(r.content)).getnames()
    assert names[0] == "MANIFEST" and all(n.startswith("segments/") and n.endswith(".seg") for n in names[1:])

    # Later changes are undone by recovering in place from the file:// location.
    client.delete("docs", points_selector=models.PointIdsList(points=list(range(100, 150))))
    client.upsert("docs", points=[models.PointStruct(id=9999, vector=[1.0, 0, 0, 0])])
    location = f"file://{a.data_dir}/snapshots/default/docs/{snap.name}"
    assert client.recover_snapshot("docs", location=location, checksum=snap.checksum)
    assert everything(client, "docs") == want
    assert client.count("docs", count_filter=models.Filter(must=[models.FieldCondition(key="tag", match=models.MatchValue(value="t0"))])).count \
        == sum(1 for p in want if ("tag", "t0") in p[2])
    assert "tag" in client.get_collection("docs").payload_schema

    # A second server recovers it over http:// (served here without credentials).
    served = tmp_path / "served"
    served.mkdir()
    (served / snap.name).write_bytes(r.content)
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        b = start("b")
        other = QdrantClient(url=b.http, api_key=b.admin_token)
        assert other.recover_snapshot("copy", location=f"http://127.0.0.1:{httpd.server_port}/{snap.name}")
        assert everything(other, "copy") == want
        # Its log was behind the snapshot's versions: a new write still wins, also after a restart.
        other.upsert("copy", points=[models.PointStruct(id=3, vector=[0, 0, 0, 1.0], payload={"new": True})])
        b.stop()
        b2 = start("b")
        again = QdrantClient(url=b2.http, api_key=b.admin_token)  # the secret persists
        assert again.retrieve("copy", ids=[3])[0].payload == {"new": True}
        assert again.count("copy").count == len(want)  # point 3 existed: overwritten, not added
    finally:
        httpd.shutdown()

    # Errors: bad checksum, locations outside the snapshots directory, unknown snapshot.
    for body, status, field in [({"location": location, "checksum": "ab" * 32}, 400, "checksum"),
                                ({"location": "file:///etc/passwd"}, 403, "snapshots"),
                                ({"location": "ftp://x"}, 400, "location"),
                                ({"location": "https://example.com/x.snapshot"}, 501, "https"),
                                ({}, 400, "location")]:
        r = httpx.put(f"{a.http}/collections/docs/snapshots/recover", headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], (body, r.text)
    # Another tenant's manager cannot restore this tenant's snapshot from its file path.
    acme = {"authorization": f"Bearer {a.token(access='m', tenant='acme')}"}
    r = httpx.put(f"{a.http}/collections/docs/snapshots/recover", headers=acme, json={"location": location})
    assert r.status_code == 403 and "snapshots/acme" in r.json()["status"]["error"], r.text
    # An http:// location that answers 404 is the request's fault: 400 naming the location.
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        missing = f"http://127.0.0.1:{httpd.server_port}/missing.snapshot"
        r = httpx.put(f"{a.http}/collections/docs/snapshots/recover", headers=h, json={"location": missing})
        assert r.status_code == 400 and "404" in r.json()["status"]["error"], r.text
    finally:
        httpd.shutdown()
    assert everything(client, "docs") == want
    r = httpx.post(f"{a.http}/collections/docs/snapshots/upload", headers=h)
    assert r.status_code == 501 and "upload" in r.json()["status"]["error"], r.text
    ro = a.token(access="r")
    assert httpx.post(f"{a.http}/collections/docs/snapshots", headers={"authorization": f"Bearer {ro}"}).status_code == 403
    assert client.delete_snapshot("docs", snap.name)
    assert client.list_snapshots("docs") == []
    assert httpx.delete(f"{a.http}/collections/docs/snapshots/{snap.name}", headers=h).status_code == 404
    assert httpx.get(f"{a.http}/collections/docs/snapshots/nope.snapshot", headers=h).status_code == 404
