"""Authorization policies and public paths through Envoy, for bearer tokens and
browser sessions: the seeds' scenarios and a mixed public/protected app."""

import http.client
from urllib.parse import urlsplit

import pytest
import requests

from harness.client import get
from harness.envoy import Listener
from harness.login import login
from harness.oidc_app import App, assert_refused_page, html_session, new_cookie_secret, upstream
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "https://issuer-authz.test"
RBAC = "RBAC: access denied"

AUDIENCE_ONLY = [{"rules": [{"when": [{"key": "request.auth.audiences", "values": ["grafana.example.com"]}]}]}]
ONE_EMAIL = [{"rules": [{"when": [{"key": "request.auth.claims[email]", "values": ["alice@example.test"]}]}]}]
DENY_CONTRACTORS = [
    {"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["contractors"]}]}]},
    {"rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/*"]}}]}]},
]
MIXED_APP = [
    {"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"], "paths": ["/admin*"]}}]}]},
    # A boolean claim matches no string (Envoy's string matcher, as in Istio); its
    # header, which outputClaimToHeaders writes as `true`, does.
    {"rules": [{"to": [{"operation": {"methods": ["GET", "POST"]}}], "when": [{"key": "request.headers[x-email-verified]", "values": ["true"]}]}]},
]
EMAIL_VERIFIED_HEADER = [{"header": "x-email-verified", "claim": "email_verified"}]
BOOLEAN_CLAIM = [{"rules": [{"when": [{"key": "request.auth.claims[email_verified]", "values": ["true"]}]}]}]


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "authz")


@pytest.fixture(scope="module")
def urls(module_stack, key):
    server = module_stack.jwks_server({"keys": [key.jwk()]})

    def listener(name, policies, public=()):
        config = plugin_config(
            rule(ISSUER, server),
            servers=(server,),
            authorizationPolicies=policies,
            publicPaths=list(public),
            outputClaimToHeaders=EMAIL_VERIFIED_HEADER,
        )
        return Listener(name, config)

    listeners = [
        listener("audience", AUDIENCE_ONLY, ["/healthz"]),
        listener("email", ONE_EMAIL),
        listener("groups", DENY_CONTRACTORS),
        listener("mixed", MIXED_APP, ["/healthz", "/static/*"]),
        listener("boolean", BOOLEAN_CLAIM),
    ]
    envoy = module_stack.envoy(*listeners, servers=(server,))
    return {listener.name: envoy.url(listener.name) for listener in listeners}


def token(key, **extra):
    return sign({}, claims(ISSUER, **extra), key)


def assert_forbidden(response):
    assert (response.status_code, response.text) == (403, RBAC)


def test_a_boolean_claim_matches_no_string_as_in_istio(urls, key):
    # Envoy's RBAC (Istio's translation) never matches `true` (a JSON boolean) with
    # the string "true": the request is refused, as Istio refuses it.
    assert_forbidden(get(urls["boolean"], "/", token=token(key, email_verified=True)))
    assert_forbidden(get(urls["boolean"], "/", token=token(key, email_verified="false")))
    upstream(get(urls["boolean"], "/", token=token(key, email_verified="true")))


def test_only_the_app_audience_is_allowed(urls, key):
    upstream(get(urls["audience"], "/", token=token(key, aud="grafana.example.com")))
    assert_forbidden(get(urls["audience"], "/", token=token(key, aud="other.example.com")))


def test_only_one_email_is_allowed(urls, key):
    upstream(get(urls["email"], "/", token=token(key, email="alice@example.test")))
    assert_forbidden(get(urls["email"], "/", token=token(key, email="bob@example.test")))
    assert_forbidden(get(urls["email"], "/", token=token(key)))


def test_a_group_is_denied_even_when_allowed_otherwise(urls, key):
    upstream(get(urls["groups"], "/", token=token(key, groups=["staff"])))
    assert_forbidden(get(urls["groups"], "/", token=token(key, groups=["staff", "contractors"])))


def test_unauthenticated_requests_keep_their_401(urls):
    response = get(urls["email"], "/")
    assert (response.status_code, response.text) == (401, "Jwt is missing")


def test_public_paths_skip_authentication(urls):
    seen = upstream(get(urls["audience"], "/healthz"))
    assert seen["path"] == "/healthz"
    # A stale or broken token on a public path is not rejected (istio#27432).
    upstream(get(urls["mixed"], "/static/app.js", token="stale.broken.token"))


def test_mixed_public_and_protected_app(urls, key):
    verified = token(key, email_verified=True)
    upstream(get(urls["mixed"], "/healthz"))
    assert get(urls["mixed"], "/dashboard").status_code == 401
    upstream(get(urls["mixed"], "/dashboard", token=verified))
    assert_forbidden(get(urls["mixed"], "/dashboard", token=token(key, email_verified=False)))
    deleted = requests.delete(f"{urls['mixed']}/admin/users", headers={"Authorization": f"Bearer {verified}"})
    assert_forbidden(deleted)
    put = requests.put(f"{urls['mixed']}/dashboard", headers={"Authorization": f"Bearer {verified}"})
    assert_forbidden(put)


def test_sessions_are_authorized_like_tokens(stack):
    policies = [{"rules": [{"when": [{"key": "request.auth.claims[email]", "values": ["alice@example.test"]}]}]}]
    app = App(stack, top_level={"authorizationPolicies": policies, "publicPaths": ["/healthz"]})
    alice = html_session()
    assert upstream(login(alice, f"{app.url}/", "alice").response)["headers"]["x-user-email"] == "alice@example.test"
    bob = html_session()
    result = login(bob, f"{app.url}/", "bob")
    assert_refused_page(result.response, "bob@example.test")
    # Public without logging in.
    assert upstream(html_session().get(f"{app.url}/healthz", allow_redirects=False))["path"] == "/healthz"


def test_seed_scenarios_for_browser_sessions(stack):
    secret = {"cookieSecrets": [new_cookie_secret()]}

    def only(policies, public=()):
        return (secret, {"authorizationPolicies": policies, "publicPaths": list(public)})

    app = App(
        stack,
        oidc_fields=secret,
        idp_options={"users": {"mallory": {"groups": ["contractors"]}}},
        variants={
            "audience": only([{"rules": [{"when": [{"key": "request.auth.audiences", "values": ["app"]}]}]}]),
            "other_audience": only([{"rules": [{"when": [{"key": "request.auth.audiences", "values": ["billing"]}]}]}]),
            "groups": only([{"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["contractors"]}]}]}], ["/healthz"]),
        },
    )
    alice, mallory = html_session(), html_session()
    login(alice, f"{app.url}/", "alice")
    login(mallory, f"{app.url}/", "mallory")
    urls = app.variant_urls
    upstream(alice.get(f"{urls['audience']}/", allow_redirects=False))
    assert_refused_page(alice.get(f"{urls['other_audience']}/", allow_redirects=False))
    upstream(alice.get(f"{urls['groups']}/", allow_redirects=False))
    assert_refused_page(mallory.get(f"{urls['groups']}/", allow_redirects=False))
    upstream(html_session().get(f"{urls['groups']}/healthz", allow_redirects=False))


@pytest.mark.parametrize("trick", ["/static/../dashboard", "/static/%2e%2e/dashboard", "//static/../dashboard"])
def test_path_tricks_do_not_make_a_path_public(urls, trick):
    # http.client sends the path as written (requests would resolve the dots itself).
    target = urlsplit(urls["mixed"])
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    try:
        connection.request("GET", trick)
        response = connection.getresponse()
        assert (response.status, response.read()) == (401, b"Jwt is missing")
    finally:
        connection.close()
