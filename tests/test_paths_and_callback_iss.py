"""Issue 13 through Envoy: path parameters (`;`) as servlet containers read them,
and RFC 9207's `iss` on the login callback, against the real IdP.

Paths go out with http.client, which sends them as written (requests would
resolve dot segments itself).
"""

import http.client
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from harness.envoy import Listener
from harness.login import follow
from harness.oidc_app import App, html_session, set_cookies, upstream
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "https://issuer-paths.test"
RBAC = "RBAC: access denied"
POLICIES = [{"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*", "/internal"]}}]}]}]


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "paths")


@pytest.fixture(scope="module")
def url(module_stack, key):
    server = module_stack.jwks_server({"keys": [key.jwk()]})
    config = plugin_config(
        rule(ISSUER, server), servers=(server,), authorizationPolicies=POLICIES, publicPaths=["/static/*"]
    )
    listener = Listener("paths", config)
    envoy = module_stack.envoy(listener, servers=(server,))
    return envoy.url("paths")


def raw_get(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    target = urlsplit(base)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path, answer",
    [
        # Tomcat, Jetty and Spring serve /admin, which the DENY refuses whoever the
        # user is: 403, not a request for a token.
        ("/static/..;/admin", (403, b"RBAC: access denied")),
        ("/static/.;/admin", (401, b"Jwt is missing")),
        ("/static/app.js;jsessionid=x", (401, b"Jwt is missing")),
        # `;` to a server that decodes before cutting
        ("/static/..%3b/admin", (401, b"Jwt is missing")),
        ("/static/..%3B/admin", (401, b"Jwt is missing")),
    ],
)
def test_path_parameters_never_make_a_path_public(url, path, answer):
    assert raw_get(url, path) == answer


def test_a_plain_public_path_stays_public(url):
    status, body = raw_get(url, "/static/app.js")
    assert status == 200
    assert json.loads(body)["path"] == "/static/app.js"


@pytest.mark.parametrize(
    "path",
    [
        "/static/..;/admin",
        "/admin;jsessionid=x",
        "/admin;/",
        "/;x/admin",  # a segment of parameters only is empty, merged like `//`
        "/internal;jsessionid=x",  # an exact path, not only a prefix
        "/internal",
    ],
)
def test_policies_see_the_path_without_parameters(url, key, path):
    assert raw_get(url, path, sign({}, claims(ISSUER), key)) == (403, RBAC.encode())


def test_parameters_still_reach_the_upstream(url, key):
    status, body = raw_get(url, "/app;jsessionid=x", sign({}, claims(ISSUER), key))
    assert status == 200
    assert json.loads(body)["path"] == "/app;jsessionid=x", "the filter judges, it does not rewrite"


# ----- RFC 9207 -----
@pytest.fixture(scope="module")
def app(module_stack):
    return App(module_stack)


def with_iss(callback: str, values: list[str]) -> str:
    """The callback URL with its `iss` parameters replaced by `values`."""
    parts = urlsplit(callback)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "iss"]
    query += [("iss", value) for value in values]
    return parts._replace(query=urlencode(query)).geturl()


def code_grants(app) -> int:
    return sum(1 for e in app.idp.events("grant.success") if e.get("grant_type") == "authorization_code")


# How the callback's `iss` is altered: the values sent instead of the IdP's.
ALTERED = {
    "wrong": lambda ours: ["https://evil.test"],
    "with-a-slash": lambda ours: [ours + "/"],
    "missing": lambda ours: [],  # the IdP promised it in discovery
    "twice": lambda ours: [ours, ours],
    "ours-then-evil": lambda ours: [ours, "https://evil.test"],
}


@pytest.mark.parametrize("altered", ALTERED)
def test_a_callback_with_altered_iss_is_refused(app, altered):
    # oidc-provider 9 promises `iss` in discovery and sends it.
    assert app.idp.discovery()["authorization_response_iss_parameter_supported"] is True
    session = html_session()
    result = follow(session, f"{app.url}/welcome", username="alice", stop_before=f"{app.url}/oauth2/callback")
    callback = result.hops[-1].location
    assert dict(parse_qsl(urlsplit(callback).query))["iss"] == app.idp.issuer
    values = ALTERED[altered](app.idp.issuer)
    grants = code_grants(app)

    refused = session.get(with_iss(callback, values), allow_redirects=False)
    assert refused.status_code == 400
    assert "text/html" in refused.headers["content-type"]
    assert not [c for c in set_cookies(refused) if c.startswith("oidc_session=")], "no session"
    assert code_grants(app) == grants, "the code was not exchanged"
    # Not a navigation, which would start a new login and replace the login cookie.
    api = session.get(f"{app.url}/welcome", headers={"Accept": "application/json"}, allow_redirects=False)
    assert api.status_code == 401, "still logged out"

    # The unaltered callback of the same login still works: the refusal spent nothing.
    done = session.get(callback, allow_redirects=False)
    assert done.status_code == 302 and done.headers["location"] == "/welcome"
    seen = upstream(session.get(f"{app.url}/welcome", allow_redirects=False))
    assert seen["headers"]["x-user-email"] == "alice@example.test"
