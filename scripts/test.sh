#!/usr/bin/env bash
# Runs Strata's whole test suite on a fresh machine: installs what the tests need, then runs
# every unit, integration, property, crash and doc test of the workspace.
#
#   ./scripts/test.sh                # everything
#   STRATA_CRASH_ROUNDS=200 ./scripts/test.sh   # a longer SIGKILL crash test
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The Python venv first: its moto is the local S3 server of Rust and Python tests alike.
VENV="${STRATA_TEST_VENV:-$PWD/target/e2e-venv}"
REQ=server/tests/e2e/requirements.txt
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "== installing the e2e test venv ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$WANT" > "$STAMP"
fi
export STRATA_TEST_PYTHON="$VENV/bin/python"

echo "== unit, integration, property and crash tests"
cargo nextest run --workspace --no-fail-fast
echo "== doc tests"
cargo test --workspace --doc

echo "== end-to-end tests: the strata binary against real Python clients"
cargo build -p strata-server --bin strata
if ! command -v node >/dev/null 2>&1; then
  echo "== installing Node.js (for the JS client test)"
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
JS=server/tests/e2e/js
if [ ! -d "$JS/node_modules/@qdrant/js-client-rest" ]; then
  echo "== installing the JS client"
  (cd "$JS" && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
fi
STRATA_BIN="$PWD/target/debug/strata" "$VENV/bin/python" -m pytest -q -p no:cacheprovider server/tests/e2e
