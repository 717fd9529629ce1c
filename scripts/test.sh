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

echo "== unit, integration, property and crash tests"
cargo nextest run --workspace --no-fail-fast
echo "== doc tests"
cargo test --workspace --doc
