"""An upstream that echoes every request back as JSON.

Envoy routes to it, so a test can see exactly what the filter let through:
which headers were removed, added or kept, and the path after token removal.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .ports import free_port


class _EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length lets Envoy keep connections alive.
    protocol_version = "HTTP/1.1"

    def _echo(self):
        length = int(self.headers.get("content-length") or 0)
        request_body = self.rfile.read(length) if length else b""
        self.server.seen_paths.append(self.path)
        headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                # A repeated header keeps all its values; a single one is a string.
                "headers": {k: v[0] if len(v) == 1 else v for k, v in headers.items()},
                "body": request_body.decode("utf-8", "replace"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _echo

    def log_message(self, format, *args):  # noqa: A002 - base class signature
        pass  # keep pytest output clean


class EchoServer:
    """Threaded echo upstream; use as a context manager."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _EchoHandler)
        self._server.daemon_threads = True
        # Every path that reached the upstream, to prove a denied request never did.
        self._server.seen_paths = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def seen_paths(self) -> list[str]:
        return list(self._server.seen_paths)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "EchoServer":
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
