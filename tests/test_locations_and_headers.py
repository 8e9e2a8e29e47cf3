"""Where tokens are found, whether they are forwarded, and the headers the filter sets."""

import base64
import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from harness.client import assert_denied, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER_A = "https://issuer-a.test"
ISSUER_B = "https://issuer-b.test"

CUSTOM_LOCATIONS = {
    "fromHeaders": [{"name": "x-jwt", "prefix": "Token "}],
    "fromParams": ["token"],
    "fromCookies": ["jwt"],
}
CLAIM_HEADERS = [
    {"header": "x-sub", "claim": "sub"},
    {"header": "x-email", "claim": "email"},
    {"header": "x-team", "claim": "org.team"},
    {"header": "x-level", "claim": "level"},
    {"header": "x-admin", "claim": "admin"},
]


@pytest.fixture(scope="module")
def key_a():
    return cached_key("ES256", "issuer-a")


@pytest.fixture(scope="module")
def key_b():
    return cached_key("EdDSA", "issuer-b")


@pytest.fixture(scope="module")
def envoy(module_stack, key_a, key_b):
    server_a = module_stack.jwks_server({"keys": [key_a.jwk()]})
    server_b = module_stack.jwks_server({"keys": [key_b.jwk()]})
    servers = (server_a, server_b)
    listeners = [
        # Default locations: Authorization "Bearer " and ?access_token=.
        Listener(
            "defaults",
            plugin_config(
                rule(ISSUER_A, server_a, outputPayloadToHeader="x-jwt-payload", outputClaimToHeaders=CLAIM_HEADERS),
                servers=servers,
            ),
        ),
        Listener("custom", plugin_config(rule(ISSUER_A, server_a, **CUSTOM_LOCATIONS), servers=servers)),
        Listener(
            "forward",
            plugin_config(rule(ISSUER_A, server_a, forwardOriginalToken=True, **CUSTOM_LOCATIONS), servers=servers),
        ),
        Listener(
            "default_forward", plugin_config(rule(ISSUER_A, server_a, forwardOriginalToken=True), servers=servers)
        ),
        Listener(
            "two_issuers",
            plugin_config(
                rule(ISSUER_A, server_a, outputClaimToHeaders=[{"header": "x-iss", "claim": "iss"}]),
                rule(ISSUER_B, server_b, outputClaimToHeaders=[{"header": "x-iss", "claim": "iss"}]),
                servers=servers,
            ),
        ),
    ]
    return module_stack.envoy(*listeners, servers=servers)


@pytest.fixture(scope="module")
def token_a(key_a):
    return sign({}, claims(ISSUER_A, lifetime=600), key_a)


def query_of(seen: dict) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(seen["path"]).query, keep_blank_values=True)


def path_of(seen: dict) -> str:
    return urlsplit(seen["path"]).path


def cookie_names(seen: dict) -> list[str]:
    cookie = seen["headers"].get("cookie", "")
    return [part.split("=", 1)[0].strip() for part in cookie.split(";") if part.strip()]


# ----- default locations -----
def test_default_authorization_header_is_removed(envoy, token_a):
    seen = upstream_view(get(envoy.url("defaults"), "/p", token=token_a))
    assert "authorization" not in seen["headers"]


def test_default_access_token_param_is_removed_from_the_path(envoy, token_a):
    seen = upstream_view(get(envoy.url("defaults"), f"/p/q?a=1&access_token={token_a}&b=2"))
    assert path_of(seen) == "/p/q"
    assert query_of(seen) == [("a", "1"), ("b", "2")]


def test_default_access_token_as_only_param(envoy, token_a):
    seen = upstream_view(get(envoy.url("defaults"), f"/p?access_token={token_a}"))
    assert path_of(seen) == "/p"
    assert query_of(seen) == []


def test_default_locations_are_forwarded_when_asked(envoy, token_a):
    url = envoy.url("default_forward")
    seen = upstream_view(get(url, "/p", token=token_a))
    assert seen["headers"]["authorization"] == f"Bearer {token_a}"
    seen = upstream_view(get(url, f"/p?a=1&access_token={token_a}"))
    assert query_of(seen) == [("a", "1"), ("access_token", token_a)]


@pytest.mark.parametrize(
    "where",
    ["x-jwt header", "token param", "jwt cookie"],
)
def test_custom_locations_are_not_used_by_default(envoy, token_a, where):
    response = get_with_token_at(envoy.url("defaults"), where, token_a)
    assert_denied(response, 401, "Jwt is missing")


# ----- custom locations -----
def get_with_token_at(base_url: str, where: str, token: str):
    """GET with `token` at one of CUSTOM_LOCATIONS, among other data that must be kept."""
    if where == "x-jwt header":
        return get(base_url, "/c?keep=1", headers={"x-jwt": f"Token {token}"})
    if where == "token param":
        return get(base_url, f"/c?keep=1&token={token}&also=2")
    if where == "jwt cookie":
        return get(base_url, "/c?keep=1", headers={"Cookie": f"a=1; jwt={token}; b=2"})
    raise ValueError(where)


@pytest.mark.parametrize("where", ["x-jwt header", "token param", "jwt cookie"])
def test_custom_location_is_accepted_and_removed(envoy, token_a, where):
    seen = upstream_view(get_with_token_at(envoy.url("custom"), where, token_a))
    assert "x-jwt" not in seen["headers"]
    assert ("token", token_a) not in query_of(seen)
    assert "jwt" not in cookie_names(seen)
    assert token_a not in json.dumps(seen)
    # Everything around the token is kept.
    assert path_of(seen) == "/c"
    assert ("keep", "1") in query_of(seen)
    if where == "token param":
        assert query_of(seen) == [("keep", "1"), ("also", "2")]
    if where == "jwt cookie":
        assert cookie_names(seen) == ["a", "b"]


def test_cookie_holding_only_the_token_is_removed(envoy, token_a):
    seen = upstream_view(get(envoy.url("custom"), "/c", headers={"Cookie": f"jwt={token_a}"}))
    assert cookie_names(seen) == []


@pytest.mark.parametrize("where", ["x-jwt header", "token param", "jwt cookie"])
def test_custom_location_is_forwarded_when_asked(envoy, token_a, where):
    seen = upstream_view(get_with_token_at(envoy.url("forward"), where, token_a))
    assert token_a in json.dumps(seen)


def test_custom_header_needs_its_prefix(envoy, token_a):
    response = get(envoy.url("custom"), "/c", headers={"x-jwt": f"Bearer {token_a}"})
    assert_denied(response, 401, "Jwt is missing")


@pytest.mark.parametrize("where", ["authorization", "access_token"])
def test_default_locations_are_not_used_when_custom_ones_are_set(envoy, token_a, where):
    if where == "authorization":
        response = get(envoy.url("custom"), "/c", token=token_a)
    else:
        response = get(envoy.url("custom"), f"/c?access_token={token_a}")
    assert_denied(response, 401, "Jwt is missing")


# ----- output headers -----
def full_claims_token(key_a, **extra):
    payload = claims(
        ISSUER_A, email="alice@example.test", org={"team": "blue", "size": 3}, level=7, admin=True, **extra
    )
    return sign({}, payload, key_a), payload


def test_payload_header_is_the_token_payload_segment(envoy, key_a):
    token, payload = full_claims_token(key_a)
    seen = upstream_view(get(envoy.url("defaults"), "/", token=token))
    header = seen["headers"]["x-jwt-payload"]
    assert header == token.split(".")[1]
    assert "=" not in header
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))) == payload


def test_claims_are_copied_to_headers(envoy, key_a):
    token, _ = full_claims_token(key_a)
    seen = upstream_view(get(envoy.url("defaults"), "/", token=token))
    headers = seen["headers"]
    assert headers["x-sub"] == "alice"
    assert headers["x-email"] == "alice@example.test"
    assert headers["x-team"] == "blue"  # nested claim "org.team"
    assert headers["x-level"] == "7"
    assert headers["x-admin"] == "true"


def test_client_copies_of_output_headers_are_replaced(envoy, key_a):
    token, _ = full_claims_token(key_a)
    spoofed = {"x-sub": "evil", "x-email": "evil@example.test", "x-jwt-payload": "e30", "x-level": "99"}
    seen = upstream_view(get(envoy.url("defaults"), "/", token=token, headers=spoofed))
    headers = seen["headers"]
    assert headers["x-sub"] == "alice"
    assert headers["x-email"] == "alice@example.test"
    assert headers["x-level"] == "7"
    assert headers["x-jwt-payload"] == token.split(".")[1]


def test_header_of_an_absent_claim_is_removed(envoy, key_a):
    # The token has no email, team, level or admin: their headers must not
    # reach the upstream even though the client sent them.
    token = sign({}, claims(ISSUER_A), key_a)
    spoofed = {"x-email": "evil@example.test", "x-team": "red", "x-level": "99", "x-admin": "true"}
    seen = upstream_view(get(envoy.url("defaults"), "/", token=token, headers=spoofed))
    for name in spoofed:
        assert name not in seen["headers"]
    assert seen["headers"]["x-sub"] == "alice"


def test_non_scalar_claim_gives_no_header(envoy, key_a):
    # "org.team" resolves to an object here: not a string, number or bool.
    token = sign({}, claims(ISSUER_A, org={"team": {"name": "blue"}}), key_a)
    seen = upstream_view(get(envoy.url("defaults"), "/", token=token, headers={"x-team": "red"}))
    assert "x-team" not in seen["headers"]


# ----- several issuers -----
def test_each_issuer_verifies_with_its_own_keys(envoy, key_a, key_b):
    url = envoy.url("two_issuers")
    seen_a = upstream_view(get(url, "/", token=sign({}, claims(ISSUER_A), key_a)))
    seen_b = upstream_view(get(url, "/", token=sign({}, claims(ISSUER_B), key_b)))
    assert seen_a["headers"]["x-iss"] == ISSUER_A
    assert seen_b["headers"]["x-iss"] == ISSUER_B


def test_issuer_cannot_use_another_issuers_key(envoy, key_a, key_b):
    url = envoy.url("two_issuers")
    # key_b is in issuer B's JWKS only: a token claiming issuer A must not verify with it.
    response = get(url, "/", token=sign({}, claims(ISSUER_A), key_b))
    assert response.status_code == 401
    assert response.text in ("Jwks doesn't have key to match kid or alg from Jwt", "Jwt verification fails")
