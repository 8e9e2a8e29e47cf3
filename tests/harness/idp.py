"""A real OpenID provider for the tests: tests/idp/server.mjs (oidc-provider 9).

`Idp` writes the server's JSON config under tests/.work/, starts
`node tests/idp/server.mjs CONFIG`, waits (with a deadline) for its
"ready <issuer>" line and stops it with SIGTERM, then SIGKILL. Like Envoy, the
process dies with pytest (PR_SET_PDEATHSIG). Its stderr is kept as idp.log.

    with Idp(clients=[client]) as idp:           # or stack.idp(clients=[...])
        idp.issuer, idp.discovery_url, idp.jwks_uri, idp.authority
        req = idp.auth_request(scope="openid email profile")
        ...
"""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from . import oidc
from .oidc import Client
from .processes import terminate

REPO_ROOT = Path(__file__).resolve().parents[2]
IDP_DIR = REPO_ROOT / "tests" / "idp"
SERVER_JS = IDP_DIR / "server.mjs"
WORK_DIR = REPO_ROOT / "tests" / ".work"
NODE = shutil.which("node") or "node"

READY_TIMEOUT = 20.0
START_ATTEMPTS = 2
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0

# IdPs alive right now, so a failing test's report can show their logs.
RUNNING: "set[Idp]" = set()


class IdpStartError(RuntimeError):
    pass


class IdpNotReady(IdpStartError):
    """Started but silent until the deadline (tried again once)."""


def default_client(redirect_uri: str, post_logout_redirect_uri: str | None = None, **fields) -> Client:
    """The usual confidential test client ('test-client', client_secret_basic)."""
    values = {
        "client_id": "test-client",
        "client_secret": "test-client-secret-0123456789abcdef",
        "redirect_uris": [redirect_uri],
        "post_logout_redirect_uris": [post_logout_redirect_uri] if post_logout_redirect_uri else [],
    }
    values.update(fields)
    return Client(**values)


class Idp:
    """oidc-provider on 127.0.0.1; see tests/idp/server.mjs for every option.

    clients: the registered clients (`Client`s, or raw metadata dicts).
    ttl: lifetimes in seconds by oidc-provider name, merged over the
        defaults: AccessToken, IdToken, RefreshToken, Session, Grant,
        AuthorizationCode, Interaction.
    auto_consent: True skips the consent screen; False shows the dev consent
        form (once per session and client).
    extra_id_token_claims: (count, size): `count` claims x_extra_NN of `size`
        random characters each, in the ID token and userinfo.
    users: {username: {claim: value}} overrides (name, groups, anything).
    rotate_refresh_token: False never rotates (the same refresh token comes
        back), True rotates on every use (reuse of an old one revokes the
        grant), "default" is oidc-provider's timing-dependent policy.
    refresh_token_requires_offline_access: False issues a refresh token on
        every code grant of a client allowed the refresh_token grant.
    host: the issuer's host name (the server always listens on 127.0.0.1).
    config: any other server.mjs field, as is.
    """

    def __init__(
        self,
        clients: list[Client | dict] | None = None,
        *,
        ttl: dict[str, int] | None = None,
        auto_consent: bool = True,
        extra_id_token_claims: tuple[int, int] = (0, 0),
        users: dict[str, dict] | None = None,
        default_groups: list[str] | None = None,
        rotate_refresh_token: bool | str = False,
        refresh_token_requires_offline_access: bool = False,
        pkce_required: bool = True,
        jwks: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "idp",
        **config,
    ):
        self.clients: list[Client | dict] = list(clients or [])
        self.host = host
        self.name = name
        self.config = {
            "port": port,
            "host": host,
            "clients": [c.metadata() if isinstance(c, Client) else dict(c) for c in self.clients],
            "ttl": dict(ttl or {}),
            "auto_consent": auto_consent,
            "extra_id_token_claims": {"count": extra_id_token_claims[0], "size": extra_id_token_claims[1]},
            "users": dict(users or {}),
            "rotate_refresh_token": rotate_refresh_token,
            "refresh_token_requires_offline_access": refresh_token_requires_offline_access,
            "pkce_required": pkce_required,
            **config,
        }
        if default_groups is not None:
            self.config["default_groups"] = list(default_groups)
        if jwks is not None:
            self.config["jwks"] = jwks
        if not self.config["clients"]:
            del self.config["clients"]  # server.mjs's own default client
        self.process: subprocess.Popen | None = None
        self.issuer: str | None = None
        self.port: int | None = None
        self._discovery: dict | None = None
        self.dir: Path | None = None

    # ----- lifecycle -----
    def start(self, timeout: float = READY_TIMEOUT) -> "Idp":
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise IdpStartError(
                f"{IDP_DIR / 'node_modules'} is missing: run `npm ci --prefix tests/idp` (needs Node.js 20+)"
            )
        # Once in a few hundred starts (seen in CI) Node never reaches "ready"
        # without a word; a second process has always started.
        for attempt in range(START_ATTEMPTS):
            try:
                return self._start_once(timeout)
            except IdpNotReady:
                if attempt + 1 == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "Idp":
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=WORK_DIR))
        config_path = self.dir / "idp-config.json"
        config_path.write_text(json.dumps(self.config, indent=2))
        stdout_path, self.log_path = self.dir / "stdout.log", self.dir / "idp.log"
        from .envoy import _die_with_parent  # same child-process hygiene as Envoy

        with open(stdout_path, "wb") as stdout, open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [NODE, str(SERVER_JS), str(config_path)],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                cwd=IDP_DIR,
                preexec_fn=_die_with_parent,
            )
        RUNNING.add(self)
        try:
            self.issuer = self._wait_ready(stdout_path, timeout)
        except BaseException:
            self.stop()
            raise
        self.port = int(self.issuer.rsplit(":", 1)[1])
        return self

    def _wait_ready(self, stdout_path: Path, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in stdout_path.read_text(errors="replace").splitlines():
                if line.startswith("ready "):
                    return line.split(" ", 1)[1].strip()
            if self.process.poll() is not None:
                raise IdpStartError(f"IdP exited with {self.process.returncode} during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise IdpNotReady(f"IdP not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        RUNNING.discard(self)
        terminate(self.process, STOP_TIMEOUT)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- logs -----
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.dir and self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ----- addresses -----
    @property
    def authority(self) -> str:
        """host:port as in the issuer URL (the key of a plugin `clusters` map)."""
        return f"{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return self.discovery()["jwks_uri"]

    def url(self, path: str) -> str:
        return self.issuer + path

    def endpoint(self, name: str) -> str:
        """A discovery endpoint: 'authorization', 'token', 'end_session', 'userinfo', ..."""
        return self.discovery()[f"{name}_endpoint"]

    @property
    def client(self) -> Client:
        """The first registered client (server.mjs's default one if none was given)."""
        if not self.clients:
            return default_client("http://127.0.0.1/callback", "http://127.0.0.1/")
        first = self.clients[0]
        return first if isinstance(first, Client) else Client(
            **{k: first[k] for k in ("client_id", "client_secret", "redirect_uris")},
            post_logout_redirect_uris=first.get("post_logout_redirect_uris", []),
            token_endpoint_auth_method=first.get("token_endpoint_auth_method", "client_secret_basic"),
        )

    # ----- documents -----
    def discovery(self) -> dict:
        if self._discovery is None:
            reply = requests.get(self.discovery_url, timeout=REQUEST_TIMEOUT)
            reply.raise_for_status()
            self._discovery = reply.json()
        return self._discovery

    def jwks(self) -> dict:
        reply = requests.get(self.jwks_uri, timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()

    # ----- flows (the relying party's part, done by the test) -----
    def auth_request(
        self, client: Client | None = None, redirect_uri: str | None = None, scope: str = oidc.DEFAULT_SCOPE, **params
    ) -> oidc.AuthRequest:
        """An authorization URL with fresh state, nonce and PKCE S256."""
        return oidc.authorization_request(self.endpoint("authorization"), client or self.client, redirect_uri, scope, **params)

    def exchange_code(
        self,
        code: str,
        request: oidc.AuthRequest | None = None,
        client: Client | None = None,
        auth_method: str | None = None,
        code_verifier: str | None = None,
    ) -> requests.Response:
        """The token response for `code` (verifier and redirect_uri from `request`)."""
        verifier = code_verifier if code_verifier is not None else (request.code_verifier if request else None)
        redirect_uri = request.redirect_uri if request else None
        return oidc.exchange_code(
            self.endpoint("token"), client or self.client, code, verifier, redirect_uri, auth_method
        )

    def refresh(self, refresh_token: str, client: Client | None = None, auth_method: str | None = None) -> requests.Response:
        return oidc.refresh_grant(self.endpoint("token"), client or self.client, refresh_token, auth_method)

    def validate_id_token(self, id_token: str, client: Client | None = None, nonce: str | None = None) -> dict:
        """Claims of a verified ID token (signature against the live JWKS)."""
        return oidc.validate_id_token(id_token, self.jwks(), self.issuer, (client or self.client).client_id, nonce)

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            self.endpoint("userinfo"), headers={"Authorization": f"Bearer {access_token}"}, timeout=REQUEST_TIMEOUT
        )

    def end_session_url(self, id_token_hint: str | None = None, post_logout_redirect_uri: str | None = None,
                        state: str | None = None, client_id: str | None = None) -> str:
        """The RP-initiated logout URL (OpenID RP-Initiated Logout 1.0)."""
        params = {
            "id_token_hint": id_token_hint,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "state": state,
            "client_id": client_id,
        }
        query = "&".join(
            f"{k}={requests.utils.quote(v, safe='')}" for k, v in params.items() if v is not None
        )
        return self.endpoint("end_session") + (f"?{query}" if query else "")

    # ----- test endpoints of server.mjs -----
    def rotate_keys(self, keep_old: bool = True, jwks: dict | None = None) -> dict:
        """New signing keys from now on (fresh RS256 + ES256 unless `jwks`, a
        private JWKS, is given); the old keys stay published after them
        unless keep_old is False. Returns the new public JWKS."""
        body: dict = {"keep_old": keep_old}
        if jwks is not None:
            body["jwks"] = jwks
        reply = requests.post(self.url("/__test/rotate"), json=body, timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()

    def events(self, name: str | None = None) -> list[dict]:
        """What the OP did, oldest first: {event, client_id, grant_type, error?}.
        Events: authorization.success/error, grant.success/error/revoked,
        end_session.success/error, interaction.ended, server_error."""
        reply = requests.get(self.url("/__test/events"), timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        events = reply.json()
        return [e for e in events if name is None or e["event"] == name]

    def assertions(self) -> list[str]:
        """The `client_assertion` of each client-authenticated request, oldest first."""
        reply = requests.get(self.url("/__test/assertions"), timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()

    def clear_events(self) -> None:
        requests.post(self.url("/__test/events/clear"), timeout=REQUEST_TIMEOUT).raise_for_status()

    # ----- introspection (opaque access tokens) -----
    def client_credentials_token(self, client_id: str, client_secret: str, scope: str | None = None) -> dict:
        """An opaque access token of the client_credentials grant: the token response."""
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        reply = requests.post(self.endpoint("token"), data=form, auth=(client_id, client_secret), timeout=REQUEST_TIMEOUT)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def revoke(self, token: str, client_id: str, client_secret: str) -> None:
        reply = requests.post(
            self.endpoint("revocation"), data={"token": token, "token_type_hint": "access_token"},
            auth=(client_id, client_secret), timeout=REQUEST_TIMEOUT,
        )
        assert reply.status_code == 200, reply.text

    def introspect(self, token: str, client_id: str, client_secret: str) -> dict:
        reply = requests.post(
            self.endpoint("introspection"), data={"token": token},
            auth=(client_id, client_secret), timeout=REQUEST_TIMEOUT,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    def introspection_count(self) -> int:
        """Introspection requests received since the last clear_events()."""
        reply = requests.get(self.url("/__test/counts"), timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()["introspection"]

    def introspection_fault(self, delay_ms: int = 0, status: int = 0) -> None:
        """Delay every introspection reply, or answer it with `status`; no arguments: none."""
        body = {name: value for name, value in {"delay_ms": delay_ms, "status": status}.items() if value}
        requests.post(self.url("/__test/introspection_fault"), json=body, timeout=REQUEST_TIMEOUT).raise_for_status()
