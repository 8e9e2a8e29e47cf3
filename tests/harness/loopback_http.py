"""A loopback HTTP server that can be stopped and started again on the same port,
so tests can take a fake IdP or JWKS host down and bring it back."""

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RestartableServer:
    """Serves `handler_class` on 127.0.0.1:`port`; handlers reach the owner as
    `self.server.owner`. With `tls_context` set it serves HTTPS."""

    handler_class: type[BaseHTTPRequestHandler]
    port: int
    tls_context: ssl.SSLContext | None = None

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _open_socket(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler_class)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        if self.tls_context is not None:
            # Each accepted connection does its handshake in its own handler
            # thread (on the first read), not in the accepting loop.
            server.socket = self.tls_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
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
