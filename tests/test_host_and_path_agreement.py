"""Envoy and the filter read a request alike (issue #20): the host an app and a
policy are chosen by is the host Envoy routes on, a path is judged as Envoy
routes it as well as the upstream serves it, a CORS preflight is still judged by
the policies, and no login's cookie or spoofed identity header goes upstream.

Route tables are written as Istio writes a gateway's (`host` and `host:*` per
virtual host, and a `*` catch-all); each route tags the request it forwards
(`x-routed-to`), so a test sees where Envoy sent what the filter allowed.
Requests go out with http.client, which sends the Host and path as written.
"""

import http.client
import json

import pytest

from harness.envoy import Listener
from harness.oidc_app import new_cookie_secret
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "https://issuer-agreement.test"
RBAC = "RBAC: access denied"
JWT_MISSING = "Jwt is missing"
BAD_HOST = "Bad Request: the Host is not a valid host[:port]"
ANYONE = {"allowMissing": True}


def gateway_routes(*hosts: str) -> dict:
    """A virtual host per name, with Istio's `name:*` twin, and the catch-all."""
    tables = {host: ([host, f"{host}:*"], ["/"]) for host in hosts}
    tables["catch-all"] = (["*"], ["/"])
    return tables


# The top level (every host no app names) needs a token; `api` and `*.docs`
# let anyone in; `secret.docs` needs a token again and sits after the wildcard
# that would shadow it in a first-match reading.
APPS = [
    {"name": "api", "hosts": ["api.example.com", "*.api.example.com"], **ANYONE},
    {"name": "grafana", "hosts": ["grafana.example.com"]},
    {"name": "docs", "hosts": ["*.docs.example.com"], **ANYONE},
    {"name": "secret", "hosts": ["secret.docs.example.com"]},
]
HOSTS = ["api.example.com", "grafana.example.com", "secret.docs.example.com", "*.docs.example.com"]

DENY_ADMIN = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}
DENY_LOOPBACK_INTERNAL = {
    "action": "DENY",
    "rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.1/32"]}}], "to": [{"operation": {"paths": ["/internal*"]}}]}],
}
NEEDS_A_USER = {"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}
OPTIONS_FOR_ANYONE = {"rules": [{"to": [{"operation": {"methods": ["OPTIONS"]}}]}]}


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "agreement")


@pytest.fixture(scope="module")
def envoy(module_stack, key):
    server = module_stack.jwks_server({"keys": [key.jwk()]})

    def config(**top_level) -> dict:
        return plugin_config(rule(ISSUER, server), servers=(server,), **top_level)

    def login(**fields) -> dict:
        # The issuer's discovery is never answered: only cookie names matter here.
        return {"issuer": server.issuer, "clientId": "c", "clientSecret": "s", "cookieSecure": False,
                "cookieSecrets": [new_cookie_secret()], "cookieDomain": ".example.test"} | fields

    two_logins = plugin_config(
        rule(ISSUER, server, outputClaimToHeaders=[{"header": "x_user_email", "claim": "email"}]),
        servers=(server,),
        oidc=login(),
        publicPaths=["/static/*"],
        apps=[{"name": "shop", "hosts": ["shop.example.test"], "oidc": login(clientId="shop")}],
    )
    listeners = [
        Listener("two-logins", two_logins),
        Listener("gateway", config(apps=APPS), virtual_hosts=gateway_routes(*HOSTS)),
        Listener(
            "gateway-strip-dot",
            config(apps=APPS),
            virtual_hosts=gateway_routes(*HOSTS),
            hcm_extra={"strip_trailing_host_dot": True},
        ),
        Listener("cors", config(authorizationPolicies=[DENY_ADMIN, DENY_LOOPBACK_INTERNAL, NEEDS_A_USER])),
        Listener(
            "cors-options",
            config(authorizationPolicies=[DENY_ADMIN, DENY_LOOPBACK_INTERNAL, NEEDS_A_USER, OPTIONS_FOR_ANYONE]),
        ),
        Listener("cors-open", config()),
        # `/admin` to one backend, the rest to another; the policy denies /admin*.
        Listener(
            "prefix-route",
            config(authorizationPolicies=[DENY_ADMIN], allowMissing=True),
            virtual_hosts={"site": (["*"], ["/admin", "/"])},
        ),
        Listener(
            "prefix-route-normalized",
            config(authorizationPolicies=[DENY_ADMIN], allowMissing=True),
            virtual_hosts={"site": (["*"], ["/admin", "/"])},
            hcm_extra={"normalize_path": True},
        ),
    ]
    return module_stack.envoy(*listeners, servers=(server,))


def send(envoy, listener: str, host: str, path: str = "/", method: str = "GET", headers: dict | None = None,
         token: str | None = None) -> tuple[int, str, dict]:
    """(status, body, the upstream's view of the request or {})."""
    connection = http.client.HTTPConnection("127.0.0.1", envoy.listeners[listener].port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if token is not None:
            connection.putheader("Authorization", f"Bearer {token}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    seen = {}
    if response.status == 200 and response.getheader("content-type") == "application/json":
        seen = json.loads(body)
    return response.status, body, seen


def routed_to(seen: dict) -> str | None:
    return seen.get("headers", {}).get("x-routed-to")


def user_token(key) -> str:
    return sign({}, claims(ISSUER, sub="user"), key)


# ----- 1. one reading of the host -----
@pytest.mark.parametrize(
    "authority",
    [
        # Envoy routes this to grafana (`grafana.example.com:*`); cut at its last
        # `:` it ended in `.api.example.com`, an app anyone may use.
        "grafana.example.com:x.api.example.com:443",
        # Routed to api; cut at the last `:`, it matched no app.
        "api.example.com:1:2",
        "grafana.example.com:",
        "grafana.example.com:443:",
        "grafana.example.com:+443",
        "api.example.com:x",
    ],
)
def test_an_authority_that_is_not_host_and_port_is_refused(envoy, authority):
    status, body, _ = send(envoy, "gateway", authority)
    assert (status, body) == (400, BAD_HOST)


def test_valid_authorities_are_judged_under_the_app_envoy_routes_to(envoy, key):
    for host in ("api.example.com", "api.example.com:8443", "API.Example.com", "eu.api.example.com"):
        status, _, seen = send(envoy, "gateway", host)
        assert status == 200, host
    status, _, seen = send(envoy, "gateway", "api.example.com:8443")
    assert routed_to(seen) == "api.example.com"
    assert send(envoy, "gateway", "grafana.example.com:443")[:2] == (401, JWT_MISSING)
    status, _, seen = send(envoy, "gateway", "grafana.example.com:443", token=user_token(key))
    assert (status, routed_to(seen)) == (200, "grafana.example.com")


def test_a_trailing_dot_is_judged_where_envoy_routes_it(envoy):
    # Without strip_trailing_host_dot, `api.example.com.` is not the api virtual
    # host: Envoy sends it to the catch-all, whose rules (a token) apply.
    assert send(envoy, "gateway", "api.example.com.")[:2] == (401, JWT_MISSING)
    assert send(envoy, "gateway", "api.example.com.:8443")[:2] == (401, JWT_MISSING)
    status, _, seen = send(envoy, "gateway", "other.example.com", token=None)
    assert status == 401
    # With it, Envoy removes the dot from the header before any filter: both
    # read `api.example.com`.
    status, _, seen = send(envoy, "gateway-strip-dot", "api.example.com.")
    assert (status, routed_to(seen)) == (200, "api.example.com")
    assert seen["headers"]["host"] == "api.example.com"


def test_the_most_specific_app_wins_as_the_most_specific_virtual_host(envoy, key):
    # `*.docs.example.com` comes first in `apps`, but Envoy routes the exact name
    # to its own virtual host, and so does the filter choose its app.
    assert send(envoy, "gateway", "secret.docs.example.com")[:2] == (401, JWT_MISSING)
    status, _, seen = send(envoy, "gateway", "secret.docs.example.com", token=user_token(key))
    assert (status, routed_to(seen)) == (200, "secret.docs.example.com")
    status, _, seen = send(envoy, "gateway", "public.docs.example.com")
    assert (status, routed_to(seen)) == (200, "*.docs.example.com")


# ----- 2. a CORS preflight skips authentication, not authorization -----
PREFLIGHT = {"Origin": "https://app.example.test", "Access-Control-Request-Method": "GET"}


@pytest.mark.parametrize("path", ["/admin/export", "/internal/metrics", "/app"])
def test_a_preflight_is_judged_by_the_policies_as_an_anonymous_request(envoy, path):
    # Istio's answer: a preflight carries no credential, so none could help it.
    status, body, _ = send(envoy, "cors", "app.example.test", path, method="OPTIONS", headers=PREFLIGHT)
    assert (status, body) == (403, RBAC)


def test_an_allow_rule_for_options_lets_preflights_through_but_not_past_a_deny(envoy):
    status, _, seen = send(envoy, "cors-options", "app.example.test", "/app", method="OPTIONS", headers=PREFLIGHT)
    assert (status, seen["method"]) == (200, "OPTIONS")
    for path in ("/admin/export", "/internal/metrics"):
        status, body, _ = send(envoy, "cors-options", "app.example.test", path, method="OPTIONS", headers=PREFLIGHT)
        assert (status, body) == (403, RBAC), path


def test_without_policies_a_preflight_passes_without_a_token(envoy):
    status, _, seen = send(envoy, "cors-open", "app.example.test", "/admin/export", method="OPTIONS", headers=PREFLIGHT)
    assert (status, seen["method"]) == (200, "OPTIONS")
    # Not a preflight (no Access-Control-Request-Method): a token is needed.
    status, body, _ = send(envoy, "cors-open", "app.example.test", "/admin/export", method="OPTIONS",
                           headers={"Origin": "https://app.example.test"})
    assert (status, body) == (401, JWT_MISSING)


# ----- 3. paths not in normal form, judged as routed and as served -----
@pytest.mark.parametrize(
    "path",
    [
        "/admin/..;/manager/html",  # Envoy routes by /admin; Tomcat serves /manager/html
        "/admin;x/../manager/html",
        "/admin/../manager/html",
        "/admin/.;/x",
        "/public/..;/admin",  # the other way round: routed by /, served as /admin
        "/admin;jsessionid=1",
    ],
)
def test_a_deny_holds_under_every_reading_of_the_path(envoy, key, path):
    for token in (None, user_token(key)):
        status, body, seen = send(envoy, "prefix-route", "site.test", path, token=token)
        assert status in (401, 403), f"{path} reached {routed_to(seen)} as {seen.get('path')}"


def test_plain_paths_still_route_and_pass(envoy):
    status, _, seen = send(envoy, "prefix-route", "site.test", "/manager/html")
    assert (status, routed_to(seen)) == (200, "site")
    # Denied whoever the user is: 403, not a request for a token.
    assert send(envoy, "prefix-route", "site.test", "/admin/x")[:2] == (403, RBAC)


@pytest.mark.parametrize("path", ["/admin/..;/manager/html", "/admin/../manager/html", "/public/..;/admin"])
def test_with_normalize_path_envoy_and_the_filter_agree(envoy, path):
    """Envoy resolves the path before routing and before the filter; whatever it
    makes of `..;`, a request that reaches the `/admin` route or an `/admin`
    path upstream was denied."""
    status, _, seen = send(envoy, "prefix-route-normalized", "site.test", path)
    if status == 200:
        assert routed_to(seen) == "site", seen
        assert not seen["path"].split(";")[0].startswith("/admin"), seen
    else:
        assert status == 403


# ----- 4 and 5. no login's cookie and no spoofed identity header goes upstream -----
LOGIN_COOKIES = ("oidc_session=a; oidc_session_0=b; oidc_session_login=c; "
                 "oidc_session_shop=d; oidc_session_shop_1=e; oidc_session_shop_login=f; theme=dark")


@pytest.mark.parametrize(
    "host, path, with_token",
    [
        ("shop.example.test", "/static/app.js", False),  # the app's public path
        ("shop.example.test", "/orders", True),  # the app, with a bearer token
        ("www.example.test", "/static/app.js", False),  # the top level's public path
        ("www.example.test", "/orders", True),
    ],
)
def test_no_logins_cookies_reach_the_upstream_whichever_app_serves(envoy, key, host, path, with_token):
    token = sign({}, claims(ISSUER, sub="u", email="u@example.test"), key) if with_token else None
    status, _, seen = send(envoy, "two-logins", host, path, headers={"Cookie": LOGIN_COOKIES}, token=token)
    assert status == 200
    assert seen["headers"].get("cookie") == "theme=dark"


def test_an_identity_header_configured_with_an_underscore_loses_every_client_spelling(envoy, key):
    token = sign({}, claims(ISSUER, sub="u", email="u@example.test"), key)
    spoofed = {"X-User-Email": "boss@example.test", "x-user_email": "boss@example.test"}
    status, _, seen = send(envoy, "two-logins", "www.example.test", "/orders", headers=spoofed, token=token)
    assert status == 200
    headers = seen["headers"]
    assert headers.get("x_user_email") == "u@example.test", headers
    assert "x-user-email" not in headers and "x-user_email" not in headers, headers
    status, _, seen = send(envoy, "two-logins", "www.example.test", "/static/app.js", headers=spoofed)
    assert status == 200
    assert not {"x-user-email", "x-user_email", "x_user_email"} & set(seen["headers"]), seen["headers"]
