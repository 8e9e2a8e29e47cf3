"""Starts harness pieces for a test or a module and stops them all afterwards."""

from pathlib import Path

from .callback_server import CallbackServer
from .envoy import Envoy, FailedStart, Listener, run_expecting_failure
from .idp import Idp
from .jwks_server import JwksServer
from .plugin import envoy_clusters


class Stack:
    """Owns the servers, IdPs and Envoys it starts; close() stops them in reverse
    order. Without a wasm_path it can own everything but Envoys."""

    def __init__(self, wasm_path: Path | None = None, upstream_port: int = 0, name: str = "stack"):
        self.wasm_path = wasm_path
        self.upstream_port = upstream_port
        self.name = name
        self._owned: list = []

    def jwks_server(self, jwks: dict | str | None = None) -> JwksServer:
        server = JwksServer(jwks).start()
        self._owned.append(server)
        return server

    def own(self, thing):
        """Stop `thing` (anything with stop()) when the stack closes; returns it."""
        self._owned.append(thing)
        return thing

    def idp(self, *args, **kwargs) -> Idp:
        """A started oidc-provider IdP (see harness.idp.Idp for the options)."""
        kwargs.setdefault("name", f"{self.name}-idp")
        idp = Idp(*args, **kwargs)
        self._owned.append(idp)
        return idp.start()

    def callback_server(self) -> CallbackServer:
        """A started stand-in redirect_uri that records what it receives."""
        return self.own(CallbackServer().start())

    def new_envoy(
        self,
        *listeners: Listener,
        servers: tuple[JwksServer, ...] = (),
        clusters: dict[str, int] | None = None,
        concurrency: int = 2,
        extra_bootstrap: dict | None = None,
        env: dict[str, str | None] | None = None,
        log_level: str = "info",
        binary=None,
    ) -> Envoy:
        """An Envoy configured with the listeners and a cluster per server, not
        started; `env` changes its process environment, `binary` picks another
        Envoy (see harness.envoy.Envoy)."""
        assert self.wasm_path is not None, "this Stack was made without a wasm_path"
        all_clusters = {**envoy_clusters(*servers), **(clusters or {})}
        envoy = Envoy(
            self.wasm_path,
            list(listeners),
            self.upstream_port,
            all_clusters,
            concurrency=concurrency,
            name=self.name,
            extra_bootstrap=extra_bootstrap,
            env=env,
            log_level=log_level,
            binary=binary,
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
