"""Istio's request semantics through Envoy: anonymous requests judged by the
policies (`allowMissing`), Istio's documented RequestAuthentication +
AuthorizationPolicy examples pasted as they are, CORS preflights, policies that
read the request as it is forwarded, one principal per request, and the mTLS
peer identity and addresses of `from.source`."""

import requests

from harness import stats
from harness.certs import Authority
from harness.client import REQUEST_TIMEOUT, assert_denied, get
from harness.envoy import WORK_DIR, Listener
from harness.login import login
from harness.oidc_app import App, html_session, upstream
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "testing@secure.istio.io"
PARTNER = "https://partner.example.test"
RBAC = "RBAC: access denied"

# Istio's authentication task, modern form: a token is required on /ip only.
IP_ONLY = [
    {
        "rules": [
            {"to": [{"operation": {"notPaths": ["/ip"]}}]},
            {"from": [{"source": {"requestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/ip"]}}]},
        ]
    }
]
# Istio's documented policies, as they are.
REQUIRE_JWT = [{"action": "ALLOW", "rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/{ISSUER}"]}}]}]}]
DENY_NO_PRINCIPAL = [{"action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]}]
GROUP1_ONLY = [
    {
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"requestPrincipals": [f"{ISSUER}/{ISSUER}"]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["group1"]}],
            }
        ],
    }
]
DENY_HEADERS_PATH = [
    {"action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/headers"]}}]}]}
]
ADMIN_GROUP_HEADER = [{"rules": [{"when": [{"key": "request.headers[x-group]", "values": ["admin"]}]}]}]


def istio_token(key, **extra):
    return sign({}, claims(ISSUER, sub=ISSUER, **extra), key)


def preflight(url, path="/api", **extra_headers):
    headers = {"Origin": "https://spa.example.test", "Access-Control-Request-Method": "POST", **extra_headers}
    return requests.options(url + path, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False)


def seen_headers(response) -> dict:
    return upstream(response)["headers"]


# ----- bearer tokens -----
def _bearer_urls(stack, key, partner_key):
    server = stack.jwks_server({"keys": [key.jwk(), partner_key.jwk()]})
    group_header = {"outputClaimToHeaders": [{"header": "x-group", "claim": "group"}, {"header": "x-email", "claim": "email"}]}
    corp_rule = rule(ISSUER, server, fromHeaders=[{"name": "Authorization", "prefix": "Bearer "}], **group_header)
    partner_rule = rule(PARTNER, server, fromParams=["access_token"], **group_header)

    def listener(name, **top_level):
        return Listener(name, plugin_config(corp_rule, partner_rule, servers=(server,), **top_level))

    listeners = [
        listener("ip_only", allowMissing=True, authorizationPolicies=IP_ONLY),
        listener("strict", authorizationPolicies=IP_ONLY),
        listener("require_jwt", allowMissing=True, authorizationPolicies=REQUIRE_JWT),
        listener("deny_anonymous", allowMissing=True, authorizationPolicies=DENY_NO_PRINCIPAL),
        listener("groups", allowMissing=True, authorizationPolicies=GROUP1_ONLY),
        listener("deny_path", allowMissing=True, authorizationPolicies=DENY_HEADERS_PATH),
        listener("no_policies", allowMissing=True),
        listener("admin_header", authorizationPolicies=ADMIN_GROUP_HEADER),
        listener("no_bypass", allowMissing=True, bypassCorsPreflight=False, authorizationPolicies=IP_ONLY),
    ]
    envoy = stack.envoy(*listeners, servers=(server,))
    urls = {name: envoy.url(name) for name in envoy.listeners}
    urls["admin"] = envoy.admin_url
    return urls


def test_istio_semantics_for_bearer_tokens(stack):
    key, partner_key = cached_key("ES256", "istio"), cached_key("RS256", "partner")
    urls = _bearer_urls(stack, key, partner_key)
    token = istio_token(key)

    # The token is required on /ip only.
    upstream(get(urls["ip_only"], "/headers"))
    assert_denied(get(urls["ip_only"], "/ip"), 401, "Jwt is missing")
    upstream(get(urls["ip_only"], "/ip", token=token))
    # A present but invalid token is refused wherever it goes.
    assert get(urls["ip_only"], "/headers", token=token[:-6] + "AAAAAA").status_code == 401
    # Without allowMissing, the same policies never see an anonymous request.
    assert_denied(get(urls["strict"], "/headers"), 401, "Jwt is missing")

    # Istio's require-jwt example: Istio answers 403 for no token, we answer 401.
    upstream(get(urls["require_jwt"], "/headers", token=token))
    assert_denied(get(urls["require_jwt"], "/headers"), 401, "Jwt is missing")
    stranger = sign({}, claims(ISSUER, sub="someone-else"), key)
    assert (get(urls["require_jwt"], "/headers", token=stranger).text) == RBAC

    # DENY notRequestPrincipals: ["*"].
    assert_denied(get(urls["deny_anonymous"], "/"), 401, "Jwt is missing")
    upstream(get(urls["deny_anonymous"], "/", token=token))

    # Claims: groups.
    upstream(get(urls["groups"], "/", token=istio_token(key, groups=["group1", "group2"])))
    response = get(urls["groups"], "/", token=istio_token(key, groups=["group2"]))
    assert (response.status_code, response.text) == (403, RBAC)

    # Per-path DENY for anonymous requests.
    upstream(get(urls["deny_path"], "/ip"))
    assert_denied(get(urls["deny_path"], "/headers"), 401, "Jwt is missing")
    upstream(get(urls["deny_path"], "/headers", token=token))

    # RequestAuthentication alone never rejects a missing token; spoofed identity still goes.
    seen = seen_headers(get(urls["no_policies"], "/", headers={"x-email": "spoof@example.test"}))
    assert "x-email" not in seen
    # /headers on ip_only, /ip on deny_path, / on no_policies.
    stats.wait_for(urls["admin"], {"requests_allowed.anonymous": 3})


def test_cors_preflights_skip_authentication_but_not_the_policies(stack):
    """As Istio: `jwt_authn` lets a preflight past, RBAC judges it without a token."""
    key, partner_key = cached_key("ES256", "istio"), cached_key("RS256", "partner")
    urls = _bearer_urls(stack, key, partner_key)
    for name in ("ip_only", "strict"):
        # /headers needs no principal: the preflight passes without its spoofed identity.
        response = preflight(urls[name], "/headers", **{"x-email": "spoof@example.test"})
        seen = upstream(response)
        assert seen["method"] == "OPTIONS" and "x-email" not in seen["headers"], name
        # /ip needs a principal, which a preflight never has: Istio's 403.
        refused = preflight(urls[name], "/ip")
        assert (refused.status_code, refused.text) == (403, RBAC)
        # An OPTIONS that is not a preflight is judged like any request.
        plain = requests.options(urls[name] + "/ip", headers={"Origin": "https://spa.example.test"}, timeout=REQUEST_TIMEOUT)
        assert_denied(plain, 401, "Jwt is missing")
    assert_denied(preflight(urls["no_bypass"], "/ip"), 401, "Jwt is missing")
    upstream(preflight(urls["no_policies"], "/ip"))
    stats.wait_for(urls["admin"], {"requests_allowed.cors_preflight": 3})


def test_header_conditions_read_the_claim_the_filter_forwards(stack):
    key, partner_key = cached_key("ES256", "istio"), cached_key("RS256", "partner")
    urls = _bearer_urls(stack, key, partner_key)
    users = istio_token(key, group="users")
    response = get(urls["admin_header"], "/", token=users, headers={"x-group": "admin"})
    assert (response.status_code, response.text) == (403, RBAC), "a client's x-group must not pass for the claim"
    seen = seen_headers(get(urls["admin_header"], "/", token=istio_token(key, group="admin")))
    assert seen["x-group"] == "admin"


def test_one_principal_per_request(stack):
    key, partner_key = cached_key("ES256", "istio"), cached_key("RS256", "partner")
    urls = _bearer_urls(stack, key, partner_key)
    corp = istio_token(key, email="alice@corp.test")
    partner = sign({}, claims(PARTNER, sub="mallory", email="mallory@partner.test"), partner_key)
    both = get(urls["no_policies"], f"/?access_token={partner}", token=corp)
    assert_denied(both, 401, "Jwt verification fails")
    # Each alone passes, with its own identity.
    assert seen_headers(get(urls["no_policies"], "/", token=corp))["x-email"] == "alice@corp.test"
    assert seen_headers(get(urls["no_policies"], f"/?access_token={partner}"))["x-email"] == "mallory@partner.test"


# ----- browser login -----
def test_login_only_where_a_policy_needs_an_identity(stack):
    app = App(stack, top_level={"allowMissing": True, "authorizationPolicies": IP_ONLY})
    browser = html_session()
    seen = upstream(browser.get(f"{app.url}/headers", allow_redirects=False))
    assert "x-user-email" not in seen["headers"]
    navigation = browser.get(f"{app.url}/ip", allow_redirects=False)
    assert navigation.status_code == 302
    assert navigation.headers["location"].startswith(app.idp.issuer)
    api = requests.get(f"{app.url}/ip", headers={"Accept": "application/json"}, timeout=REQUEST_TIMEOUT, allow_redirects=False)
    assert_denied(api, 401, "Jwt is missing")
    login(browser, f"{app.url}/ip", "alice")
    assert upstream(browser.get(f"{app.url}/ip", allow_redirects=False))["headers"]["x-user-email"] == "alice@example.test"


# ----- the downstream peer -----
SLEEP = "spiffe://cluster.local/ns/foo/sa/sleep"
MESH_AND_USER = [
    {
        "rules": [
            {
                "from": [
                    {"source": {"principals": ["cluster.local/ns/foo/sa/sleep"], "requestPrincipals": [f"{ISSUER}/*"]}}
                ]
            }
        ]
    }
]
NAMESPACE_FOO = [{"rules": [{"when": [{"key": "source.namespace", "values": ["foo"]}]}]}]


def test_mtls_peer_identity(stack, tmp_path):
    key = cached_key("ES256", "istio")
    server = stack.jwks_server({"keys": [key.jwk()]})
    authority = Authority(WORK_DIR / tmp_path.name)
    tls = authority.downstream_tls(authority.issue("envoy", ip="127.0.0.1"))
    sleep = authority.issue("sleep", uri=SLEEP)
    other = authority.issue("other", uri="spiffe://cluster.local/ns/bar/sa/other")

    def listener(name, policies, downstream_tls=None):
        config = plugin_config(rule(ISSUER, server), servers=(server,), allowMissing=True, authorizationPolicies=policies)
        return Listener(name, config, downstream_tls=downstream_tls)

    envoy = stack.envoy(
        listener("mtls", MESH_AND_USER, tls),
        listener("namespace", NAMESPACE_FOO, tls),
        listener("plain", MESH_AND_USER),
        servers=(server,),
    )
    token = istio_token(key)

    def call(name, client, with_token=True):
        url = envoy.url(name).replace("http://", "https://")
        headers = {"Authorization": f"Bearer {token}"} if with_token else {}
        cert = (str(client.cert), str(client.key))
        return requests.get(url + "/", headers=headers, cert=cert, verify=str(authority.ca), timeout=REQUEST_TIMEOUT)

    upstream(call("mtls", sleep))
    denied = call("mtls", other)
    assert (denied.status_code, denied.text) == (403, RBAC)
    # The mesh identity alone is not the end user: no token is a 401.
    assert call("mtls", sleep, with_token=False).status_code == 401
    upstream(call("namespace", sleep, with_token=False))
    # The wrong namespace: no token could help, so none is asked for.
    assert call("namespace", other, with_token=False).status_code == 403
    # A plain-text peer has no principal: the rule matches nothing.
    plain = get(envoy.url("plain"), "/", token=token)
    assert (plain.status_code, plain.text) == (403, RBAC)


REMOTE_DOCS = [{"rules": [{"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]}]}]
DIRECT_LOOPBACK = [{"rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.1/32"]}}]}]}]
DENY_DIRECT_LOOPBACK = [{"action": "DENY", "rules": [{"when": [{"key": "source.ip", "values": ["127.0.0.0/8"]}]}]}]


def test_peer_addresses(stack):
    key = cached_key("ES256", "istio")
    server = stack.jwks_server({"keys": [key.jwk()]})
    trusting_one_hop = {"use_remote_address": True, "xff_num_trusted_hops": 1}
    direct = {"use_remote_address": True, "xff_num_trusted_hops": 0}

    def listener(name, policies, hcm):
        config = plugin_config(rule(ISSUER, server), servers=(server,), allowMissing=True, authorizationPolicies=policies)
        return Listener(name, config, hcm_extra=hcm)

    envoy = stack.envoy(
        listener("remote", REMOTE_DOCS, trusting_one_hop),
        listener("direct", DIRECT_LOOPBACK, direct),
        listener("direct_behind_xff", DIRECT_LOOPBACK, trusting_one_hop),
        listener("deny_direct", DENY_DIRECT_LOOPBACK, direct),
        servers=(server,),
    )
    url = envoy.url
    # remoteIpBlocks: the client address Envoy computed from X-Forwarded-For.
    upstream(get(url("remote"), "/", headers={"x-forwarded-for": "203.0.113.7"}))
    # Denied whoever the user is (an address rule): 403, not a request for a token.
    outside = get(url("remote"), "/", headers={"x-forwarded-for": "198.51.100.1"})
    assert (outside.status_code, outside.text) == (403, RBAC)
    # ipBlocks: the direct peer (loopback), whatever X-Forwarded-For says.
    upstream(get(url("direct"), "/", headers={"x-forwarded-for": "198.51.100.1"}))
    denied = get(url("deny_direct"), "/")
    assert (denied.status_code, denied.text) == (403, RBAC)
    # Where Envoy took the address from X-Forwarded-For, the direct peer is not
    # known to a Wasm filter: a rule that needs it fails closed.
    assert get(url("direct_behind_xff"), "/", headers={"x-forwarded-for": "127.0.0.1"}).status_code == 403
    # Without an X-Forwarded-For the trusted hop has nothing to take: the peer is direct.
    upstream(get(url("direct_behind_xff"), "/"))
