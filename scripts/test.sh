#!/usr/bin/env bash
# The whole test suite (the README's test command; CI calls it too): provides the pinned
# nats-server 2.15.1 for the JetStream tests (scripts/nats-server.sh; a missing server is
# a loud failure, never a skip) and the Python venv with the pinned schemathesis for the
# OpenAPI conformance test (scripts/python-venv.sh), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER_BIN="$(bash scripts/nats-server.sh)"
export NATS_SERVER_BIN
echo "using $("$NATS_SERVER_BIN" --version)"
THROUGHCARE_VENV_BIN="$(bash scripts/python-venv.sh)"
export THROUGHCARE_VENV_BIN
echo "using $("$THROUGHCARE_VENV_BIN/schemathesis" --version)"
exec cargo test --workspace --all-targets "$@"
