#!/usr/bin/env bash
# Installs the OCI image tools from Debian's packages, for `make image`,
# `make push` and tests/test_oci_image.py:
#   buildah          builds the image without a Docker engine
#   skopeo           copies and inspects images in registries
#   docker-registry  the distribution registry v2, run on loopback by the test
# Idempotent: installs only the packages whose binary is missing (and runs
# `apt-get update` only then). Needs root (as on the dev machines and in CI).
set -euo pipefail

declare -A BINARY_OF=(
    [buildah]=/usr/bin/buildah
    [skopeo]=/usr/bin/skopeo
    [docker-registry]=/usr/bin/docker-registry
)

missing=()
for package in "${!BINARY_OF[@]}"; do
    [[ -x ${BINARY_OF[$package]} ]] || missing+=("$package")
done

if ((${#missing[@]})); then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # --no-install-recommends keeps podman-ish extras out; the packages' own
    # Depends bring what they need. The Debian package's postinst starts the
    # registry as a service only where systemd runs, and the tests start their
    # own on a free port anyway.
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

buildah --version
skopeo --version
docker-registry --version
