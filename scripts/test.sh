#!/usr/bin/env bash
# The whole test suite (the README's test command; CI calls it too): provides the pinned
# nats-server for the JetStream tests, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/nats-server.sh ]; then
  NATS_SERVER_BIN="$(bash scripts/nats-server.sh)"
  export NATS_SERVER_BIN
fi
exec cargo test --workspace --all-targets "$@"
