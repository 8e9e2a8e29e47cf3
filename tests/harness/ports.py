"""Free TCP ports on the loopback interface.

A port handed to a server that binds it later must not be taken in between.
Ports the OS picks (bind to port 0) come from the ephemeral range, the same
range every outgoing connection's local port comes from: Envoy's calls to the
IdP, the browser, the load generator. One of those can take the port before
the server binds it ("Address already in use"). So ports are handed out from
below the ephemeral range, in turn, each checked free, and never twice in one
test session.
"""

import os
import socket
import threading

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 10000
POOL_SIZE = 12000

_lock = threading.Lock()
_pool: range | None = None  # chosen on first use
_next = 0


def ephemeral_low() -> int:
    """The lowest port the OS uses for outgoing connections (Linux's default 32768)."""
    try:
        with open(EPHEMERAL_RANGE_FILE) as lines:
            return int(lines.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _choose_pool() -> range:
    high = ephemeral_low()
    low = max(LOWEST_PORT, high - POOL_SIZE)
    if high - low < 1000:  # an unusual ephemeral range: above it instead
        return range(61000, 65535)
    return range(low, high)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port that is free now, outside the ephemeral range, and not handed
    out before in this process (so two servers of one test never share one)."""
    global _pool, _next
    with _lock:
        if _pool is None:
            _pool = _choose_pool()
            # Start where another test session on the machine is unlikely to be.
            _next = _pool.start + (os.getpid() * 97) % len(_pool)
        pool = _pool
        for _ in range(len(pool)):
            port = _next
            _next = pool.start + (_next + 1 - pool.start) % len(pool)
            if _bindable(port):
                return port
    raise OSError("no free loopback port below the ephemeral range")
