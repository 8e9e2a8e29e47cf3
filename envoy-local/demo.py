"""`make run`: a complete local setup on loopback, stopped with Ctrl-C.

Starts the test IdP (npm oidc-provider, dev login form: any user name and
password), a small app that shows who the request came from, and Envoy with
dist/oidc_filter.wasm configured from envoy-local/demo.yaml. Ports come from
DEMO_ENVOY_PORT, DEMO_IDP_PORT, DEMO_APP_PORT and DEMO_ADMIN_PORT (defaults
8080, 9400, 9401, 9901). The client secret and a cookie key drawn at start go
into Envoy's environment, as a deployment would pass them, not into its config.
"""

import base64
import ctypes
import html
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVOY = ROOT / ".venv" / "bin" / "envoy"
WASM = ROOT / "dist" / "oidc_filter.wasm"
IDP_SERVER = ROOT / "tests" / "idp" / "server.mjs"
START_TIMEOUT = 30.0

CLIENT_ID = "demo-app"
CLIENT_SECRET = "demo-secret"
# The variables the plugin configuration names; demo.yaml lists them in host_env_keys.
CLIENT_SECRET_ENV = "OIDC_CLIENT_SECRET"
COOKIE_SECRETS_ENV = "OIDC_COOKIE_SECRETS"


def die_with_parent() -> None:
    """Runs in each child before exec: if this script dies, even by SIGKILL, the
    kernel stops the IdP and Envoy too (Linux PR_SET_PDEATHSIG)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def plugin_config(idp_issuer: str, idp_authority: str) -> dict:
    """Login, a bearer-token API, a rule and public paths."""
    identity_headers = [
        {"header": "x-user-email", "claim": "email"},
        {"header": "x-user-name", "claim": "name"},
    ]
    return {
        "oidc": {
            "issuer": idp_issuer,
            "clientId": CLIENT_ID,
            # Read from the VM's environment when the filter loads (see envoy_environment).
            "clientSecretFromEnv": CLIENT_SECRET_ENV,
            "cookieSecretsFromEnv": COOKIE_SECRETS_ENV,
            "cookieSecure": False,  # plain HTTP on loopback only
            "postLogoutRedirectUri": "/signed-out",
            "outputClaimToHeaders": identity_headers,
            # The app shows the ID token so you can try the bearer-token API with it.
            "forwardToken": {"token": "id_token", "header": "x-id-token"},
        },
        # API clients: the same issuer's tokens as bearer tokens.
        "jwtRules": [{"issuer": idp_issuer, "audiences": [CLIENT_ID], "outputClaimToHeaders": identity_headers[:1]}],
        "publicPaths": ["/healthz", "/signed-out"],
        "authorizationPolicies": [
            {"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["contractors"]}]}]}
        ],
        "clusters": {idp_authority: "idp"},
    }


def envoy_environment() -> dict:
    """Envoy's process environment: ours plus the two secrets, a new cookie key
    each start (so sessions end when the demo stops)."""
    return {
        **os.environ,
        CLIENT_SECRET_ENV: CLIENT_SECRET,
        COOKIE_SECRETS_ENV: base64.b64encode(secrets.token_bytes(32)).decode(),
    }


class AppHandler(BaseHTTPRequestHandler):
    """The protected app: shows the identity headers the filter set."""

    def do_GET(self):
        if self.path.startswith("/api/"):
            return self.send(200, "application/json", json.dumps(self.identity(), indent=2))
        if self.path.startswith("/healthz"):
            return self.send(200, "text/plain", "ok\n")
        if self.path.startswith("/signed-out"):
            return self.send(200, "text/html", "<p>Signed out.</p><p><a href='/'>Sign in again</a></p>")
        return self.send(200, "text/html", self.page())

    def identity(self) -> dict:
        return {k: self.headers.get(k) for k in ("x-user-email", "x-user-name") if self.headers.get(k)}

    def page(self) -> str:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self.identity().items())
        token = self.headers.get("x-id-token", "")
        host = html.escape(self.headers.get("host", ""))
        curl = f"curl -H 'Authorization: Bearer {html.escape(token)}' http://{host}/api/whoami" if token else ""
        return (
            "<!doctype html><title>Demo app</title><h1>Hello from the demo app</h1>"
            f"<p>The filter authenticated you; these headers came with the request:</p><table>{rows}</table>"
            f"<p>Try the bearer-token API with your ID token:</p><pre style='white-space:pre-wrap;word-break:break-all'>{curl}</pre>"
            "<p><a href='/oauth2/logout'>Sign out</a></p>"
        )

    def send(self, status: int, content_type: str, body: str):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002
        pass


def wait_for_line(path: Path, prefix: str, process: subprocess.Popen, what: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see {path}")
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {START_TIMEOUT:.0f}s; see {path}")


def wait_for_port(number: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", number), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {number} within {START_TIMEOUT:.0f}s; see {log}")


def check_prerequisites() -> None:
    missing = [str(p) for p in (ENVOY, WASM, IDP_SERVER.parent / "node_modules") if not p.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `make run` (it builds and installs them)")


def main() -> int:
    check_prerequisites()
    envoy_port, idp_port = port("DEMO_ENVOY_PORT", 8080), port("DEMO_IDP_PORT", 9400)
    app_port, admin_port = port("DEMO_APP_PORT", 9401), port("DEMO_ADMIN_PORT", 9901)
    app_url = f"http://127.0.0.1:{envoy_port}"
    # The IdP is "localhost" and the app "127.0.0.1", so their cookies stay apart.
    idp_issuer, idp_authority = f"http://localhost:{idp_port}", f"localhost:{idp_port}"
    work = Path(tempfile.mkdtemp(prefix="oidc-filter-demo-"))
    processes: list[subprocess.Popen] = []

    app = ThreadingHTTPServer(("127.0.0.1", app_port), AppHandler)
    app.daemon_threads = True
    threading.Thread(target=app.serve_forever, daemon=True).start()

    def stop(*_):
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        app.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (as a
    # shell does for a background job), which Python would otherwise keep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        idp_config = {
            "port": idp_port,
            "host": "localhost",
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{app_url}/oauth2/callback"],
                    "post_logout_redirect_uris": [f"{app_url}/signed-out"],
                    "grant_types": ["authorization_code", "refresh_token"],
                }
            ],
            "default_groups": ["staff"],
            "users": {"contractor": {"groups": ["contractors"]}},
        }
        (work / "idp.json").write_text(json.dumps(idp_config))
        idp_out = work / "idp.out"
        with open(idp_out, "wb") as out, open(work / "idp.log", "wb") as err:
            processes.append(subprocess.Popen(["node", str(IDP_SERVER), str(work / "idp.json")], stdout=out, stderr=err, cwd=IDP_SERVER.parent, preexec_fn=die_with_parent))
        wait_for_line(idp_out, "ready ", processes[-1], "the IdP")

        template = string.Template((ROOT / "envoy-local" / "demo.yaml").read_text())
        config = template.substitute(
            ENVOY_PORT=envoy_port,
            IDP_PORT=idp_port,
            APP_PORT=app_port,
            ADMIN_PORT=admin_port,
            WASM=WASM,
            PLUGIN_CONFIG=json.dumps(plugin_config(idp_issuer, idp_authority)),
        )
        (work / "envoy.yaml").write_text(config)
        envoy_log = work / "envoy.log"
        command = [str(ENVOY), "-c", str(work / "envoy.yaml"), "--disable-hot-restart", "--log-path", str(envoy_log), "--component-log-level", "wasm:debug"]
        with open(work / "envoy.out", "wb") as out:
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=envoy_environment(), preexec_fn=die_with_parent))
        wait_for_port(envoy_port, processes[-1], "Envoy", envoy_log)

        print(f"Open {app_url}/ and sign in with any user name and password.", flush=True)
        print(f"  the user 'contractor' is denied by a rule (403); {app_url}/healthz is public;", flush=True)
        print(f"  {app_url}/api/whoami takes a bearer token (the app page shows a curl command).", flush=True)
        print(f"  IdP {idp_issuer}, Envoy admin http://127.0.0.1:{admin_port}, logs in {work}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("a component stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
