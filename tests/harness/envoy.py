"""Run a real Envoy with the filter: bootstrap generation, start, readiness, stop.

One Envoy can hold several listeners, each with its own plugin configuration,
so a test module pays for one start-up. Every wait has a deadline, and every
process started here is stopped (SIGTERM, then SIGKILL) by its owner.
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .ports import free_port
from .processes import terminate

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVOY_BIN = REPO_ROOT / ".venv" / "bin" / "envoy"
WORK_DIR = REPO_ROOT / "tests" / ".work"

UPSTREAM_CLUSTER = "echo_upstream"
READY_TIMEOUT = 30.0  # V8 compiles the module once per VM; 2 cores can be slow
STOP_TIMEOUT = 5.0

# Envoys alive right now, so a failing test's report can show their logs.
RUNNING: "set[Envoy]" = set()


@dataclass
class Listener:
    """One HTTP listener; `plugin_config` is the filter's JSON config as a dict,
    or raw text (to test invalid JSON), or None for no filter at all."""

    name: str
    plugin_config: dict | str | None
    port: int = field(default_factory=free_port)
    fail_open: bool = False
    # Envoy's PluginConfig.failure_policy (FAIL_CLOSED, FAIL_OPEN, FAIL_RELOAD);
    # None leaves it unset (Envoy 1.40's default is FAIL_CLOSED).
    failure_policy: str | None = None
    # FAIL_RELOAD's backoff base interval in ms; None: Envoy's default (1000).
    reload_base_ms: int | None = None
    # True: Envoy answers 200 "ok" itself after the filter instead of routing to
    # the echo upstream, so load tests measure Envoy and the filter only.
    direct_response: bool = False
    # A DownstreamTlsContext (dict) for the listener: TLS, or mTLS when it
    # requires client certificates. None: plain text.
    downstream_tls: dict | None = None
    # Extra HttpConnectionManager fields (use_remote_address, xff_num_trusted_hops...).
    hcm_extra: dict | None = None
    # The route table's virtual hosts, replacing the one catch-all to the echo
    # upstream: {name: (domains, path prefixes)}; each route goes to the echo
    # upstream with `x-routed-to: <name>[ <prefix>]`, so a test sees which route
    # Envoy chose. Put the `*` catch-all in too if the table needs one.
    virtual_hosts: dict[str, tuple[list[str], list[str]]] | None = None
    # The VM's environment, Envoy's vm_config.environment_variables as a dict:
    # {"host_env_keys": [names of the Envoy process's own variables to pass],
    #  "key_values": {name: value}}. None: the VM sees no variables.
    vm_environment: dict | None = None
    # HTTP filters (Envoy JSON stanzas) before the Wasm filter, if any, and the
    # router: Envoy's own jwt_authn and RBAC as a reference, or a
    # set_filter_state that plays an Istio waypoint's part. None: none.
    filters_before: list[dict] | None = None


# ----- bootstrap -----
def plugin_config_text(plugin_config: dict | str) -> str:
    return plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)


def wasm_filter(
    wasm_path: Path,
    plugin_config: dict | str,
    fail_open: bool = False,
    failure_policy: str | None = None,
    reload_base_ms: int | None = None,
    environment_variables: dict | None = None,
) -> dict:
    """The envoy.filters.http.wasm stanza of the contract; `environment_variables`
    is vm_config.environment_variables (host_env_keys, key_values)."""
    stanza = {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "oidc_filter",
                "root_id": "oidc_filter",
                "vm_config": {
                    "vm_id": "oidc_filter",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_path)}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_config_text(plugin_config),
                },
                "fail_open": fail_open,
            },
        },
    }
    config = stanza["typed_config"]["config"]
    if failure_policy is not None:
        # One or the other: Envoy refuses fail_open: true with a failure_policy.
        del config["fail_open"]
        config["failure_policy"] = failure_policy
    if reload_base_ms is not None:
        config["reload_config"] = {"backoff": {"base_interval": f"{reload_base_ms / 1000}s"}}
    if environment_variables is not None:
        config["vm_config"]["environment_variables"] = environment_variables
    return stanza


def route_action(listener: Listener) -> dict:
    if listener.direct_response:
        return {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    return {"route": {"cluster": UPSTREAM_CLUSTER, "timeout": "10s"}}


def virtual_hosts(listener: Listener) -> list[dict]:
    if listener.virtual_hosts is None:
        return [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, **route_action(listener)}]}]
    tables = []
    for name, (domains, prefixes) in listener.virtual_hosts.items():
        routes = []
        for prefix in prefixes:
            tag = name if prefix == "/" else f"{name} {prefix}"
            routes.append(
                {
                    "match": {"prefix": prefix},
                    **route_action(listener),
                    "request_headers_to_add": [{"header": {"key": "x-routed-to", "value": tag}}],
                }
            )
        tables.append({"name": name, "domains": domains, "routes": routes})
    return tables


def http_listener(listener: Listener, wasm_path: Path) -> dict:
    http_filters = list(listener.filters_before or [])
    if listener.plugin_config is not None:
        http_filters.append(
            wasm_filter(
                wasm_path,
                listener.plugin_config,
                listener.fail_open,
                listener.failure_policy,
                listener.reload_base_ms,
                listener.vm_environment,
            )
        )
    http_filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }
    )
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": listener.name,
        "route_config": {"virtual_hosts": virtual_hosts(listener)},
        "http_filters": http_filters,
        **(listener.hcm_extra or {}),
    }
    chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
    if listener.downstream_tls is not None:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                **listener.downstream_tls,
            },
        }
    return {
        "name": listener.name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener.port}},
        "filter_chains": [chain],
    }


def static_cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}
            ],
        },
    }


def bootstrap(
    listeners: list[Listener], wasm_path: Path, upstream_port: int, clusters: dict[str, int], admin_port: int
) -> dict:
    """A static bootstrap: the listeners, the echo upstream cluster, and one
    plain-HTTP cluster per entry of `clusters` (name -> port on 127.0.0.1)."""
    all_clusters = {UPSTREAM_CLUSTER: upstream_port, **clusters}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [http_listener(listener, wasm_path) for listener in listeners],
            "clusters": [static_cluster(name, port) for name, port in all_clusters.items()],
        },
    }


# ----- process -----
class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    """A running Envoy; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        wasm_path: Path,
        listeners: list[Listener],
        upstream_port: int,
        clusters: dict[str, int] | None = None,
        concurrency: int = 2,
        name: str = "envoy",
        extra_bootstrap: dict | None = None,
        env: dict[str, str | None] | None = None,
        log_level: str = "info",
        binary: Path | None = None,
    ):
        """`binary`: another Envoy than the venv's (the version matrix).
        `extra_bootstrap`: top-level bootstrap fields to add (stats_config...).
        `env`: variables added to (or, with None as a value, removed from) the
        Envoy process's environment, e.g. for a listener's `host_env_keys`.
        `log_level`: Envoy's `-l` (the wasm component logs at debug whatever it is)."""
        self.wasm_path = Path(wasm_path)
        self.binary = Path(binary) if binary is not None else ENVOY_BIN
        self.env = dict(env or {})
        self.log_level = log_level
        self.listeners = {listener.name: listener for listener in listeners}
        self.admin_port = free_port()
        self.concurrency = concurrency
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.dir = Path(_make_run_dir(name))
        self.config_path = self.dir / "bootstrap.json"
        self.log_path = self.dir / "envoy.log"
        self.stdio_path = self.dir / "stdio.log"
        config = bootstrap(listeners, self.wasm_path, upstream_port, clusters or {}, self.admin_port)
        self.config_path.write_text(json.dumps(config | (extra_bootstrap or {}), indent=2))
        self.process: subprocess.Popen | None = None

    # ----- addresses -----
    def url(self, listener: str | None = None) -> str:
        """Base URL of a listener (the only one when there is one)."""
        if listener is None:
            (only,) = self.listeners.values()
            return f"http://127.0.0.1:{only.port}"
        return f"http://127.0.0.1:{self.listeners[listener].port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # ----- logs -----
    def log_text(self) -> str:
        """Envoy's log file followed by anything it printed on stdout/stderr."""
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.stdio_path) if p.exists()]
        return "\n".join(parts)

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ----- lifecycle -----
    def command(self) -> list[str]:
        """Envoy's command line; a subclass may change it (the bench pins CPUs
        and logs less)."""
        return [
            str(self.binary),
            "-c", str(self.config_path),
            "--concurrency", str(self.concurrency),
            # Several Envoys run at once in a test session: no shared memory.
            "--disable-hot-restart",
            "--log-path", str(self.log_path),
            "-l", self.log_level,
            "--component-log-level", "wasm:debug",
            "--drain-time-s", "0",
            # Flush the log often: tests read it while Envoy runs.
            "--file-flush-interval-msec", "100",
        ]  # fmt: skip

    def process_env(self) -> dict[str, str] | None:
        """The environment Envoy starts with: pytest's, changed by `env` (None: pytest's as is)."""
        if not self.env:
            return None
        merged = dict(os.environ)
        for name, value in self.env.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged

    def launch(self) -> "Envoy":
        """Start the process without waiting for it to be ready."""
        with open(self.stdio_path, "wb") as stdio:
            self.process = subprocess.Popen(
                self.command(),
                stdout=stdio,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.process_env(),
                preexec_fn=_die_with_parent,
            )
        RUNNING.add(self)
        return self

    def start(self, timeout: float = READY_TIMEOUT) -> "Envoy":
        """Start and wait until the admin says LIVE and every listener accepts."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_live():
            if self.exit_code() is not None:
                raise EnvoyStartError(f"envoy exited with {self.exit_code()} during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise EnvoyStartError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        for listener in self.listeners.values():
            if not _wait_accepting(listener.port, deadline):
                raise EnvoyStartError(f"listener {listener.name} not accepting:\n{self.log_tail()}")

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code if the process ends within `timeout`, else None."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        RUNNING.discard(self)
        terminate(self.process, STOP_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- admin -----
    def is_live(self) -> bool:
        """The admin's /ready says LIVE (init done, listeners up)."""
        try:
            reply = requests.get(self.admin_url + "/ready", timeout=1)
        except requests.RequestException:
            return False
        return reply.status_code == 200 and reply.text.strip() == "LIVE"


@dataclass
class FailedStart:
    """What became of an Envoy whose configuration should be refused."""

    exit_code: int | None  # None: still running at the deadline
    became_ready: bool
    log: str


def run_expecting_failure(envoy: Envoy, timeout: float = 20.0) -> FailedStart:
    """Launch `envoy`, wait until it exits or becomes ready (or the deadline),
    then stop it and report what happened, with its log."""
    envoy.launch()
    deadline = time.monotonic() + timeout
    became_ready = False
    try:
        while time.monotonic() < deadline:
            if envoy.exit_code() is not None:
                break
            if envoy.is_live():
                became_ready = True
                break
            time.sleep(0.1)
        exit_code = envoy.exit_code()
    finally:
        envoy.stop()
    return FailedStart(exit_code=exit_code, became_ready=became_ready, log=envoy.log_text())


def _die_with_parent() -> None:
    """Runs in the child before exec: if pytest dies, the kernel kills Envoy too."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_accepting(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _make_run_dir(name: str) -> str:
    return tempfile.mkdtemp(prefix=f"{name}-", dir=WORK_DIR)
