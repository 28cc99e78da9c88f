#!/usr/bin/env bash
# build-postgres.sh -- fetch PostgreSQL 15.18 from Debian's source package, apply
# Kelp's numbered patch series and install it into the build tree.
#
#   scripts/build-postgres.sh [--vanilla] [--force] [--check] [--patches DIR]
#
# Default: patched build in build/pg (source tree in build/pg-src).
# --vanilla:     the same source with no patches, in build/pg-vanilla (benchmarks).
# --force:       rebuild even when the stamp says the install is current.
# --check:       build nothing; exit 0 when the install is current, 1 when stale.
# --patches DIR: take the patch series from DIR instead of postgres/patches.
#
# The build is cached: a stamp file in the install directory records a hash of
# the source tarball, every patch, the configure flags and the recipe version. When it
# matches, the script prints "up to date" and exits at once.
set -euo pipefail

PG_VERSION=15.18
DEB_VERSION=15.18-0+deb12u1
ORIG_TARBALL=postgresql-15_${PG_VERSION}.orig.tar.bz2
# Pinned, from the .dsc of ${DEB_VERSION}; a mismatch stops the build.
ORIG_SHA256=11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4
# Bump when the build steps below change what gets installed (forces a rebuild).
RECIPE=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KELP_BUILD_DIR:-$ROOT/build}
DOWNLOAD=$BUILD/download
VARIANT=pg
FORCE=0
CHECK=0
PATCH_DIR=$ROOT/postgres/patches
while [ $# -gt 0 ]; do
    case "$1" in
    --vanilla) VARIANT=pg-vanilla ;;
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    --patches)
        [ $# -ge 2 ] && [ -d "$2" ] || { echo "build-postgres.sh: --patches needs a directory" >&2; exit 2; }
        PATCH_DIR=$(cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-postgres.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
PREFIX=$BUILD/$VARIANT
SRC=$BUILD/$VARIANT-src
JOBS=${JOBS:-$(nproc)}

CONFIGURE_FLAGS=(--prefix="$PREFIX" --enable-debug --enable-tap-tests=no
    --with-openssl --with-lz4 --with-zstd --without-icu
    CFLAGS="-O2 -g -fno-omit-frame-pointer")

log() { printf '[build-postgres] %s\n' "$*"; }

fetch_source() {
    mkdir -p "$DOWNLOAD"
    if [ -f "$DOWNLOAD/$ORIG_TARBALL" ] &&
        echo "$ORIG_SHA256  $DOWNLOAD/$ORIG_TARBALL" | sha256sum -c --status; then
        return
    fi
    log "fetching postgresql-15=$DEB_VERSION source package"
    local versions
    versions=$(apt-cache showsrc postgresql-15 2>/dev/null || true)
    if ! grep -qx "Version: $DEB_VERSION" <<<"$versions"; then
        echo "build-postgres.sh: apt has no deb-src entry offering postgresql-15 $DEB_VERSION;" \
             "run scripts/install-deps.sh (as root) first" >&2
        exit 1
    fi
    (cd "$DOWNLOAD" && apt-get source --download-only "postgresql-15=$DEB_VERSION" >/dev/null 2>&1) || {
        echo "build-postgres.sh: apt-get source postgresql-15=$DEB_VERSION failed" >&2; exit 1; }
    echo "$ORIG_SHA256  $DOWNLOAD/$ORIG_TARBALL" | sha256sum -c --status || {
        echo "build-postgres.sh: checksum mismatch for $ORIG_TARBALL" >&2; exit 1; }
}

patches() {
    if [ "$VARIANT" = pg ]; then
        find "$PATCH_DIR" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' | LC_ALL=C sort
    fi
}

stamp_of() {
    {
        echo "$ORIG_SHA256"
        printf '%s\n' "${CONFIGURE_FLAGS[@]}"
        echo "recipe $RECIPE"
        for p in $(patches); do basename "$p"; sha256sum "$p" | cut -d' ' -f1; done
    } | sha256sum | cut -d' ' -f1
}

STAMP_FILE=$PREFIX/.kelp-build-stamp
WANT=$(stamp_of)
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$WANT" ] &&
    [ -x "$PREFIX/bin/postgres" ]; then
    log "$VARIANT up to date ($PREFIX)"
    exit 0
fi
if [ "$CHECK" = 1 ]; then
    log "$VARIANT stale: a rebuild is needed ($PREFIX)"
    exit 1
fi

fetch_source
log "extracting into $SRC"
rm -rf "$SRC" "$SRC.tmp" "$PREFIX"
mkdir -p "$SRC.tmp"
tar -xjf "$DOWNLOAD/$ORIG_TARBALL" -C "$SRC.tmp" --strip-components=1
for p in $(patches); do
    log "applying $(basename "$p")"
    patch -d "$SRC.tmp" -p1 --forward --batch --quiet <"$p"
done
mv "$SRC.tmp" "$SRC"

cd "$SRC"
# When called from our Makefile, the parent's MAKELEVEL would make PostgreSQL's
# build skip generating its headers (it does that only at MAKELEVEL 0), and the
# parent's jobserver flags would leak in: start from a clean make environment.
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES
log "configure"
./configure "${CONFIGURE_FLAGS[@]}" >"$SRC/kelp-configure.log" 2>&1 || {
    tail -30 "$SRC/kelp-configure.log" >&2; exit 1; }
log "make -j$JOBS (log: $SRC/kelp-make.log)"
# Chained with && on purpose: errexit does not apply on the left of ||.
{
    make -j"$JOBS" world-bin &&
        make -C src/test/regress -j"$JOBS" &&
        make -C src/test/isolation -j"$JOBS" &&
        make install-world-bin &&
        make -C src/test/regress install &&
        make -C src/test/isolation install
} >"$SRC/kelp-make.log" 2>&1 || { tail -40 "$SRC/kelp-make.log" >&2; exit 1; }
echo "$WANT" >"$STAMP_FILE"
log "installed $("$PREFIX/bin/postgres" --version) into $PREFIX"
