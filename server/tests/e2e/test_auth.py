"""The JWT matrix, minted with an independent library (PyJWT), against the running binary."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def raw_token(header, claims, sign):
    msg = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{msg}.{b64(sign(msg.encode()))}"


def status(server, method, path, token=None, header="authorization", **kw):
    headers = {}
    if token is not None:
        headers = {"authorization": f"Bearer {token}"} if header == "authorization" else {"api-key": token}
    return httpx.request(method, server.http + path, headers=headers, **kw).status_code


@pytest.fixture
def hs(server):
    """A server with a collection `c` of tenant default, and another tenant's collection `c`."""
    admin = server.token(access="m")
    assert status(server, "PUT", "/collections/c", admin, json={"vectors": {"size": 2, "distance": "Dot"}}) == 200
    other = server.token(access="m", tenant="acme")
    assert status(server, "PUT", "/collections/secret", other, json={"vectors": {"size": 2, "distance": "Dot"}}) == 200
    return server


UPSERT = {"json": {"points": [{"id": 1, "vector": [1.0, 2.0]}]}}


def test_positive_cases(hs):
    now = int(time.time())
    assert status(hs, "GET", "/collections/c", hs.token(access="r")) == 200
    assert status(hs, "PUT", "/collections/c/points", hs.token(access="rw"), **UPSERT) == 200
    assert status(hs, "PUT", "/collections/c/points", hs.token(access="rw"), header="api-key", **UPSERT) == 200
    scoped = hs.token(access=[{"collection": "c", "access": "rw"}])
    assert status(hs, "PUT", "/collections/c/points", scoped, **UPSERT) == 200
    assert status(hs, "GET", "/collections/c", hs.token(access="r", nbf=now - 10, sub="alice")) == 200
    assert status(hs, "GET", "/", hs.token(access="r")) == 200
    # No auth on health, readiness and metrics.
    assert status(hs, "GET", "/health") == 200
    assert status(hs, "GET", "/health/ready") == 200
    assert httpx.get(hs.metrics + "/metrics").status_code == 200


def test_refusals(hs):
    now = int(time.time())
    good = {"exp": now + 600, "iat": now, "access": "rw"}
    path = "/collections/c/points/count"
    cases = {
        "no token": (None, 401),
        "garbage": ("not.a.token", 401),
        "alg none": (raw_token({"alg": "none", "typ": "JWT"}, good, lambda m: b""), 401),
        "expired": (hs.token(access="rw", exp=now - 3600, iat=now - 7200), 401),
        "not yet valid": (hs.token(access="rw", nbf=now + 3600), 401),
        "issued in the future": (hs.token(access="rw", iat=now + 3600, exp=now + 7200), 401),
        "wrong key": (jwt.encode(good, "x" * 64, algorithm="HS256"), 401),
        "missing exp": (jwt.encode({"access": "rw"}, hs.secret, algorithm="HS256"), 401),
        "missing access": (hs.token(), 401),
        "lifetime above the maximum": (hs.token(access="rw", exp=now + 400 * 86400), 401),
        "HS384 not configured": (jwt.encode(good, hs.secret, algorithm="HS384"), 401),
    }
    token = hs.token(access="rw")
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "==="))
    claims["tenant"] = "acme"
    cases["tampered payload"] = (f"{h}.{b64(json.dumps(claims).encode())}.{s}", 401)
    for name, (tok, want) in cases.items():
        assert status(hs, "POST", path, tok, json={}) == want, name
    # Valid tokens without the right.
    assert status(hs, "PUT", "/collections/c/points", hs.token(access="r"), **UPSERT) == 403
    assert status(hs, "PUT", "/collections/new", hs.token(access="rw"), json={"vectors": {"size": 2, "distance": "Dot"}}) == 403
    assert status(hs, "DELETE", "/collections/c", hs.token(access="rw")) == 403
    scoped = hs.token(access=[{"collection": "other", "access": "rw"}])
    assert status(hs, "POST", path, scoped, json={}) == 403
    # Another tenant's collection does not exist for this caller.
    assert status(hs, "GET", "/collections/secret", hs.token(access="m")) == 404
    assert status(hs, "GET", "/collections/secret", hs.token(access="m", tenant="acme")) == 200
    names = httpx.get(hs.http + "/collections", headers={"api-key": hs.token(access="r")}).json()["result"]["collections"]
    assert [c["name"] for c in names] == ["c"]


def write_keys(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = b"".join(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                   for k in (rsa_key, ec_key))
    (tmp_path / "keys.pem").write_bytes(pem)
    jwks = {"keys": [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "use": "sig"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1", "use": "sig"},
    ]}
    (tmp_path / "keys.jwks").write_text(json.dumps(jwks))
    rsa_pub_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return rsa_key, ec_key, rsa_pub_pem


@pytest.mark.parametrize("keyfile", ["keys.pem", "keys.jwks"])
def test_public_keys_and_algorithm_confusion(start, tmp_path, keyfile):
    rsa_key, ec_key, rsa_pub_pem = write_keys(tmp_path)
    s = start("pk", "--jwt-public-keys", str(tmp_path / keyfile))
    now = int(time.time())
    claims = {"exp": now + 600, "iat": now, "access": "m"}
    kid = {"keys.jwks": True}.get(keyfile, False)
    rs = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r1"} if kid else None)
    es = jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e1"} if kid else None)
    assert status(s, "GET", "/collections", rs) == 200
    assert status(s, "GET", "/collections", es) == 200
    # HS256 signed with the RSA public key as the HMAC secret: the classic confusion attack.
    forged = raw_token({"alg": "HS256", "typ": "JWT"}, claims, lambda m: hmac.new(rsa_pub_pem, m, hashlib.sha256).digest())
    assert status(s, "GET", "/collections", forged) == 401
    # No HS256 secret is configured on this server, so no HS256 token passes.
    assert s.secret is None
    assert status(s, "GET", "/collections", jwt.encode(claims, "y" * 64, algorithm="HS256")) == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert status(s, "GET", "/collections", jwt.encode(claims, other, algorithm="RS256")) == 401


def test_strata_token_mints_what_the_server_accepts(server):
    import subprocess
    from conftest import BIN
    out = subprocess.run([BIN, "token", "--data-dir", str(server.data_dir), "--tenant", "default", "--access", "rw",
                          "--collection", "c", "--ttl", "1h"], capture_output=True, text=True, check=True).stdout.strip()
    claims = jwt.decode(out, server.secret, algorithms=["HS256"])
    assert claims["access"] == [{"collection": "c", "access": "rw"}] and claims["exp"] - claims["iat"] == 3600
    assert status(server, "POST", "/collections/c/points/count", out, json={}) == 404  # allowed, but no such collection
    assert status(server, "POST", "/collections/d/points/count", out, json={}) == 403
