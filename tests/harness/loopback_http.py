"""A loopback HTTP server that can be stopped and started again on the same port,
so tests can take a fake IdP or JWKS host down and bring it back."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RestartableServer:
    """Serves `handler_class` on 127.0.0.1:`port`; handlers reach the owner as
    `self.server.owner`."""

    handler_class: type[BaseHTTPRequestHandler]
    port: int

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _open_socket(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler_class)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def _close_socket(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
