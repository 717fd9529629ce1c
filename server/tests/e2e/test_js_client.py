"""The official JS REST client (@qdrant/js-client-rest), unchanged, against the running binary."""

import os
import pathlib
import subprocess

JS = pathlib.Path(__file__).parent / "js"


def test_js_client_everyday_scenario(server):
    assert (JS / "node_modules" / "@qdrant" / "js-client-rest").is_dir(), "run scripts/test.sh: it installs the JS client"
    r = subprocess.run(["node", str(JS / "scenario.mjs")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "STRATA_URL": server.http, "STRATA_TOKEN": server.admin_token})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "js scenario ok" in r.stdout
