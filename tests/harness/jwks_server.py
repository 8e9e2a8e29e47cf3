"""A controllable JWKS and OpenID discovery server.

Serves `/jwks.json` and `/.well-known/openid-configuration` (whose issuer is
this server's own base URL and whose jwks_uri points back here). A test can
switch how it answers at run time, swap the key set, and count the requests
each path received, which is how the tests observe the filter's fetching.
"""

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .loopback_http import RestartableServer
from .ports import free_port

JWKS_PATH = "/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"

# Answer modes.
NORMAL = "normal"  # 200 with the current document
ERROR_500 = "500"  # 500 with a short text body
GARBAGE = "garbage"  # 200 with a body that is not JSON
SLOW = "slow"  # NORMAL, after sleeping `slow_seconds`
DOWN = "down"  # listening socket closed: connections are refused


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        owner: JwksServer = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        mode, slow_seconds = owner._mode_snapshot()
        if mode == DOWN:
            # A keep-alive connection opened before going down would otherwise
            # still be answered: reset it, as a dead server would.
            return self._reset_connection()
        owner._record(path)
        if mode == SLOW:
            # Wait on the stop event rather than sleep so stop() is never delayed.
            owner._stopping.wait(slow_seconds)
        if mode == ERROR_500:
            return self._send(500, "text/plain", b"internal error")
        if mode == GARBAGE:
            return self._send(200, "application/json", b"\x00<html>not json{{")
        body = owner._document_for(path)
        if body is None:
            return self._send(404, "text/plain", b"not found")
        return self._send(200, "application/json", body)

    def _reset_connection(self):
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _send(self, status: int, content_type: str, body: bytes):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


class JwksServer(RestartableServer):
    handler_class = _Handler  # type: ignore[assignment]

    """Threaded JWKS/discovery server; use as a context manager."""

    def __init__(self, jwks: dict | str | None = None, port: int | None = None):
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._jwks_text = _as_text(jwks if jwks is not None else {"keys": []})
        self._mode = NORMAL
        self._slow_seconds = 0.0
        self._requests: list[tuple[float, str]] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- addresses -----
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """host:port, the key of the plugin's `clusters` map."""
        return f"127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def issuer(self) -> str:
        """The issuer this server announces in its discovery document."""
        return self.base_url

    # ----- control -----
    def set_jwks(self, jwks: dict | str) -> None:
        """Serve a new key set (a JWKS dict, or raw text) from now on."""
        with self._lock:
            self._jwks_text = _as_text(jwks)

    def set_mode(self, mode: str, slow_seconds: float = 0.0) -> None:
        """Switch how requests are answered; DOWN closes the socket, leaving DOWN re-opens it."""
        if mode == DOWN:
            self._close_socket()
        elif self._server is None and not self._stopping.is_set():
            self._open_socket()
        with self._lock:
            self._mode = mode
            self._slow_seconds = slow_seconds

    # ----- observation -----
    def count(self, path: str = JWKS_PATH) -> int:
        with self._lock:
            return sum(1 for _, p in self._requests if p == path)

    def wait_for_count(self, at_least: int, path: str = JWKS_PATH, timeout: float = 10.0) -> int:
        """Wait until `path` was requested `at_least` times; return the count (may be short)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(path) >= at_least:
                break
            time.sleep(0.05)
        return self.count(path)

    # ----- lifecycle -----
    def start(self) -> "JwksServer":
        self._open_socket()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close_socket()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- used by the handler -----
    def _record(self, path: str) -> None:
        with self._lock:
            self._requests.append((time.monotonic(), path))

    def _mode_snapshot(self) -> tuple[str, float]:
        with self._lock:
            return self._mode, self._slow_seconds

    def _document_for(self, path: str) -> bytes | None:
        if path == JWKS_PATH:
            with self._lock:
                return self._jwks_text.encode()
        if path == DISCOVERY_PATH:
            return json.dumps({"issuer": self.issuer, "jwks_uri": self.jwks_uri}).encode()
        return None



def _as_text(jwks: dict | str) -> str:
    return jwks if isinstance(jwks, str) else json.dumps(jwks)
