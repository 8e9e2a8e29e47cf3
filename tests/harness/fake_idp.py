"""A scriptable stand-in IdP for hostile and broken token endpoint replies.

It serves discovery and JWKS like a real IdP, and answers `POST /token` with
whatever the test scripts (`reply`), so a test can hand the filter ID tokens a
real IdP would never issue: another audience or issuer, a wrong nonce, an
unknown key, or no token at all, and bodies that are slow, huge or not JSON.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .ports import free_port
from .tokens import SigningKey, jwks_of


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        idp: FakeIdp = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        if path == "/.well-known/openid-configuration":
            return self._send(200, json.dumps(idp.discovery()).encode())
        if path == "/jwks.json":
            return self._send(200, json.dumps(jwks_of(idp.key)).encode())
        return self._send(404, b"not found")

    def do_POST(self):
        idp: FakeIdp = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        idp.token_requests.append({"form": form, "authorization": self.headers.get("authorization")})
        status, body, delay = idp.reply(form)
        if delay:
            idp.stopping.wait(delay)
        return self._send(status, body)

    def _send(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


class FakeIdp:
    """`reply(form) -> (status, body bytes, delay seconds)` answers the token endpoint."""

    def __init__(self, key: SigningKey):
        self.key = key
        self.port = free_port()
        self.token_requests: list[dict] = []
        self.stopping = threading.Event()
        self.reply = lambda form: (500, b"{}", 0)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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

    def start(self) -> "FakeIdp":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def json_reply(document: dict, status: int = 200, delay: float = 0) -> tuple[int, bytes, float]:
    return status, json.dumps(document).encode(), delay


def now() -> int:
    return int(time.time())
