"""The auth hop our filter replaces: Envoy's ext_authz HTTP filter calling an
auth server, here Apache httpd with mod_auth_openidc (Debian's packages,
tests/install-auth-hop.sh) as an OAuth 2.0 resource server that validates the
bench's JWTs.

Apache runs from a configuration generated into a temporary directory
(ServerRoot, PidFile, ErrorLog, runtime files), as `apache2 -f <conf>
-DFOREGROUND`, with one virtual host per algorithm on a free loopback port.
Each host checks the bearer token against its own JWKS, which a TLS server of
the bench serves on loopback with a throwaway CA (harness/certs.py) that
mod_auth_openidc trusts through OIDCCABundlePath (verification stays on), and
requires the bench's `iss` and `aud` claims. Apache is stopped by its PID
(SIGTERM, then SIGKILL). Its worker process is its child, which would outlive
a killed parent: where the bench may create a PID namespace (as root),
Apache runs as the first process of one (`unshare --pid --fork --kill-child`),
so that the kernel ends its children with it, and Apache ends with the bench
(PR_SET_PDEATHSIG on unshare, then on Apache).

What mod_auth_openidc caches (Debian's 2.4.12.3, defaults): the JWKS, in its
cache (OIDCCacheType shm) for OIDCJWKSRefreshInterval (3600 s). It does not
cache validated JWT access tokens: its access-token cache holds only the
results of remote introspection (OIDCOAuthIntrospectionEndpoint, kept per
OIDCOAuthTokenIntrospectionInterval). Without an introspection endpoint every
request parses the JWT, reads the JWKS from the cache and verifies the
signature, whether its token is new or repeated.
"""

import functools
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import requests

from harness.certs import Authority, Pair
from harness.envoy import _die_with_parent, static_cluster
from harness.loopback_http import RestartableServer
from harness.processes import terminate

APACHE_BIN = Path("/usr/sbin/apache2")
MODULES_DIR = Path("/usr/lib/apache2/modules")
# mod_unixd, mod_log_config and the core are compiled into Debian's binary.
MODULES = {
    "mpm_event_module": "mod_mpm_event.so",
    "authn_core_module": "mod_authn_core.so",  # AuthType
    "authz_core_module": "mod_authz_core.so",  # Require, <RequireAll>
    "alias_module": "mod_alias.so",
    "auth_openidc_module": "mod_auth_openidc.so",
}
# One process with enough threads for every connection Envoy's worker opens
# (one per request in flight: 16 with wrk -c16), with room to spare.
APACHE_THREADS = 64
# Envoy closes an idle connection to Apache before Apache would: a request
# never races Apache closing the connection it was sent on.
APACHE_KEEPALIVE_SECONDS = 300
ENVOY_IDLE_SECONDS = 60
CHECK_TIMEOUT = "5s"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
INSTALL_HINT = "run `make auth-hop` (bash tests/install-auth-hop.sh), or pass --no-hop"


def missing() -> str | None:
    """Why the hop cannot run here, or None."""
    for path in [APACHE_BIN, *(MODULES_DIR / name for name in MODULES.values())]:
        if not path.exists():
            return f"{path} is missing: {INSTALL_HINT}"
    return None


def versions() -> str:
    """e.g. 'Apache/2.4.71 (Debian), mod_auth_openidc 2.4.12.3-2+deb12u5'."""
    apache = subprocess.run([str(APACHE_BIN), "-v"], capture_output=True, text=True).stdout.splitlines()
    module = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-auth-openidc"], capture_output=True, text=True
    ).stdout.strip()
    server = apache[0].removeprefix("Server version: ") if apache else "Apache (version unknown)"
    return f"{server}, mod_auth_openidc {module or '(version unknown)'}"


# ----- the JWKS over https -----
class _KeysHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        owner: KeysServer = self.server.owner  # type: ignore[attr-defined]
        body = owner.documents.get(self.path)
        status = 200 if body is not None else 404
        body = body if body is not None else b"not found"
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


class KeysServer(RestartableServer):
    """Serves one JWKS per path over TLS on 127.0.0.1 (the bench's JWKS,
    as harness/jwks_server.py serves them over plain HTTP)."""

    handler_class = _KeysHandler

    def __init__(self, documents: dict[str, dict], pair: Pair, port: int):
        self.documents = {path: json.dumps(doc).encode() for path, doc in documents.items()}
        self.port = port
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.load_cert_chain(pair.cert, pair.key)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> "KeysServer":
        self._open_socket()
        return self

    def stop(self) -> None:
        self._close_socket()


# ----- Apache -----
def _jwks_path(alg: str) -> str:
    return f"/jwks-{alg.lower()}.json"


class AuthHop:
    """The hop's servers for the whole bench: the TLS JWKS server (started
    once) and, per round, a fresh Apache (start_apache / stop_apache).

    ports: alg -> the loopback port of that algorithm's virtual host."""

    def __init__(
        self, work: Path, issuer: str, audience: str, jwks: dict[str, dict], ports: dict[str, int], keys_port: int
    ):
        self.issuer = issuer
        self.audience = audience
        self.ports = ports
        authority = Authority(work / "hop-ca")
        self.ca = authority.ca
        server_pair = authority.issue("hop-jwks", ip="127.0.0.1")
        self.keys = KeysServer({_jwks_path(alg): doc for alg, doc in jwks.items()}, server_pair, keys_port)
        self.apache: Apache | None = None

    def start(self) -> "AuthHop":
        self.keys.start()
        return self

    def stop(self) -> None:
        self.stop_apache()
        self.keys.stop()

    def start_apache(self, cpus: str | None, valid_tokens: dict[str, str]) -> "Apache":
        """A fresh Apache, ready, with each host's JWKS fetched and cached by
        one request with a valid token (so no measured request fetches it)."""
        self.stop_apache()
        self.apache = Apache(self, cpus).start()
        for alg, token in valid_tokens.items():
            status = self.apache.check(alg, token)
            if status != 200:
                raise HopError(f"Apache refused a valid {alg} token with {status}:\n{self.apache.log_tail()}")
        return self.apache

    def stop_apache(self) -> None:
        if self.apache is not None:
            self.apache.stop()
            self.apache = None

    def cluster_name(self, alg: str) -> str:
        return f"auth-hop-{alg.lower()}"

    def clusters(self) -> list[dict]:
        """Envoy's clusters to Apache: HTTP/1.1 with keep-alive (Envoy's
        default for a cluster), idle connections closed by Envoy first."""
        clusters = []
        for alg, port in self.ports.items():
            cluster = static_cluster(self.cluster_name(alg), port)
            cluster["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"idle_timeout": f"{ENVOY_IDLE_SECONDS}s"},
                    "explicit_http_config": {"http_protocol_options": {}},
                }
            }
            clusters.append(cluster)
        return clusters

    def ext_authz_filter(self, alg: str) -> dict:
        """envoy.filters.http.ext_authz with an HTTP service: Envoy sends the
        request's method, path, Host and Authorization to Apache and lets the
        request through on a 2xx; any other answer (401) goes to the client."""
        port = self.ports[alg]
        return {
            "name": "envoy.filters.http.ext_authz",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                "transport_api_version": "V3",
                "failure_mode_allow": False,
                "http_service": {
                    "server_uri": {
                        "uri": f"http://127.0.0.1:{port}",
                        "cluster": self.cluster_name(alg),
                        "timeout": CHECK_TIMEOUT,
                    },
                },
            },
        }


class HopError(RuntimeError):
    pass


class Apache:
    """One Apache process (mpm_event) from a generated configuration."""

    def __init__(self, hop: AuthHop, cpus: str | None):
        self.hop = hop
        self.cpus = cpus
        # In the system's temporary directory: when started as root, Apache's
        # children run as `nobody` and must reach the files they read (the
        # CA bundle, the answer file), which a directory inside the checkout
        # may not allow.
        self.dir = Path(tempfile.mkdtemp(prefix="bench-apache-"))
        self.dir.chmod(0o755)
        self.conf = self.dir / "apache2.conf"
        self.error_log = self.dir / "error.log"
        self.stdio = self.dir / "stdio.log"
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None  # Apache's parent process
        shutil.copyfile(hop.ca, self.dir / "ca.crt")
        (self.dir / "ok").write_text("ok\n")
        for path in (self.dir / "ca.crt", self.dir / "ok"):
            path.chmod(0o644)
        self.conf.write_text(self.config())

    def config(self) -> str:
        hop, d = self.hop, self.dir
        lines = [
            f'ServerRoot "{d}"',
            f'PidFile "{d}/apache2.pid"',
            f'DefaultRuntimeDir "{d}"',
            f'ErrorLog "{d}/error.log"',
            "LogLevel warn",
            # No CustomLog: no access log.
            "ServerName 127.0.0.1",
            "ServerTokens Prod",
            "TraceEnable Off",
            *(f"LoadModule {name} {MODULES_DIR / file}" for name, file in MODULES.items()),
            *_user_lines(),
            "StartServers 1",
            "ServerLimit 1",
            f"ThreadLimit {APACHE_THREADS}",
            f"ThreadsPerChild {APACHE_THREADS}",
            f"MaxRequestWorkers {APACHE_THREADS}",
            "MinSpareThreads 1",
            f"MaxSpareThreads {APACHE_THREADS}",
            "MaxConnectionsPerChild 0",
            "KeepAlive On",
            "MaxKeepAliveRequests 0",
            f"KeepAliveTimeout {APACHE_KEEPALIVE_SECONDS}",
            "Timeout 30",
            f'OIDCCABundlePath "{d}/ca.crt"',
        ]
        for alg, port in hop.ports.items():
            lines += [
                f"Listen 127.0.0.1:{port}",
                f"<VirtualHost 127.0.0.1:{port}>",
                f"    OIDCOAuthVerifyJwksUri {hop.keys.url(_jwks_path(alg))}",
                # Every path answers with the same small file, on a 2xx.
                f'    AliasMatch "^/" "{d}/ok"',
                '    <Location "/">',
                "        AuthType oauth20",
                "        <RequireAll>",
                f'            Require claim "iss:{hop.issuer}"',
                f'            Require claim "aud:{hop.audience}"',
                "        </RequireAll>",
                "    </Location>",
                "</VirtualHost>",
            ]
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        command = [str(APACHE_BIN), "-f", str(self.conf), "-DFOREGROUND"]
        if _pid_namespaces():
            # SIGTERM: a stopped bench lets Apache stop its worker and remove
            # its shared memory and semaphores; the kernel kills what remains.
            command = ["unshare", "--pid", "--fork", "--kill-child=SIGTERM", *command]
        return ["taskset", "-c", self.cpus, *command] if self.cpus else command

    def start(self) -> "Apache":
        with open(self.stdio, "wb") as stdio:
            self.process = subprocess.Popen(
                self.command(),
                stdout=stdio,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Debian's binary needs none of apache2ctl's APACHE_* variables
                # with a configuration that names its own paths.
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"},
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            self.pid = self._main_pid(deadline)
            for port in self.hop.ports.values():
                self._wait_accepting(port, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _main_pid(self, deadline: float) -> int:
        """Apache's parent process: the process started, or unshare's child."""
        if not _pid_namespaces():
            return self.process.pid
        while True:
            children = _children(self.process.pid)
            if children:
                return children[0]
            if self.process.poll() is not None:
                raise HopError(f"apache2 exited with {self.process.returncode} at start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise HopError(f"apache2 did not start within {READY_TIMEOUT}s")
            time.sleep(0.01)

    def _wait_accepting(self, port: int, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise HopError(f"apache2 exited with {self.process.returncode} at start-up:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise HopError(
                        f"apache2 not accepting on 127.0.0.1:{port} after {READY_TIMEOUT}s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def check(self, alg: str, token: str) -> int:
        """Apache's status for a bearer token, asked directly (not via Envoy)."""
        url = f"http://127.0.0.1:{self.hop.ports[alg]}/"
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the parent and its children (the
        worker process), from /proc."""
        total = 0.0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def log_tail(self, lines: int = 30) -> str:
        parts = [p.read_text(errors="replace") for p in (self.error_log, self.stdio) if p.exists()]
        return "\n".join("\n".join(parts).splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to Apache's parent (it stops its worker and removes its
        shared memory and semaphores) and a wait for it (and so unshare) to
        exit; then SIGTERM and SIGKILL to what was started, if it lingers."""
        if self.process is not None and self.process.poll() is None and self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        terminate(self.process, STOP_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)


@functools.cache
def _pid_namespaces() -> bool:
    """Whether this process may run a command in a new PID namespace."""
    try:
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _user_lines() -> list[str]:
    """Apache refuses to serve as root: started as root, its children run as
    nobody (the user Debian's packages give unprivileged daemons)."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("nobody")
    return [f"User {user.pw_name}", f"Group {grp.getgrgid(user.pw_gid).gr_name}"]
