#!/usr/bin/env bash
# install-deps.sh -- install the Debian 12 packages Kelp needs to build and test,
# and the deb-src entry that lets scripts/build-postgres.sh fetch PostgreSQL's
# source package. Does nothing when everything is already there; needs root
# (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
    # C toolchain and checks
    build-essential pkg-config clang-format valgrind
    # PostgreSQL build (configure flags in scripts/build-postgres.sh)
    bison flex libreadline-dev zlib1g-dev libssl-dev libzstd-dev liblz4-dev
    # libraries Kelp links (see docs/decisions.md)
    libpq-dev libzstd-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev libjansson-dev libevent-dev
    # model checking of the safekeeper protocol
    spin
    # integration tests (run with /usr/bin/python3)
    python3 python3-pytest python3-psycopg
    # tools the scripts call
    ca-certificates patch xz-utils bzip2 passwd util-linux
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

need_src=0
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    need_src=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $need_src = 0 ]; then
    echo "[install-deps] all packages present"
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "install-deps.sh: missing packages (${missing[*]}) or deb-src entry, and not root." >&2
        echo "Run as root: $0" >&2
        exit 1
    fi
fi

if [ $need_src = 1 ]; then
    echo "[install-deps] adding deb-src entries for Debian's sources"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
            $SUDO tee /etc/apt/sources.list.d/kelp-deb-src.sources >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
            $SUDO tee /etc/apt/sources.list.d/kelp-deb-src.list >/dev/null
    else
        echo "install-deps.sh: no Debian apt sources found to derive deb-src from" >&2
        exit 1
    fi
fi

echo "[install-deps] apt-get update"
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
    echo "[install-deps] installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "[install-deps] done"
