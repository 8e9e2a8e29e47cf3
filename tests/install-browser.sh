#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from Debian's packages, for the
# browser tests (tests/harness/browser.py). Idempotent: does nothing when both
# binaries are already there. Needs root (as on the dev machines and in CI).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ ! -x $CHROMIUM || ! -x $CHROMEDRIVER ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

"$CHROMIUM" --version 2>/dev/null  # its Debian launcher may warn about /dev/shm
"$CHROMEDRIVER" --version
