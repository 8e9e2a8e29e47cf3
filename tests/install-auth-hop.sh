#!/usr/bin/env bash
# Installs the auth hop of `make bench` from Debian's packages: Apache httpd
# with mod_auth_openidc, which the bench runs as an OAuth 2.0 resource server
# behind Envoy's ext_authz filter (tests/bench/auth_hop.py).
#   apache2-bin                  the server (/usr/sbin/apache2) and its modules
#   libapache2-mod-auth-openidc  mod_auth_openidc.so
# Only the binaries: not the `apache2` package, whose configuration and system
# service (a server on *:80) the bench has no use for. The bench starts its own
# Apache from a generated configuration, on loopback, and stops it by PID.
# Idempotent: installs only what is missing (and runs `apt-get update` only
# then). Needs root (as on the dev machines and in CI).
set -euo pipefail

APACHE=/usr/sbin/apache2
MODULE=/usr/lib/apache2/modules/mod_auth_openidc.so

if [[ ! -x $APACHE || ! -f $MODULE ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    # No package may start a service: where no policy-rc.d says so already,
    # one that refuses every start is in place for the install.
    POLICY=/usr/sbin/policy-rc.d
    if [[ ! -e $POLICY ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
        $SUDO chmod 755 "$POLICY"
        trap '$SUDO rm -f "$POLICY"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends apache2-bin libapache2-mod-auth-openidc
fi

# Should anything have started a system Apache all the same, stop it by its
# PID file: the bench's Apache is the only one, and only on loopback.
for pidfile in /run/apache2/apache2.pid /var/run/apache2/apache2.pid; do
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "stopping the system Apache started by the install (PID $(cat "$pidfile"))"
        kill -TERM "$(cat "$pidfile")"
    fi
done

"$APACHE" -v | head -n 1
dpkg-query -W -f='mod_auth_openidc ${Version}\n' libapache2-mod-auth-openidc
