"""Harness for end-to-end tests: starts the real `strata` binary on loopback ports."""

import json
import os
import pathlib
import signal
import subprocess
import time

import jwt
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("STRATA_BIN", str(ROOT / "target" / "debug" / "strata"))


class Server:
    """A running `strata serve` on 127.0.0.1 with ephemeral ports."""

    def __init__(self, data_dir, *extra, env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        args = [BIN, "serve", "--bind", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                "--metrics-port", "0", "--data-dir", str(self.data_dir), *extra]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=full_env)
        self.lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"strata exited early ({self.proc.wait()}): see {self.log.name}\n{self.lines}")
            self.lines.append(line)
            if '"listening"' in line:
                break
        listen = json.loads(self.lines[-1])["listening"]
        self.http = f"http://{listen['http']}"
        self.metrics = f"http://{listen['metrics']}"
        self.grpc = listen["grpc"]
        self.report = json.loads(self.lines[0])
        self.admin_token = next((self.lines[i + 1].strip() for i, l in enumerate(self.lines) if l.startswith("admin token")), None)
        secret_file = self.data_dir / "jwt-secret"
        self.secret = secret_file.read_text().strip() if secret_file.exists() else None

    def token(self, **claims):
        """An HS256 token signed with this server's secret; `exp` defaults to one hour."""
        now = int(time.time())
        body = {"exp": now + 3600, "iat": now}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.secret, algorithm="HS256")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc.stdout.close()
        self.log.close()
        return code


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    s.stop(signal.SIGKILL if s.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def start(tmp_path):
    """Starts servers on demand; stops them all at the end."""
    started = []

    def _start(name="data", *extra, env=None):
        s = Server(tmp_path / name, *extra, env=env)
        started.append(s)
        return s

    yield _start
    for s in started:
        if s.proc.poll() is None:
            s.stop(signal.SIGKILL)


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


@pytest.fixture(scope="session")
def strata_pb(tmp_path_factory):
    """Python stubs generated from the checked-in proto."""
    import importlib
    import sys

    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("stubs")
    proto_dir = ROOT / "server" / "proto"
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(proto_dir / "strata" / "v1" / "strata.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, str(out))
    pb = importlib.import_module("strata.v1.strata_pb2")
    pb_grpc = importlib.import_module("strata.v1.strata_pb2_grpc")
    return pb, pb_grpc


@pytest.fixture(scope="session")
def bigann():
    d = ROOT / "testdata" / "bigann10k"
    base = read_vecs(d / "bigann10k_base.fvecs", np.float32)
    queries = read_vecs(d / "bigann10k_query.fvecs", np.float32)
    truth = read_vecs(d / "bigann10k_groundtruth.ivecs", np.int32)
    return base, queries, truth
