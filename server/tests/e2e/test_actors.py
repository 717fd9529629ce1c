"""Actor state over HTTP against the `strata` binary: ETag / If-Match / If-None-Match semantics,
linearizable read-modify-write increments from concurrent clients across a SIGKILL and restart,
TTL, transactions all or nothing, paged listing, and the JWT `actors` claim."""

import signal
import threading
import time

import httpx


def counter(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.text
    return int(r.content), r.headers["etag"]


def increment(client, url, stop=None):
    """One If-Match increment, retried on 412; returns True once acknowledged."""
    while stop is None or not stop.is_set():
        n, tag = counter(client, url)
        r = client.put(url, content=str(n + 1).encode(), headers={"if-match": tag, "content-type": "text/plain"})
        if r.status_code == 200:
            assert r.headers["etag"] != tag
            return True
        assert r.status_code == 412, r.text
        assert r.headers["etag"] != tag, "a 412 carries the current ETag"
    return False


def test_conditions_etags_and_content_types(server):
    h = {"api-key": server.admin_token}
    base = f"{server.http}/v1/actors/player"
    with httpx.Client(headers=h) as c:
        r = c.put(f"{base}/p1", json={"hp": 10}, headers={"if-none-match": "*"})
        assert r.status_code == 201, r.text
        tag = r.headers["etag"]
        assert r.json()["result"]["version"] == int(tag.strip('"'))
        r = c.put(f"{base}/p1", json={"hp": 11}, headers={"if-none-match": "*"})
        assert r.status_code == 412 and r.headers["etag"] == tag, r.text
        g = c.get(f"{base}/p1")
        assert g.status_code == 200 and g.json() == {"hp": 10}
        assert g.headers["content-type"] == "application/json" and g.headers["etag"] == tag
        r = c.put(f"{base}/p1", content=b"\x00\x01", headers={"if-match": '"999999"', "content-type": "application/octet-stream"})
        assert r.status_code == 412 and r.headers["etag"] == tag
        r = c.put(f"{base}/p1/inventory", content=b"\x00\x01", headers={"content-type": "application/octet-stream"})
        assert r.status_code == 201 and r.headers["location"] == "/v1/actors/player/p1/inventory", "any create"
        g = c.get(f"{base}/p1/inventory")
        assert g.content == b"\x00\x01" and g.headers["content-type"] == "application/octet-stream"
        r = c.delete(f"{base}/p1", headers={"if-match": tag})
        assert r.status_code == 200
        r = c.get(f"{base}/p1")
        assert r.status_code == 404 and "no state" in r.json()["status"]["error"]
        # Bad input names the problem.
        r = c.put(f"{base}/p1", content=b"x", headers={"if-match": "nope"})
        assert r.status_code == 400 and "If-Match" in r.json()["status"]["error"]
        r = c.put(f"{base}/p1", content=b"x", params={"ttl": "0"})
        assert r.status_code == 400 and "ttl" in r.json()["status"]["error"]
        r = c.put(f"{server.http}/v1/actors/bad%20type/p1", content=b"x")
        assert r.status_code == 400 and "actor type" in r.json()["status"]["error"]
    # The metrics count what happened: reads, states written, failed conditions, live states.
    m = httpx.get(f"{server.metrics}/metrics").text
    def metric(name):
        line = next(l for l in m.splitlines() if l.startswith(name + " ") or l.startswith(name + "{"))
        return float(line.rsplit(" ", 1)[1])
    assert (metric("strata_actor_gets_total"), metric("strata_actor_conflicts_total"),
            metric("strata_actor_writes_total")) == (3, 2, 3)
    assert 'strata_actor_states{tier="hot"} 1' in m, [l for l in m.splitlines() if "actor_states" in l]


def test_http_conditional_request_semantics(server):
    """RFC 9110 §13: If-Match `*` and lists with strong comparison (weak or foreign tags never
    match: 412), GET If-None-Match → 304, 201 + Location for every create, DELETE of an absent
    state → 404 without writing anything."""
    h = {"api-key": server.admin_token}
    base = f"{server.http}/v1/actors/door"
    with httpx.Client(headers=h) as c:
        r = c.put(f"{base}/d%20one", content=b"open", headers={"if-match": "*"})
        assert r.status_code == 412 and "etag" not in r.headers, "If-Match: * needs an existing state"
        r = c.put(f"{base}/d%20one", content=b"open")
        assert r.status_code == 201 and r.headers["location"] == "/v1/actors/door/d%20one", r.headers
        tag = r.headers["etag"]
        r = c.put(f"{base}/d%20one", content=b"shut", headers={"if-match": "*"})
        assert r.status_code == 200 and "location" not in r.headers
        tag2 = r.headers["etag"]
        # Weak, foreign and stale tags never match (strong comparison): 412 with the current ETag.
        for bad in [f"W/{tag2}", '"not-ours"', tag, f'"x", W/{tag2}']:
            r = c.put(f"{base}/d%20one", content=b"no", headers={"if-match": bad})
            assert r.status_code == 412 and r.headers["etag"] == tag2, (bad, r.status_code, r.text)
        # A list holding the current tag matches.
        r = c.put(f"{base}/d%20one", content=b"ajar", headers={"if-match": f'"x", {tag2}'})
        assert r.status_code == 200, r.text
        tag3 = r.headers["etag"]
        for bad in ['"unterminated', "12", '"a" "b"']:
            r = c.put(f"{base}/d%20one", content=b"no", headers={"if-match": bad})
            assert r.status_code == 400 and "If-Match" in r.json()["status"]["error"], (bad, r.text)
        # Reads: If-None-Match with the current tag (weak comparison, lists, *) → 304, no body.
        for inm in [tag3, f"W/{tag3}", f'"1", {tag3}', "*"]:
            r = c.get(f"{base}/d%20one", headers={"if-none-match": inm})
            assert r.status_code == 304 and r.headers["etag"] == tag3 and r.content == b"", inm
        r = c.get(f"{base}/d%20one", headers={"if-none-match": tag})
        assert r.status_code == 200 and r.content == b"ajar"

        # Deleting what is not there writes nothing.
        def writes():
            for line in httpx.get(f"{server.metrics}/metrics").text.splitlines():
                if line.startswith("strata_actor_writes_total"):
                    return float(line.split()[-1])
            return 0.0
        before = writes()
        r = c.delete(f"{base}/nobody")
        assert r.status_code == 404 and "no state" in r.json()["status"]["error"], r.text
        r = c.delete(f"{base}/nobody", headers={"if-match": "*"})
        assert r.status_code == 412
        assert writes() == before, "no tombstone written"
        r = c.delete(f"{base}/d%20one", headers={"if-match": tag3})
        assert r.status_code == 200 and writes() == before + 1
        r = c.post(f"{base}/d%20one/transaction", json={"operations": [{"op": "delete", "state": "state"}]})
        assert r.status_code == 200 and r.json()["result"]["version"] is None and "etag" not in r.headers
        r = c.post(f"{base}/d%20one/transaction", json={"operations": [{"op": "put", "value": 1, "if_match": "*"}]})
        assert r.status_code == 412, r.text


def test_ttl_transactions_and_listing(server):
    h = {"api-key": server.admin_token}
    base = f"{server.http}/v1/actors/cart"
    with httpx.Client(headers=h) as c:
        assert c.put(f"{base}/u1", content=b"x", params={"ttl": "1"}).status_code == 201
        assert c.get(f"{base}/u1").status_code == 200
        time.sleep(1.2)
        assert c.get(f"{base}/u1").status_code == 404, "expired"
        v = c.put(f"{base}/u2/a", content=b"1").json()["result"]["version"]
        tx = {"operations": [
            {"op": "put", "state": "a", "value": 2, "if_match": v},
            {"op": "put", "state": "b", "value_base64": "AAE=", "if_none_match": True},
            {"op": "delete", "state": "c", "if_match": 12345},
        ]}
        r = c.post(f"{base}/u2/transaction", json=tx)
        assert r.status_code == 412 and "\"c\"" in r.json()["status"]["error"], r.text
        assert c.get(f"{base}/u2/a").content == b"1" and c.get(f"{base}/u2/b").status_code == 404, "nothing applied"
        tx["operations"][2] = {"op": "delete", "state": "c"}
        r = c.post(f"{base}/u2/transaction", json=tx)
        assert r.status_code == 200, r.text
        lsn = r.json()["result"]["version"]
        assert c.get(f"{base}/u2/a").json() == 2 and c.get(f"{base}/u2/b").content == b"\x00\x01"
        assert c.get(f"{base}/u2/a").headers["etag"] == f'"{lsn}"' == c.get(f"{base}/u2/b").headers["etag"]
        r = c.post(f"{base}/u2/transaction", json={"operations": [{"op": "put", "state": "a", "value": 1, "ttl": 2**62}]})
        assert r.status_code == 400 and "operations[0].ttl" in r.json()["status"]["error"], r.text
        r = c.post(f"{base}/u2/transaction", json={"operations": [{"op": "put", "state": "a"}]})
        assert r.status_code == 400 and "operations[0].value" in r.json()["status"]["error"]
        for i in range(5):
            c.put(f"{base}/l{i}", content=b"x")
        page = c.get(base, params={"limit": 3}).json()["result"]
        assert page["actors"] == ["l0", "l1", "l2"] and page["next"] == "l2"
        page = c.get(base, params={"limit": 3, "after": page["next"]}).json()["result"]
        assert page["actors"] == ["l3", "l4", "u2"] and page["next"] == "u2"
        assert c.get(base, params={"after": "u2"}).json()["result"] == {"actors": [], "next": None}


def test_the_actors_claim_guards_each_type(server):
    base = f"{server.http}/v1/actors"
    admin = {"api-key": server.admin_token}
    assert httpx.put(f"{base}/a/x", content=b"1", headers=admin).status_code == 201
    reader = {"api-key": server.token(access="r", actors="r")}
    assert httpx.get(f"{base}/a/x", headers=reader).status_code == 200
    assert httpx.put(f"{base}/a/x", content=b"2", headers=reader).status_code == 403
    none = {"api-key": server.token(access="rw")}
    r = httpx.get(f"{base}/a/x", headers=none)
    assert r.status_code == 403 and "actors" in r.json()["status"]["error"]
    per_type = {"api-key": server.token(access="r", actors=[{"type": "a", "access": "rw"}])}
    assert httpx.put(f"{base}/a/x", content=b"3", headers=per_type).status_code == 200
    assert httpx.put(f"{base}/b/x", content=b"3", headers=per_type).status_code == 403
    other_tenant = {"api-key": server.token(access="m", tenant="t2")}
    assert httpx.get(f"{base}/a/x", headers=other_tenant).status_code == 404, "tenants are isolated"
    assert httpx.get(f"{base}/a/x").status_code == 401
    # A manager token with a narrower actors claim gets that claim.
    narrow = {"api-key": server.token(access="m", actors="r")}
    assert httpx.get(f"{base}/a/x", headers=narrow).status_code == 200
    assert httpx.put(f"{base}/a/x", content=b"4", headers=narrow).status_code == 403
    # Reads of a type never written create nothing: 404 and an empty list.
    assert httpx.get(f"{base}/never/x", headers=admin).status_code == 404
    assert httpx.get(f"{base}/never", headers=admin).json()["result"] == {"actors": [], "next": None}
    m = httpx.get(f"{server.metrics}/metrics").text
    assert "strata_actor_stores 1\n" in m, [l for l in m.splitlines() if "actor_stores" in l]  # only "a": no read created one


def test_concurrent_increments_lose_nothing_acknowledged_across_sigkill(start):
    s = start("data")
    url_of = lambda srv: f"{srv.http}/v1/actors/counter/c1"
    h = {"api-key": s.admin_token}
    assert httpx.put(url_of(s), content=b"0", headers=h).status_code == 201
    clients, each = 8, 25
    acked = [0] * clients
    stop = threading.Event()

    def run(i, srv, n):
        with httpx.Client(headers=h, timeout=10) as c:
            for _ in range(n):
                try:
                    if not increment(c, url_of(srv), stop):
                        return
                except httpx.HTTPError:
                    return  # the server was killed mid-request: not acknowledged
                acked[i] += 1

    # Far more increments than fit before the kill: it lands mid-run.
    threads = [threading.Thread(target=run, args=(i, s, 100_000)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    s.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    before = sum(acked)
    assert 0 < before < clients * 100_000, before
    s2 = start("data")
    h = {"api-key": s2.token(access="m")}
    with httpx.Client(headers=h) as c:
        value, _ = counter(c, url_of(s2))
    # Every acknowledged increment survived; at most one in-flight per client may also have.
    assert before <= value <= before + clients, (before, value)
    stop.clear()
    acked = [0] * clients
    threads = [threading.Thread(target=run, args=(i, s2, each)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(acked) == clients * each
    with httpx.Client(headers=h) as c:
        final, _ = counter(c, url_of(s2))
    assert final == value + clients * each, (final, value)


def test_grpc_actors_conditions_and_increments_across_sigkill(start, strata_pb):
    import grpc

    pb, pb_grpc = strata_pb
    s = start("data")
    md = [("api-key", s.admin_token)]

    def stub(srv):
        return pb_grpc.ActorsStub(grpc.insecure_channel(srv.grpc))

    a = stub(s)
    w = a.Put(pb.PutActorStateRequest(actor_type="g", actor_id="c", value=b"0", content_type="text/plain",
                                      condition=pb.ActorCondition(if_none_match=True)), metadata=md)
    try:
        a.Put(pb.PutActorStateRequest(actor_type="g", actor_id="c", value=b"1",
                                      condition=pb.ActorCondition(if_match=w.version + 999)), metadata=md)
        raise AssertionError("a stale If-Match must fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(e.trailing_metadata())["strata-current-version"] == str(w.version)
    got = a.Get(pb.GetActorStateRequest(actor_type="g", actor_id="c"), metadata=md)
    assert (got.found, got.value, got.content_type, got.version) == (True, b"0", "text/plain", w.version)
    tx = a.Transaction(pb.ActorTransactionRequest(actor_type="g", actor_id="c", operations=[
        pb.ActorOperation(state="x", value=b"1", ttl_seconds=60), pb.ActorOperation(state="y", delete=True)]), metadata=md)
    assert a.Get(pb.GetActorStateRequest(actor_type="g", actor_id="c", state="x"), metadata=md).version == tx.version
    assert list(a.List(pb.ListActorsRequest(actor_type="g"), metadata=md).actor_ids) == ["c"]
    # Deleting a state that does not exist: NOT_FOUND, nothing written; if_exists as If-Match: *.
    for call, req, code in [
            (a.Delete, pb.DeleteActorStateRequest(actor_type="g", actor_id="c", state="nothing"),
             grpc.StatusCode.NOT_FOUND),
            (a.Put, pb.PutActorStateRequest(actor_type="g", actor_id="c", state="nothing", value=b"1",
                                            condition=pb.ActorCondition(if_exists=True)),
             grpc.StatusCode.FAILED_PRECONDITION)]:
        try:
            call(req, metadata=md)
            raise AssertionError("must fail")
        except grpc.RpcError as e:
            assert e.code() == code, e
    assert a.Put(pb.PutActorStateRequest(actor_type="g", actor_id="c", state="x", value=b"2",
                                         condition=pb.ActorCondition(if_exists=True)), metadata=md).version > tx.version

    clients = 6
    acked = [0] * clients
    stop = threading.Event()

    def run(i, srv, n, md):
        st = stub(srv)
        for _ in range(n):
            while not stop.is_set():
                try:
                    cur = st.Get(pb.GetActorStateRequest(actor_type="g", actor_id="c"), metadata=md)
                    st.Put(pb.PutActorStateRequest(actor_type="g", actor_id="c", value=str(int(cur.value) + 1).encode(),
                                                   condition=pb.ActorCondition(if_match=cur.version)), metadata=md)
                    acked[i] += 1
                    break
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        return  # the server is gone: not acknowledged
            else:
                return

    threads = [threading.Thread(target=run, args=(i, s, 100_000, md)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    s.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    before = sum(acked)
    assert 0 < before < clients * 100_000, before
    s2 = start("data")
    md2 = [("api-key", s2.token(access="m"))]
    value = int(stub(s2).Get(pb.GetActorStateRequest(actor_type="g", actor_id="c"), metadata=md2).value)
    assert before <= value <= before + clients, (before, value)
    stop.clear()
    acked = [0] * clients
    threads = [threading.Thread(target=run, args=(i, s2, 30, md2)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(acked) == clients * 30
    final = int(stub(s2).Get(pb.GetActorStateRequest(actor_type="g", actor_id="c"), metadata=md2).value)
    assert final == value + clients * 30


class Session:
    """One `Actors/Session` stream used call by call: send an operation, wait for its answer."""

    def __init__(self, pb, stub, md):
        import queue

        self.pb, self.q, self.n = pb, queue.Queue(), 0
        self.answers = stub.Session(iter(self.q.get, None), metadata=md)

    def call(self, **op):
        self.n += 1
        self.q.put(self.pb.ActorSessionRequest(id=self.n, **op))
        r = next(self.answers)
        assert r.id == self.n, (r.id, self.n)
        return r

    def close(self):
        self.q.put(None)


def test_grpc_session_stream_carries_operations_with_the_unary_rules(start, strata_pb):
    """`Actors/Session`: pipelined operations answered by id (more than the in-flight cap at
    once), the unary calls' errors per operation without ending the stream, rights checked per
    operation, the stream ended once its token expires, and CAS increments over sessions."""
    import grpc

    pb, pb_grpc = strata_pb
    s = start("data", env={"STRATA_JWT_LEEWAY": "0s"})
    md = [("api-key", s.admin_token)]
    stub = pb_grpc.ActorsStub(grpc.insecure_channel(s.grpc))
    create = pb.ActorCondition(if_none_match=True)

    # 3000 creates sent without waiting (the server holds at most 1024 in flight): every one
    # answered once, by its id, each with its own version.
    reqs = [pb.ActorSessionRequest(id=i, put=pb.PutActorStateRequest(
        actor_type="s", actor_id=f"a{i}", value=str(i).encode(), condition=create)) for i in range(1, 3001)]
    answers = {}
    for r in stub.Session(iter(reqs), metadata=md):
        assert r.id not in answers and r.WhichOneof("result") == "write", r
        answers[r.id] = r.write.version
    assert sorted(answers) == list(range(1, 3001))
    assert len(set(answers.values())) == 3000 and min(answers.values()) > 0

    c = Session(pb, stub, md)
    g = c.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a7"))
    assert (g.get.found, g.get.value, g.get.version) == (True, b"7", answers[7])
    assert g.get.content_type == "application/octet-stream"
    e = c.call(put=pb.PutActorStateRequest(actor_type="s", actor_id="a7", value=b"x", condition=create)).error
    assert (e.code, e.current_version) == (grpc.StatusCode.FAILED_PRECONDITION.value[0], answers[7]), e
    e = c.call(put=pb.PutActorStateRequest(actor_type="s", actor_id="new", value=b"x",
                                           condition=pb.ActorCondition(if_match=answers[7]))).error
    assert e.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and not e.HasField("current_version"), e
    e = c.call(delete=pb.DeleteActorStateRequest(actor_type="s", actor_id="a7", state="nothing")).error
    assert e.code == grpc.StatusCode.NOT_FOUND.value[0] and "nothing" in e.message, e
    e = c.call().error
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "op" in e.message, e
    e = c.call(put=pb.PutActorStateRequest(actor_type="s", actor_id="a7", value=b"x", ttl_seconds=0)).error
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "ttl_seconds" in e.message, e
    w = c.call(transaction=pb.ActorTransactionRequest(actor_type="s", actor_id="a7", operations=[
        pb.ActorOperation(state="x", value=b"1", content_type="text/plain"),
        pb.ActorOperation(state="state", delete=True)])).write
    assert w.version > max(answers.values())
    g = c.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a7", state="x")).get
    assert (g.value, g.content_type, g.version) == (b"1", "text/plain", w.version)
    assert not c.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a7")).get.found
    assert not c.call(get=pb.GetActorStateRequest(actor_type="never", actor_id="a7")).get.found
    d = c.call(delete=pb.DeleteActorStateRequest(actor_type="s", actor_id="a7", state="x")).write
    assert d.version > w.version
    c.close()

    # Rights per operation: a read-only token reads, its writes are refused, the stream goes on.
    r = Session(pb, stub, [("api-key", s.token(access="r", actors="r"))])
    assert r.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a8")).get.value == b"8"
    e = r.call(put=pb.PutActorStateRequest(actor_type="s", actor_id="a8", value=b"x")).error
    assert e.code == grpc.StatusCode.PERMISSION_DENIED.value[0] and "actors" in e.message, e
    assert r.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a8")).get.value == b"8"
    r.close()

    # No token: the stream is refused; an expired token ends a stream that was open.
    try:
        next(stub.Session(iter([pb.ActorSessionRequest(id=1)])))
        raise AssertionError("a session without a token must be refused")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    short = Session(pb, stub, [("api-key", s.token(access="rw", actors="rw", exp=int(time.time()) + 2))])
    assert short.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a9")).get.value == b"9"
    time.sleep(3.2)
    try:
        short.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="a9"))
        raise AssertionError("an expired token must end the stream")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in err.details().lower(), err

    # Read-modify-write increments with if_match over sessions, retried on conflict: none lost.
    clients, each = 4, 40
    assert Session(pb, stub, md).call(put=pb.PutActorStateRequest(
        actor_type="s", actor_id="counter", value=b"0")).write.version > 0

    def run():
        ss = Session(pb, stub, md)
        for _ in range(each):
            while True:
                cur = ss.call(get=pb.GetActorStateRequest(actor_type="s", actor_id="counter")).get
                a = ss.call(put=pb.PutActorStateRequest(actor_type="s", actor_id="counter",
                                                        value=str(int(cur.value) + 1).encode(),
                                                        condition=pb.ActorCondition(if_match=cur.version)))
                if a.WhichOneof("result") == "write":
                    break
                assert a.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0], a
        ss.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    g = Session(pb, stub, md).call(get=pb.GetActorStateRequest(actor_type="s", actor_id="counter")).get
    assert int(g.value) == clients * each
    s.stop()
