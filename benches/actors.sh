#!/usr/bin/env bash
# The actor-state bench beside Redis (docs/benchmarks.md, "Actor state vs Redis"): installs
# Debian's redis-server when it is missing (the version measured, else the distribution's),
# then runs the bench. Knobs (ACTORS_SECONDS, ACTORS_CLIENTS, ...) are in benches/benches/actors.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y 'redis-server=5:7.0.15-1~deb12u7' \
    || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y redis-server
fi
exec cargo bench -p strata-benches --bench actors "$@"
