"""A scriptable stand-in IdP for hostile, broken and failing replies.

It serves discovery and JWKS like a real IdP, and answers `POST /token` with
whatever the test scripts (`reply`), so a test can hand the filter ID tokens a
real IdP would never issue: another audience or issuer, a wrong nonce, an
unknown key, or no token at all, and bodies that are slow, huge or not JSON.

Each endpoint can also be switched to a fault (`set_fault`): refused
connections, a hang, a 500, an HTML page, truncated JSON or a huge body; and
the whole server can go down (listening socket closed) and come back on the
same port (`go_down`, `come_back`).
"""

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .loopback_http import RestartableServer
from .ports import free_port
from .tokens import SigningKey, jwks_of

DISCOVERY = "discovery"
JWKS = "jwks"
TOKEN = "token"
ENDPOINTS = (DISCOVERY, JWKS, TOKEN)

# Faults an endpoint can be switched to.
OK = "ok"  # the normal answer
REFUSE = "refuse"  # the connection is reset before any reply, as by a dead server
HANG = "hang"  # no answer for `hang_seconds` (longer than any filter timeout)
STATUS_500 = "500"  # 500 with a short text body
HTML = "html"  # 200 with an HTML error page, as from a misrouted proxy
TRUNCATED = "truncated"  # 200 with the normal JSON cut in half
HUGE = "huge"  # 200 with a valid JSON document of HUGE_BYTES
FAULTS = (REFUSE, HANG, STATUS_500, HTML, TRUNCATED, HUGE)

# Above every limit of the filter: JWKS 128 KiB, discovery and token replies 64 KiB.
HUGE_BYTES = 300_000
HTML_PAGE = b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        idp: FakeIdp = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        if path == "/.well-known/openid-configuration":
            return self._answer(DISCOVERY, lambda: (200, json.dumps(idp.discovery()).encode()))
        if path == "/jwks.json":
            return self._answer(JWKS, lambda: (200, json.dumps(jwks_of(*idp.keys)).encode()))
        return self._send(404, b"not found")

    def do_POST(self):
        idp: FakeIdp = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        idp.token_requests.append({"form": form, "authorization": self.headers.get("authorization")})
        return self._answer(TOKEN, lambda: self._scripted(idp, form))

    def _scripted(self, idp: "FakeIdp", form: dict) -> tuple[int, bytes]:
        status, body, delay = idp.reply(form)
        if delay:
            idp.stopping.wait(delay)
        return status, body

    def _answer(self, endpoint: str, normal):
        """Answer with `normal()` -> (status, body), unless `endpoint` is switched to a fault."""
        idp: FakeIdp = self.server.owner  # type: ignore[attr-defined]
        if idp.is_down:
            # A keep-alive connection opened before going down would otherwise
            # still be answered: reset it, as a dead server would.
            return self._reset_connection()
        fault = idp.fault(endpoint)
        idp.record(endpoint)
        if fault == REFUSE:
            return self._reset_connection()
        if fault == HANG:
            # Wait on the stop event rather than sleep so stop() is never delayed.
            idp.stopping.wait(idp.hang_seconds)
            return self._reset_connection()
        if fault == STATUS_500:
            return self._send(500, b"internal error", "text/plain")
        if fault == HTML:
            return self._send(200, HTML_PAGE, "text/html")
        status, body = normal()
        if fault == TRUNCATED:
            return self._send(status, body[: max(1, len(body) // 2)])
        if fault == HUGE:
            return self._send(status, json.dumps({"padding": "x" * HUGE_BYTES}).encode())
        return self._send(status, body)

    def _reset_connection(self):
        # SO_LINGER 0: close() sends a RST, which Envoy sees as a failed upstream.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


class FakeIdp(RestartableServer):
    handler_class = _Handler  # type: ignore[assignment]

    """`reply(form) -> (status, body bytes, delay seconds)` answers the token endpoint.

    `keys` are published at /jwks.json (the first is `key`, which tests sign with).
    """

    def __init__(self, key: SigningKey, hang_seconds: float = 10.0):
        self.keys = [key]
        self.port = free_port()
        self.hang_seconds = hang_seconds
        self.token_requests: list[dict] = []
        self.stopping = threading.Event()
        self.reply = lambda form: (500, b"{}", 0)
        self._lock = threading.Lock()
        self._faults = {endpoint: OK for endpoint in ENDPOINTS}
        self._counts = {endpoint: 0 for endpoint in ENDPOINTS}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.is_down = False

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks.json",
        }

    # ----- faults -----
    def set_fault(self, endpoint: str, fault: str) -> None:
        """From now on `endpoint` (DISCOVERY, JWKS or TOKEN) answers with `fault` (or OK)."""
        assert endpoint in ENDPOINTS and fault in (OK, *FAULTS), (endpoint, fault)
        with self._lock:
            self._faults[endpoint] = fault

    def heal(self) -> None:
        """Every endpoint answers normally again."""
        for endpoint in ENDPOINTS:
            self.set_fault(endpoint, OK)

    def fault(self, endpoint: str) -> str:
        with self._lock:
            return self._faults[endpoint]

    def record(self, endpoint: str) -> None:
        with self._lock:
            self._counts[endpoint] += 1

    def count(self, endpoint: str) -> int:
        """Requests `endpoint` received (faulty answers included)."""
        with self._lock:
            return self._counts[endpoint]

    def go_down(self) -> None:
        """Close the listening socket: connections are refused until come_back()."""
        self.is_down = True
        self._close_socket()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.is_down = False
        if self._server is None and not self.stopping.is_set():
            self._open_socket()

    # ----- lifecycle -----
    def start(self) -> "FakeIdp":
        self._open_socket()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._close_socket()



def json_reply(document: dict, status: int = 200, delay: float = 0) -> tuple[int, bytes, float]:
    return status, json.dumps(document).encode(), delay


def now() -> int:
    return int(time.time())
