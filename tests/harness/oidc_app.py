"""An app behind Envoy with the filter's browser login, and its IdP.

One Envoy can carry several listeners ("variants") that share the IdP but have
their own plugin configuration, e.g. other cookie secrets.
"""

import base64
import json
import os

import requests

from .envoy import Listener
from .idp import default_client
from .ports import free_port
from .tcp_proxy import TcpProxy

CLIENT_ID = "app"
CLIENT_SECRET = "app-secret-for-tests"


def new_cookie_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def oidc_config(idp, oidc_fields: dict | None = None, **top_level) -> dict:
    block = {
        "issuer": idp.issuer,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "cookieSecrets": [new_cookie_secret()],
        # The tests speak plain HTTP on loopback.
        "cookieSecure": False,
        "postLogoutRedirectUri": "/signed-out",
        "outputClaimToHeaders": [{"header": "x-user-email", "claim": "email"}],
    } | (oidc_fields or {})
    # A field given as None is left out (e.g. clientSecret for private_key_jwt).
    block = {name: value for name, value in block.items() if value is not None}
    return {
        "oidc": block,
        "jwtRules": [{"issuer": idp.issuer, "audiences": [CLIENT_ID]}],
        "clusters": {idp.authority: "idp"},
    } | top_level


class App:
    """`variants` maps a name to (oidc_fields, top_level) for extra listeners.
    `idp_relay`: Envoy reaches the IdP through `self.relay` (a TcpProxy) that a
    test can switch off or slow down, while the browser still reaches the IdP
    directly. `envoy_options` go to `Stack.envoy` (e.g. `concurrency`);
    `vm_environment` is the app listener's `Listener.vm_environment`."""

    def __init__(
        self, stack, oidc_fields=None, top_level=None, idp_options=None, client_fields=None, variants=None,
        idp_relay=False, envoy_options=None, vm_environment=None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        client = default_client(
            f"{self.url}/oauth2/callback",
            f"{self.url}/signed-out",
            **({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET} | (client_fields or {})),
        )
        self.idp = stack.idp(clients=[client], **(idp_options or {}))
        self.config = oidc_config(self.idp, oidc_fields, **(top_level or {}))
        listeners = [Listener("app", self.config, port=self.port, vm_environment=vm_environment)]
        self.variant_urls = {}
        for name, (fields, top) in (variants or {}).items():
            listener = Listener(name, oidc_config(self.idp, fields, **(top or {})))
            listeners.append(listener)
            self.variant_urls[name] = f"http://127.0.0.1:{listener.port}"
        self.relay = stack.own(TcpProxy(self.idp.port).start()) if idp_relay else None
        idp_port = self.relay.port if self.relay else self.idp.port
        self.envoy = stack.envoy(*listeners, clusters={"idp": idp_port}, **(envoy_options or {}))


def html_session() -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = "text/html,application/xhtml+xml"
    return session


def upstream(response: requests.Response) -> dict:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    return json.loads(response.text)


def assert_refused_page(response: requests.Response, email: str | None = None) -> None:
    """A policy refused a signed-in browser's navigation: the filter's HTML 403
    naming the account, with its sign-out button (API clients get the plain
    `RBAC: access denied`)."""
    assert response.status_code == 403, f"{response.status_code}: {response.text[:200]}"
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "Access denied" in response.text and "Sign out" in response.text, response.text[:300]
    if email is not None:
        assert email in response.text, response.text[:300]


def set_cookies(response: requests.Response) -> list[str]:
    return response.raw.headers.getlist("set-cookie") if response.raw is not None else []
