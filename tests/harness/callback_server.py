"""A stand-in relying party callback: records every request it receives.

Registered as a client's redirect_uri (and post_logout_redirect_uri), it lets
a test or a browser finish a flow against the real IdP without the filter,
and read back the `code`, `state`, `iss` or `error` the IdP sent.
"""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .ports import free_port

CALLBACK_PATH = "/callback"
LOGGED_OUT_PATH = "/logged-out"


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # without the query
    query: dict[str, str]  # last value wins
    raw: str  # path and query as sent
    body: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _record(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if self.command == "POST" and body:  # response_mode=form_post
            query.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        owner: CallbackServer = self.server.owner  # type: ignore[attr-defined]
        owner._add(Received(self.command, parts.path, query, self.path, body))
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>callback</title></head>"
            f"<body><h1 id='callback'>received {parts.path}</h1></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_GET = do_POST = _record

    def log_message(self, format, *args):  # noqa: A002
        pass


class CallbackServer:
    """Answers 200 to everything and records it; use as a context manager."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The redirect_uri to register."""
        return self.base_url + CALLBACK_PATH

    @property
    def logged_out_url(self) -> str:
        """A post_logout_redirect_uri to register."""
        return self.base_url + LOGGED_OUT_PATH

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def wait_for(self, path: str = CALLBACK_PATH, count: int = 1, timeout: float = 10.0) -> Received:
        """The `count`-th request to `path`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [r for r in self._received if r.path == path]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no request #{count} to {path} within {timeout}s; got {self._received}")
                self._cond.wait(left)

    def _add(self, received: Received) -> None:
        with self._cond:
            self._received.append(received)
            self._cond.notify_all()

    def start(self) -> "CallbackServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
