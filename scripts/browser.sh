#!/usr/bin/env bash
# Provides what the browser tests (tests/tests/browser.rs) need and prints it as three
# NAME=path lines, one per line, for `export`:
#
#   THROUGHCARE_CHROMIUM=/usr/bin/chromium            Debian's `chromium` package
#   THROUGHCARE_CHROMEDRIVER=/usr/bin/chromedriver    Debian's `chromium-driver` package
#   THROUGHCARE_AXE_JS=/repo/.cache/axe-core/4.10.3/axe.min.js   pinned axe-core
#
# Usage:   scripts/browser.sh                  (scripts/test.sh exports each printed line)
#
# Browser: $THROUGHCARE_CHROMIUM and $THROUGHCARE_CHROMEDRIVER if both are set (must be
# executable); else `chromium` and `chromedriver` on PATH; else, when running as root with
# apt-get (CI, containers), `apt-get install chromium chromium-driver`, as .ci/run does for
# python3-venv. Otherwise a loud failure naming the packages: the browser tests never skip.
# The driver's major version must match the browser's (Debian ships them in lockstep).
#
# axe-core: $THROUGHCARE_AXE_JS if set (must be a file); else the cached copy under
# .cache/axe-core/<version>/ (git-ignored); else the npm registry's tarball of
# axe-core@4.10.3, checked against the sha256 pinned below (the registry's own sha512
# integrity of this tarball is Xm7bpRXn…TcEg==), and axe.min.js inside it checked too.
# Any failure exits non-zero with one line on stderr.
#
# Needs: bash, sha256sum, flock, tar, and curl or python3 (only on the first run).
set -euo pipefail

AXE_VERSION=4.10.3
AXE_TGZ_URL="https://registry.npmjs.org/axe-core/-/axe-core-${AXE_VERSION}.tgz"
AXE_TGZ_SHA256=0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292
AXE_JS_SHA256=880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb
PACKAGES="chromium chromium-driver"

die() {
    echo "scripts/browser.sh: $*" >&2
    exit 1
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
# "Chromium 156.0.8078.108 built on Debian ..." / "ChromeDriver 156.0.8078.108 (...)" -> 156
major_of() { sed -n 's/^[^0-9]*\([0-9][0-9]*\)\..*/\1/p' <<<"$1" | head -n1; }

# --- the browser and its driver ----------------------------------------------------------

chromium="${THROUGHCARE_CHROMIUM:-}"
chromedriver="${THROUGHCARE_CHROMEDRIVER:-}"
if [[ -z "$chromium" || -z "$chromedriver" ]]; then
    chromium="$(command -v chromium || true)"
    chromedriver="$(command -v chromedriver || true)"
    if [[ -z "$chromium" || -z "$chromedriver" ]]; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
            mkdir -p "$root/.cache/browser" || die "cannot create $root/.cache/browser"
            # Several test processes may ask at once: one installs, the others wait for it.
            exec 8>"$root/.cache/browser/.lock"
            flock -w 900 8 || die "timed out waiting for another install of $PACKAGES (lock $root/.cache/browser/.lock)"
            if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
                log="$root/.cache/browser/apt-get.log"
                # shellcheck disable=SC2086 # PACKAGES is a word list on purpose
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq --no-install-recommends $PACKAGES; } >"$log" 2>&1 ||
                    die "apt-get install $PACKAGES failed: $(grep -v '^\s*$' "$log" | tail -n1) (full log: $log)"
            fi
            chromium="$(command -v chromium || true)"
            chromedriver="$(command -v chromedriver || true)"
        fi
    fi
    [[ -n "$chromium" && -n "$chromedriver" ]] ||
        die "the browser tests need Debian's packages $PACKAGES (chromium and chromedriver on PATH): run 'apt-get install $PACKAGES' as root, or set THROUGHCARE_CHROMIUM and THROUGHCARE_CHROMEDRIVER"
fi
[[ -f "$chromium" && -x "$chromium" ]] || die "THROUGHCARE_CHROMIUM=$chromium is not an executable file"
[[ -f "$chromedriver" && -x "$chromedriver" ]] || die "THROUGHCARE_CHROMEDRIVER=$chromedriver is not an executable file"
# stdout only: Debian's launcher may chatter on stderr (its /etc/chromium.d checks).
browser_version="$("$chromium" --version 2>/dev/null)" || die "'$chromium --version' failed"
driver_version="$("$chromedriver" --version 2>/dev/null)" || die "'$chromedriver --version' failed"
browser_major="$(major_of "$browser_version")"
driver_major="$(major_of "$driver_version")"
[[ -n "$browser_major" && "$browser_major" == "$driver_major" ]] ||
    die "chromedriver ($driver_version) does not match chromium ($browser_version): install both from the same release ($PACKAGES)"

# --- axe-core ----------------------------------------------------------------------------

axe_js() {
    if [[ -n "${THROUGHCARE_AXE_JS:-}" ]]; then
        [[ -f "$THROUGHCARE_AXE_JS" ]] || die "THROUGHCARE_AXE_JS=$THROUGHCARE_AXE_JS is not a file"
        echo "$THROUGHCARE_AXE_JS"
        return
    fi
    local cache="$root/.cache/axe-core/$AXE_VERSION"
    local js="$cache/axe.min.js"
    # Fast path: a verified copy is already cached.
    if [[ -f "$js" && "$(sha256_of "$js")" == "$AXE_JS_SHA256" ]]; then
        echo "$js"
        return
    fi
    mkdir -p "$cache" || die "cannot create $cache"
    exec 9>"$cache/.lock"
    flock -w 600 9 || die "timed out waiting for another fetch of axe-core (lock $cache/.lock)"
    if [[ -f "$js" && "$(sha256_of "$js")" == "$AXE_JS_SHA256" ]]; then
        echo "$js"
        return
    fi
    tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    local tgz="$tmp/axe-core-$AXE_VERSION.tgz"
    if command -v curl >/dev/null; then
        curl -fsSL --retry 3 -o "$tgz" "$AXE_TGZ_URL" 2>"$tmp/fetch.log" ||
            die "cannot download $AXE_TGZ_URL: $(tail -n1 "$tmp/fetch.log")"
    elif command -v python3 >/dev/null; then
        python3 -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=120) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$AXE_TGZ_URL" "$tgz" 2>"$tmp/fetch.log" ||
            die "cannot download $AXE_TGZ_URL: $(tail -n1 "$tmp/fetch.log")"
    else
        die "curl or python3 is needed to fetch axe-core $AXE_VERSION; or set THROUGHCARE_AXE_JS=/path/to/axe.min.js"
    fi
    local got
    got="$(sha256_of "$tgz")"
    [[ "$got" == "$AXE_TGZ_SHA256" ]] || die "sha256 mismatch for $AXE_TGZ_URL: expected $AXE_TGZ_SHA256, got $got"
    tar -xzf "$tgz" -C "$tmp" package/axe.min.js || die "cannot extract package/axe.min.js from $(basename "$tgz")"
    got="$(sha256_of "$tmp/package/axe.min.js")"
    [[ "$got" == "$AXE_JS_SHA256" ]] || die "sha256 mismatch for axe.min.js in the tarball: expected $AXE_JS_SHA256, got $got"
    head -c 40 "$tmp/package/axe.min.js" | grep -q "axe v$AXE_VERSION" ||
        die "the extracted axe.min.js does not say axe v$AXE_VERSION"
    mv -f "$tmp/package/axe.min.js" "$js" || die "cannot move axe.min.js into $cache"
    echo "$js"
}
axe="$(axe_js)"

echo "THROUGHCARE_CHROMIUM=$chromium"
echo "THROUGHCARE_CHROMEDRIVER=$chromedriver"
echo "THROUGHCARE_AXE_JS=$axe"
