"""The bench's Envoy: one worker, one listener per setup, the same upstream.

Every listener routes `/` to the same `direct_response` 200, so no upstream
server is measured; listeners differ only in their auth filter (none,
Envoy's native jwt_authn with or without its JWT cache, ext_authz calling the
auth hop's Apache, or our Wasm filter).
Start-up, readiness and shutdown are the harness's (harness.envoy.Envoy).
"""

import json
from pathlib import Path

import requests

from harness.envoy import Envoy, Listener, static_cluster, wasm_filter
from harness.ports import free_port

ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}

# What Istio's RequestAuthentication becomes: one provider per jwtRule and a
# rule that accepts a request with a valid token of any provider or with none
# (rejecting a request without a token is AuthorizationPolicy's job).
NATIVE_PROVIDER = "bench"


def direct_response_routes() -> dict:
    return {
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
                    }
                ],
            }
        ]
    }


def native_jwt_authn(issuer: str, audience: str, jwks: dict, cache: bool) -> dict:
    """envoy.filters.http.jwt_authn as Istio generates it: Istio's control
    plane fetches the JWKS itself and inlines it (`local_jwks`), so the proxy
    never fetches. `cache` adds jwt_cache_config, which Istio does not set."""
    provider = {
        "issuer": issuer,
        "audiences": [audience],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "payload_in_metadata": issuer,
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    requires_token_or_none = {
        "requires_any": {"requirements": [{"provider_name": NATIVE_PROVIDER}, {"allow_missing": {}}]}
    }
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {NATIVE_PROVIDER: provider},
            "rules": [{"match": {"prefix": "/"}, "requires": requires_token_or_none}],
            "bypass_cors_preflight": True,
        },
    }


def our_filter(wasm_path: Path, plugin_config: dict, vm_id: str | None = None) -> dict:
    """Our filter; with `vm_id`, in a VM of its own instead of the one every
    listener with the default id shares."""
    stanza = wasm_filter(wasm_path, plugin_config)
    if vm_id is not None:
        stanza["typed_config"]["config"]["vm_config"]["vm_id"] = vm_id
    return stanza


def distinct_free_ports(names: list[str]) -> dict[str, int]:
    """A free port per name: the OS hands out a port just released again, so
    asking it once per listener can give two listeners the same port."""
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def noop_wasm_filter(wasm_path: Path) -> dict:
    """The reference no-op module (noop.wat) in a VM of its own."""
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "noop",
                "root_id": "noop",
                "vm_config": {
                    "vm_id": "noop",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_path)}},
                },
            },
        },
    }


def listener(name: str, port: int, auth_filters: list[dict]) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": direct_response_routes(),
        "http_filters": [*auth_filters, ROUTER],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


class BenchEnvoy(Envoy):
    """An Envoy with one worker thread, pinned to `cpus` when given, logging
    only warnings (the test harness logs the filter at debug level, which
    would be measured too).

    listeners: name -> (port, auth filters); clusters: name -> loopback port
    (the IdP's, for the session setups); extra_clusters: complete cluster
    definitions (the auth hop's)."""

    def __init__(
        self,
        wasm_path: Path,
        listeners: dict[str, tuple[int, list[dict]]],
        clusters: dict[str, int],
        cpus: str | None,
        extra_clusters: list[dict] | None = None,
    ):
        harness_listeners = [Listener(name, None, port=port) for name, (port, _) in listeners.items()]
        super().__init__(wasm_path, harness_listeners, upstream_port=0, clusters=clusters, concurrency=1, name="bench")
        while self.admin_port in {port for port, _ in listeners.values()}:
            self.admin_port = free_port()
        self.cpus = cpus
        # The harness wrote its own bootstrap (routes to an echo upstream);
        # the bench's replaces it before launch.
        bootstrap = self._bootstrap(listeners, clusters, extra_clusters or [])
        self.config_path.write_text(json.dumps(bootstrap, indent=2))

    def _bootstrap(
        self, listeners: dict[str, tuple[int, list[dict]]], clusters: dict[str, int], extra_clusters: list[dict]
    ) -> dict:
        return {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "static_resources": {
                "listeners": [listener(name, port, filters) for name, (port, filters) in listeners.items()],
                "clusters": [static_cluster(name, port) for name, port in clusters.items()] + extra_clusters,
            },
        }

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("-l") + 1] = "warning"
        level_flag = command.index("--component-log-level")
        del command[level_flag : level_flag + 2]
        return ["taskset", "-c", self.cpus, *command] if self.cpus else command

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats_matching(self, regex: str) -> dict[str, int]:
        """Admin /stats lines whose name matches `regex`, as name -> value."""
        reply = requests.get(f"{self.admin_url}/stats", params={"filter": regex}, timeout=5)
        reply.raise_for_status()
        values = {}
        for line in reply.text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values
