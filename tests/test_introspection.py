"""Opaque access tokens checked by OAuth 2.0 token introspection (RFC 7662) inside
the filter, against oidc-provider's introspection endpoint (its access tokens are
opaque): the decision (active, revoked, expired, audience, issuer), the policies
over the answer's members, the per-token cache and single flight, failing closed
when the endpoint is down or slow, and a JWT beside an opaque token."""

import concurrent.futures
import json
import time

import pytest
import requests

from harness.envoy import Listener
from harness.idp import Client
from harness.login import login
from harness.stats import custom
from harness.tcp_proxy import TcpProxy
from harness.tokens import cached_key, claims, generate_key, jwks_of, pkcs8_pem, sign
from harness.waiting import wait_until

SERVICE = {
    "client_id": "svc",
    "client_secret": "svc-secret-0123456789abcdef-0123456789",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "redirect_uris": [],
    "scope": "api:read api:write",
}
# The resource server: the client the filter introspects as.
GATEWAY = {
    "client_id": "gateway",
    "client_secret": "gateway-secret-0123456789abcdef-0123",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "redirect_uris": [],
}
GATEWAY_POST = GATEWAY | {
    "client_id": "gateway-post",
    "token_endpoint_auth_method": "client_secret_post",
}
GATEWAY_JWT = GATEWAY | {
    "client_id": "gateway-jwt",
    "token_endpoint_auth_method": "client_secret_jwt",
}
USER_CLIENT = {
    "client_id": "user-app",
    "client_secret": "user-app-secret",
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
}
JWT_ISSUER = "https://jwt.example.test"
TIMEOUT = 10


def rule(idp, **fields) -> dict:
    """A rule for the IdP; a field given as None is left out."""
    rule = {
        "issuer": idp.issuer,
        "introspectionEndpoint": idp.endpoint("introspection"),
        "clientId": GATEWAY["client_id"],
        "clientSecret": GATEWAY["client_secret"],
        "outputClaimToHeaders": [{"header": "x-client-id", "claim": "client_id"}],
    } | fields
    return {name: value for name, value in rule.items() if value is not None}


def config(idp, rules: list[dict], cluster: str = "idp", **top) -> dict:
    return {"introspection": rules, "clusters": {idp.authority: cluster}} | top


def policies(issuer: str) -> list[dict]:
    return [{"rules": [
        {"to": [{"operation": {"paths": ["/read/*"]}}],
         "when": [{"key": "request.auth.claims[scope]", "values": ["api:read"]}]},
        {"to": [{"operation": {"paths": ["/write/*"]}}],
         "when": [{"key": "request.auth.claims[scope]", "values": ["api:write"]}]},
        {"to": [{"operation": {"paths": ["/client/*"]}}],
         "when": [{"key": "request.auth.claims[client_id]", "values": ["svc"]}]},
        {"to": [{"operation": {"paths": ["/user/*"]}}],
         "from": [{"source": {"requestPrincipals": [f"{issuer}/alice"]}}]},
        {"to": [{"operation": {"paths": ["/jwt/*", "/any/*"]}}]},
    ]}]


@pytest.fixture(scope="module")
def env(module_stack):
    stack = module_stack
    callback = stack.callback_server()
    user_client = USER_CLIENT | {"redirect_uris": [callback.url]}
    client_key = generate_key("ES256")
    gateway_pkj = {
        "client_id": "gateway-pkj", "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [client_key.jwk()]},
        "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
    }
    idp = stack.idp(
        clients=[SERVICE, GATEWAY, GATEWAY_POST, GATEWAY_JWT, gateway_pkj, user_client],
        extra_scopes=["api:read", "api:write"],
        ttl={"ClientCredentials": 600, "AccessToken": 3},
    )
    relay = stack.own(TcpProxy(idp.port).start())
    key = cached_key("ES256", "introspection")
    listeners = {
        "main": Listener("main", config(idp, [rule(idp, negativeCacheDuration="1s")],
                                        authorizationPolicies=policies(idp.issuer))),
        "nocache": Listener("nocache", config(idp, [rule(idp, cacheDuration="0s", negativeCacheDuration="0s")])),
        "short": Listener("short", config(idp, [rule(idp, cacheDuration="2s")])),
        "audience": Listener("audience", config(idp, [rule(idp, audiences=["https://api.example.test"])])),
        "issuer": Listener("issuer", config(idp, [rule(idp, issuer="https://not-the-idp.example.test")])),
        "post": Listener("post", config(idp, [rule(idp, clientId="gateway-post", clientSecret=GATEWAY_POST["client_secret"],
                                        tokenEndpointAuthMethod="client_secret_post")])),
        "secret_jwt": Listener("secret_jwt", config(idp, [rule(
            idp, clientId="gateway-jwt", clientSecret=GATEWAY_JWT["client_secret"],
            tokenEndpointAuthMethod="client_secret_jwt")])),
        "mixed": Listener("mixed", config(
            idp, [rule(idp)], authorizationPolicies=policies(idp.issuer),
            jwtRules=[{"issuer": JWT_ISSUER, "jwks": json.dumps(jwks_of(key)),
                       "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}]}])),
        "private_key_jwt": Listener("private_key_jwt", config(idp, [rule(
            idp, clientId="gateway-pkj", clientSecret=None, tokenEndpointAuthMethod="private_key_jwt",
            clientPrivateKeyFromEnv="GATEWAY_KEY")]), vm_environment={"key_values": {"GATEWAY_KEY": pkcs8_pem(client_key)}}),
        "discovered": Listener("discovered", config(idp, [rule(idp, introspectionEndpoint=None)])),
        "relay": Listener("relay", config(idp, [rule(idp, timeout="1s")], cluster="idp_relay")),
        # A cluster Envoy does not have: every call is refused at dispatch.
        "nocluster": Listener("nocluster", config(idp, [rule(idp)], cluster="no_such_cluster")),
    }
    envoy = stack.envoy(*listeners.values(), clusters={"idp": idp.port, "idp_relay": relay.port}, concurrency=1)
    urls = {name: envoy.url(name) for name in listeners}
    yield {"idp": idp, "urls": urls, "envoy": envoy, "relay": relay, "key": key, "callback": callback,
           "user_client": user_client}
    idp.introspection_fault()


def new_token(idp, scope: str = "api:read") -> str:
    return idp.client_credentials_token(SERVICE["client_id"], SERVICE["client_secret"], scope)["access_token"]


def get(url: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=TIMEOUT, **kwargs)


def echoed(response: requests.Response) -> dict:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    return response.json()


def test_active_token_is_an_identity_judged_by_the_policies(env):
    idp, main = env["idp"], env["urls"]["main"]
    token = new_token(idp, "api:read")
    seen = echoed(get(f"{main}/read/x", token))
    # The answer's members go upstream as configured; the token does not.
    assert seen["headers"]["x-client-id"] == "svc"
    assert "authorization" not in seen["headers"]
    echoed(get(f"{main}/client/x", token))
    # `scope` is space-delimited: api:read does not give api:write.
    denied = get(f"{main}/write/x", token)
    assert denied.status_code == 403 and denied.text == "RBAC: access denied"
    # No `sub` in a client_credentials token: no principal.
    assert get(f"{main}/user/x", token).status_code == 403
    # A client-sent copy of an output header never reaches the upstream.
    headers = {"authorization": f"Bearer {token}", "x-client-id": "admin"}
    forged = echoed(requests.get(f"{main}/read/x", headers=headers, timeout=TIMEOUT))
    assert forged["headers"]["x-client-id"] == "svc"


def user_token(env, username: str) -> str:
    """An opaque access token of a code flow (AccessToken ttl: 3 s)."""
    idp, callback = env["idp"], env["callback"]
    client = Client(**{k: env["user_client"][k] for k in ("client_id", "client_secret", "redirect_uris")})
    request = idp.auth_request(client=client)
    flow = login(requests.Session(), request.url, username)
    code = flow.callback_params(callback.url)["code"]
    reply = idp.exchange_code(code, request, client=client)
    assert reply.status_code == 200, reply.text
    access_token = reply.json()["access_token"]
    assert access_token.count(".") == 0, "oidc-provider's access tokens are opaque"
    return access_token


def test_request_principal_of_a_user_token(env):
    main = env["urls"]["main"]
    alice = user_token(env, "alice")
    seen = echoed(get(f"{main}/user/profile", alice))
    assert seen["headers"]["x-client-id"] == "user-app"
    bob = user_token(env, "bob")
    assert get(f"{main}/user/profile", bob).status_code == 403


def test_missing_and_unknown_tokens(env):
    main = env["urls"]["main"]
    missing = get(f"{main}/any/x", None)
    assert missing.status_code == 401 and missing.text == "Jwt is missing"
    unknown = get(f"{main}/any/x", "not-a-token-the-idp-issued")
    assert unknown.status_code == 401 and unknown.text == "Token is not active"
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]


def test_one_call_per_token_then_the_cache(env):
    idp, main = env["idp"], env["urls"]["main"]
    token = new_token(idp)
    idp.clear_events()
    idp.introspection_fault(delay_ms=500)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            replies = list(pool.map(lambda _: get(f"{main}/read/x", token), range(50)))
    finally:
        idp.introspection_fault()
    assert [r.status_code for r in replies] == [200] * 50, {r.status_code for r in replies}
    assert idp.introspection_count() == 1
    for _ in range(5):
        echoed(get(f"{main}/read/x", token))
    assert idp.introspection_count() == 1
    stats = custom(env["envoy"].admin_url)
    assert stats["introspection.calls"] >= 1
    assert stats["introspection.cache_hit"] >= 5
    assert stats["introspection.active"] >= 1
    assert stats["introspection.cache_entries"] >= 1
    assert stats["introspection.cache_bytes"] >= 100 * stats["introspection.cache_entries"]
    assert stats["introspection.in_flight"] == 0


def test_revoked_token_is_honoured_until_its_entry_expires(env):
    idp, urls = env["idp"], env["urls"]
    token = new_token(idp)
    echoed(get(f"{urls['short']}/x", token))
    echoed(get(f"{urls['nocache']}/x", token))
    idp.revoke(token, SERVICE["client_id"], SERVICE["client_secret"])
    # Without a cache: refused at once.
    refused = get(f"{urls['nocache']}/x", token)
    assert refused.status_code == 401 and refused.text == "Token is not active"
    # With cacheDuration 2s: still allowed from the cache, refused once it expires.
    echoed(get(f"{urls['short']}/x", token))
    time.sleep(2.5)
    assert get(f"{urls['short']}/x", token).status_code == 401
    stats = custom(env["envoy"].admin_url)
    assert stats["introspection.inactive"] >= 2 and stats["requests_denied.token_inactive"] >= 2


def test_negative_answers_are_cached_briefly(env):
    idp, main = env["idp"], env["urls"]["main"]
    idp.clear_events()
    assert get(f"{main}/any/x", "never-issued-token").status_code == 401
    assert get(f"{main}/any/x", "never-issued-token").status_code == 401
    assert idp.introspection_count() == 1
    time.sleep(1.2)
    assert get(f"{main}/any/x", "never-issued-token").status_code == 401
    assert idp.introspection_count() == 2


def test_expired_token_is_refused(env):
    idp, main = env["idp"], env["urls"]["main"]
    token = user_token(env, "carol")
    answer = idp.introspect(token, GATEWAY["client_id"], GATEWAY["client_secret"])
    assert answer["active"] and answer["exp"] <= time.time() + 3
    echoed(get(f"{main}/any/x", token))
    # Cached only until its `exp` (not cacheDuration's 60 s): then asked again.
    time.sleep(4)
    expired = get(f"{main}/any/x", token)
    assert expired.status_code == 401, expired.text


def test_wrong_audience_and_wrong_issuer(env):
    idp, urls = env["idp"], env["urls"]
    token = new_token(idp)
    audience = get(f"{urls['audience']}/x", token)
    assert audience.status_code == 403 and audience.text == "Audiences in Jwt are not allowed"
    issuer = get(f"{urls['issuer']}/x", token)
    assert issuer.status_code == 401 and issuer.text == "Jwt issuer is not configured"


def test_client_authentication_methods(env):
    idp, urls = env["idp"], env["urls"]
    token = new_token(idp)
    idp.clear_events()
    echoed(get(f"{urls['post']}/x", token))
    echoed(get(f"{urls['secret_jwt']}/x", token))
    assert len(idp.assertions()) == 1, "client_secret_jwt sends an assertion, never the secret"
    echoed(get(f"{urls['private_key_jwt']}/x", token))
    assertions = idp.assertions()
    assert len(assertions) == 2 and assertions[0] != assertions[1]
    assert idp.introspection_count() == 3


def test_a_jwt_and_an_opaque_token_on_one_route(env):
    idp, mixed, key = env["idp"], env["urls"]["mixed"], env["key"]
    jwt = sign({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, claims(JWT_ISSUER, sub="robot"), key)
    idp.clear_events()
    seen = echoed(get(f"{mixed}/jwt/x", jwt))
    assert seen["headers"]["x-jwt-sub"] == "robot" and "x-client-id" not in seen["headers"]
    assert idp.introspection_count() == 0, "a JWT of a jwtRules issuer is never introspected"
    seen = echoed(get(f"{mixed}/read/x", new_token(idp)))
    assert seen["headers"]["x-client-id"] == "svc" and "x-jwt-sub" not in seen["headers"]
    assert idp.introspection_count() == 1


def test_endpoint_down_slow_or_failing_fails_closed_then_recovers(env):
    idp, relay, url = env["idp"], env["relay"], env["urls"]["relay"]
    token = new_token(idp)
    relay.switch_off()
    try:
        down = get(f"{url}/x", token)
        assert down.status_code == 503 and down.text == "Token introspection is unavailable"
        assert down.headers.get("retry-after") == "1"
        assert "www-authenticate" not in down.headers
        # Backing off: answered at once, no call.
        started = time.monotonic()
        assert get(f"{url}/x", token).status_code == 503
        assert time.monotonic() - started < 0.5
    finally:
        relay.switch_on()
    time.sleep(1.2)
    echoed(get(f"{url}/x", token))
    # Slow: past the rule's 1s timeout.
    slow_token = new_token(idp)
    idp.introspection_fault(delay_ms=2500)
    try:
        started = time.monotonic()
        slow = get(f"{url}/x", slow_token)
        assert slow.status_code == 503
        assert time.monotonic() - started < 2.0
    finally:
        idp.introspection_fault()
    # A 5xx.
    time.sleep(2.2)  # the backoff doubled
    idp.introspection_fault(status=500)
    try:
        tokens = [new_token(idp) for _ in range(6)]
        idp.clear_events()
        assert get(f"{url}/x", tokens[0]).status_code == 503
        # Backing off: the other tokens fail closed without a call.
        assert [get(f"{url}/x", token).status_code for token in tokens[1:]] == [503] * 5
        assert idp.introspection_count() == 1
    finally:
        idp.introspection_fault()
    time.sleep(4.2)
    echoed(get(f"{url}/x", new_token(idp)))
    stats = custom(env["envoy"].admin_url)
    assert stats["introspection.failed"] >= 3
    assert stats["requests_denied.introspection_unavailable"] >= 4


def test_a_call_envoy_refuses_to_dispatch_fails_closed_and_is_counted(env):
    before = custom(env["envoy"].admin_url)
    refused = get(f"{env['urls']['nocluster']}/x", new_token(env["idp"]))
    assert refused.status_code == 503 and refused.text == "Token introspection is unavailable"
    assert refused.headers.get("retry-after") == "1"
    names = ("introspection.calls", "introspection.failed", "requests_denied.introspection_unavailable")

    def counted() -> dict[str, int]:
        after = custom(env["envoy"].admin_url)
        return {name: after.get(name, 0) - before.get(name, 0) for name in names}

    # The VMs report their counters on their timer; other listeners' may come too.
    assert wait_until(lambda: min(counted().values()) >= 1, timeout=10), counted()
    assert "cannot dispatch to cluster `no_such_cluster`" in env["envoy"].log_text()


def test_the_endpoint_from_the_issuers_discovery_document(env):
    idp, url = env["idp"], env["urls"]["discovered"]
    idp.clear_events()
    seen = echoed(get(f"{url}/x", new_token(idp)))
    assert seen["headers"]["x-client-id"] == "svc"
    assert idp.introspection_count() == 1
    assert get(f"{url}/x", "never-issued").status_code == 401


BAD_RULE = {
    "issuer": "https://idp.example.test",
    "introspectionEndpoint": "http://127.0.0.1:1/introspect",
    "clientId": "gateway",
    "clientSecret": "a-secret-never-logged",
}
BAD_CONFIGS = {
    "unknown-field": (BAD_RULE | {"cacheDuraton": "1m"}, ["introspection[0]", "cacheDuraton"]),
    "missing-client-id": ({k: v for k, v in BAD_RULE.items() if k != "clientId"}, ["introspection[0].clientId"]),
    "short-secret-for-client-secret-jwt": (
        BAD_RULE | {"tokenEndpointAuthMethod": "client_secret_jwt"},
        ["introspection[0].tokenEndpointAuthMethod", "32 bytes"],
    ),
    "bad-cache-duration": (BAD_RULE | {"cacheDuration": "soon"}, ["introspection[0].cacheDuration"]),
}


@pytest.mark.parametrize("bad_rule, expected", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_introspection_rules_prevent_start_and_name_the_field(stack, bad_rule, expected):
    outcome = stack.envoy_expecting_failure(Listener("main", {"introspection": [bad_rule]}), timeout=20)
    assert not outcome.became_ready and outcome.exit_code not in (None, 0)
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any(all(text in line for text in expected) for line in lines), "\n".join(lines) or outcome.log[-2000:]
    assert "a-secret-never-logged" not in outcome.log
