#!/usr/bin/env bash
# Installs the Debian 12 packages weir needs to build, run and test. Only missing packages are
# installed, so a second run is quick. Pass "test" to also install what the tests and benchmarks use.
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config
    libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libpq-dev libcjson-dev
    duktape-dev uuid-dev libssl-dev python3)
test_pkgs=(libcmocka-dev libyaml-dev clang libclang-rt-14-dev curl nodejs npm wrk sqlite3 postgresql
    openssl util-linux)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "test" ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# node and npm may come from another packaging of Node.js; the commands are what matter.
if command -v node >/dev/null && command -v npm >/dev/null; then
    keep=()
    for p in "${missing[@]}"; do
        case "$p" in nodejs | npm) ;; *) keep+=("$p") ;; esac
    done
    missing=("${keep[@]}")
fi

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
