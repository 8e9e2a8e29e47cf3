"""Host names under `.localhost` for the tests' Python clients.

Chromium resolves `*.localhost` to loopback by itself (RFC 6761), so one Envoy
listener can be `grafana.localhost:PORT` and `wiki.localhost:PORT` to a browser
without any DNS. glibc does not; `localhost_subdomains()` makes this process
resolve them to 127.0.0.1 too (socket.getaddrinfo, which urllib3 calls for
every connection), so `requests` and the login walker can follow redirects to
such hosts and keep their cookies per host. Every other name resolves as
before. For one request, sending `Host:` to 127.0.0.1 works without it.
"""

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def is_localhost_subdomain(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.rstrip(".").lower()
    return name.endswith(".localhost") and len(name) > len(".localhost")


@contextlib.contextmanager
def localhost_subdomains():
    """Within the block, `<anything>.localhost` resolves to 127.0.0.1 (IPv4)."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if is_localhost_subdomain(host):
            return original(LOOPBACK, port, socket.AF_INET, type, proto, flags)
        return original(host, port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original
