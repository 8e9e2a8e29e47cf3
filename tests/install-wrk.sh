#!/usr/bin/env bash
# Installs Debian's wrk (the HTTP load generator of `make bench` and
# tests/test_bench_smoke.py). Idempotent: does nothing when the binary is
# already there. Needs root (as on the dev machines and in CI).
set -euo pipefail

WRK=/usr/bin/wrk

if [[ ! -x $WRK ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends wrk
fi

# wrk has no --version flag; its usage text names the version (and exits 1).
"$WRK" -v 2>&1 | head -n 1 || true
