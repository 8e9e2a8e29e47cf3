"""Starts harness pieces for a test or a module and stops them all afterwards."""

from pathlib import Path

from .envoy import Envoy, FailedStart, Listener, run_expecting_failure
from .jwks_server import JwksServer
from .plugin import envoy_clusters


class Stack:
    """Owns the JWKS servers and Envoys it starts; close() stops them in reverse order."""

    def __init__(self, wasm_path: Path, upstream_port: int, name: str = "stack"):
        self.wasm_path = wasm_path
        self.upstream_port = upstream_port
        self.name = name
        self._owned: list = []

    def jwks_server(self, jwks: dict | str | None = None) -> JwksServer:
        server = JwksServer(jwks).start()
        self._owned.append(server)
        return server

    def new_envoy(
        self,
        *listeners: Listener,
        servers: tuple[JwksServer, ...] = (),
        clusters: dict[str, int] | None = None,
        concurrency: int = 2,
    ) -> Envoy:
        """An Envoy configured with the listeners and a cluster per server, not started."""
        all_clusters = {**envoy_clusters(*servers), **(clusters or {})}
        envoy = Envoy(
            self.wasm_path, list(listeners), self.upstream_port, all_clusters, concurrency=concurrency, name=self.name
        )
        self._owned.append(envoy)
        return envoy

    def envoy(self, *listeners: Listener, **kwargs) -> Envoy:
        """An Envoy started and ready to serve."""
        return self.new_envoy(*listeners, **kwargs).start()

    def envoy_expecting_failure(self, *listeners: Listener, timeout: float = 20.0, **kwargs) -> FailedStart:
        return run_expecting_failure(self.new_envoy(*listeners, **kwargs), timeout=timeout)

    def close(self) -> None:
        for owned in reversed(self._owned):
            owned.stop()
        self._owned.clear()
