"""Free TCP ports on the loopback interface."""

import socket


def free_port() -> int:
    """A port that was free a moment ago.

    The OS picks it (bind to port 0); there is a small window before the
    caller binds it, which is acceptable on a test machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
