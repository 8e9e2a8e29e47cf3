#!/usr/bin/env bash
# Installs wrk (Debian's package, with its LuaJIT scripting) for the soak test
# (tests/test_soak.py). Idempotent: does nothing when wrk is already there.
# Needs root (as on the dev machines and in CI).
set -euo pipefail

if ! command -v wrk >/dev/null; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends wrk
fi

wrk --version 2>&1 | head -1 || true  # wrk prints its usage and exits 1
