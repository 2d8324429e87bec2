#!/usr/bin/env bash
# Prints the bin directory of the project's Python venv (schemathesis for the OpenAPI
# conformance test, tests/tests/schemathesis.rs; fhir.resources, whose R4B models validate
# the FHIR export in tests/tests/fhir.rs), creating it once if needed.
#
# Usage:   scripts/python-venv.sh
#          -> prints e.g. /repo/.cache/venv/schemathesis-4.32.5+fhir.resources-8.3.0/bin
#
# The venv lives under .cache/venv/<pin>/ (git-ignored) and is reused while its stamp file
# names the same requirements; a changed pin makes a new one. Any failure exits non-zero
# with one line on stderr (and the pip log's path).
#
# Needs: bash, python3 >= 3.9 with the venv module (Debian: apt-get install python3-venv),
# flock, and PyPI on the first run.
set -euo pipefail

SCHEMATHESIS=4.32.5
# 8.x is pydantic v2 and ships the R4B models (fhir.resources.R4B) beside R5.
FHIR_RESOURCES=8.3.0
REQUIREMENTS="schemathesis==$SCHEMATHESIS fhir.resources==$FHIR_RESOURCES"

die() {
    echo "scripts/python-venv.sh: $*" >&2
    exit 1
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/venv/schemathesis-$SCHEMATHESIS+fhir.resources-$FHIR_RESOURCES"
stamp="$venv/.requirements"

ready() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$REQUIREMENTS" && -x "$venv/bin/schemathesis" ]]
}

if ready; then
    echo "$venv/bin"
    exit 0
fi

command -v python3 >/dev/null || die "python3 is needed (Debian: apt-get install python3 python3-venv)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "python3 >= 3.9 is needed for schemathesis $SCHEMATHESIS, found $(python3 --version 2>&1)"
mkdir -p "$root/.cache/venv" || die "cannot create $root/.cache/venv"

# Several test processes may ask at once: one builds, the others wait for it.
exec 9>"$root/.cache/venv/.lock"
flock -w 900 9 || die "timed out waiting for another build of the venv (lock $root/.cache/venv/.lock)"
if ready; then
    echo "$venv/bin"
    exit 0
fi

log="$root/.cache/venv/pip-install.log"
rm -rf "$venv"
python3 -m venv "$venv" >"$log" 2>&1 ||
    die "python3 -m venv failed (Debian: apt-get install python3-venv): $(tail -n1 "$log") (full log: $log)"
# shellcheck disable=SC2086 # one word per requirement
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS >>"$log" 2>&1; then
    rm -rf "$venv"
    die "pip install $REQUIREMENTS failed: $(grep -v '^\s*$' "$log" | tail -n1) (full log: $log)"
fi
reported="$("$venv/bin/schemathesis" --version 2>&1)" || {
    rm -rf "$venv"
    die "the installed schemathesis does not run: $reported"
}
[[ "$reported" == *"$SCHEMATHESIS"* ]] || {
    rm -rf "$venv"
    die "schemathesis reports '$reported', expected $SCHEMATHESIS"
}
fhir="$("$venv/bin/python" -c 'import fhir.resources, fhir.resources.R4B.bundle; print(fhir.resources.__version__)' 2>&1)" || {
    rm -rf "$venv"
    die "the installed fhir.resources has no usable R4B models: $(tail -n1 <<<"$fhir")"
}
[[ "$fhir" == "$FHIR_RESOURCES" ]] || {
    rm -rf "$venv"
    die "fhir.resources reports '$fhir', expected $FHIR_RESOURCES"
}
echo "$REQUIREMENTS" >"$stamp"
echo "$venv/bin"
