"""A bounded schema-conformance fuzz of the HTTP API (issue 11): schemathesis, from PyPI, runs
every operation of `/openapi.json` against the `strata` binary on 127.0.0.1, with every check
but two, and no failure is allowed:

- `not_a_server_error` is replaced by a hook (`schemathesis/strata_hooks.py`) that allows the
  501s the document lists (a Qdrant feature Strata lacks) and nothing else of 5xx.
- `positive_data_acceptance` (a schema-valid request must not get a 4xx) is left out: some
  400s depend on the data, which no schema states — a vector of another dimension than the
  collection's, a facet key without an index, a vector name the collection does not have, a
  filter condition of Qdrant's grammar the document summarises. `negative_data_rejection`
  (invalid input must be refused) and the response checks (status codes, content types,
  schemas, headers, authentication) all run.

Bounded: a fixed seed, 8 examples per operation and phase (about 5,000 requests, ~15 s)."""

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent / "schemathesis"
SCHEMATHESIS = pathlib.Path(sys.executable).with_name("schemathesis")


def test_the_api_conforms_to_its_openapi_document(server):
    env = dict(os.environ, SCHEMATHESIS_HOOKS="strata_hooks", PYTHONPATH=str(HERE))
    cmd = [str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"), "run",
           f"{server.http}/openapi.json",
           # The token as the document's bearer scheme: the authentication checks replace it
           # with a bad one, and expect a 401.
           "-H", f"Authorization: Bearer {server.admin_token}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance,not_a_server_error",
           "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--seed", "1",
           "--no-color"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-20000:]
    assert " passed" in out and "failed" not in out.split("SUMMARY")[-1], out[-5000:]
