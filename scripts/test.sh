#!/usr/bin/env bash
# The whole test suite (the README's test command; CI calls it too): provides the pinned
# nats-server 2.15.1 for the JetStream tests (scripts/nats-server.sh; a missing server is
# a loud failure, never a skip) and the Python venv with the pinned schemathesis for the
# OpenAPI conformance test (scripts/python-venv.sh), and Debian's chromium, chromium-driver
# and the pinned axe-core for the browser tests (scripts/browser.sh; a missing browser is a
# loud failure too), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER_BIN="$(bash scripts/nats-server.sh)"
export NATS_SERVER_BIN
echo "using $("$NATS_SERVER_BIN" --version)"
THROUGHCARE_VENV_BIN="$(bash scripts/python-venv.sh)"
export THROUGHCARE_VENV_BIN
echo "using $("$THROUGHCARE_VENV_BIN/schemathesis" --version)"
# scripts/browser.sh prints NAME=path lines (THROUGHCARE_CHROMIUM, _CHROMEDRIVER, _AXE_JS).
browser_env="$(bash scripts/browser.sh)"
while IFS= read -r line; do
    export "${line?}"
done <<<"$browser_env"
echo "using $("$THROUGHCARE_CHROMIUM" --version 2>/dev/null), $("$THROUGHCARE_CHROMEDRIVER" --version 2>/dev/null | cut -d' ' -f1-2), axe-core $THROUGHCARE_AXE_JS"
exec cargo test --workspace --all-targets "$@"
