"""Every deny response of the contract table: status, exact body, WWW-Authenticate."""

import time

import pytest

from harness.client import assert_denied, assert_rejected_token, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.ports import free_port
from harness.tokens import cached_key, claims, flip_signature_bit, generate_key, sign, tamper_payload

ISSUER = "https://issuer-a.test"
AUDIENCE = "api-a"
SKEW = 60


@pytest.fixture(scope="module")
def key():
    return cached_key("RS256", "responses")


@pytest.fixture(scope="module")
def envoy(module_stack, key):
    server = module_stack.jwks_server({"keys": [key.jwk()]})
    # A JWKS server that is never started: its fetches always fail.
    dead_port = free_port()
    dead_authority = f"127.0.0.1:{dead_port}"
    listeners = [
        Listener(
            "main",
            plugin_config(
                rule(ISSUER, server, audiences=[AUDIENCE]),
                servers=(server,),
                clockSkewSeconds=SKEW,
                maxTokenBytes=2048,
            ),
        ),
        Listener(
            "no_keys",
            {
                "jwtRules": [rule(ISSUER, jwksUri=f"http://{dead_authority}/jwks.json", timeout="1s")],
                "clusters": {dead_authority: "dead_jwks"},
            },
        ),
    ]
    return module_stack.envoy(*listeners, servers=(server,), clusters={"dead_jwks": dead_port})


@pytest.fixture(scope="module")
def main_url(envoy):
    return envoy.url("main")


def token(key, **claim_changes):
    """A token for the main listener: right issuer and audience unless changed (None drops a claim)."""
    return sign({}, claims(ISSUER, **({"aud": AUDIENCE} | claim_changes)), key)


def test_valid_token_reaches_upstream(main_url, key):
    seen = upstream_view(get(main_url, "/resource?x=1", token=token(key)))
    assert seen["path"] == "/resource?x=1"


def test_missing_token(main_url):
    response = get(main_url, "/some/path?q=secret")
    assert_denied(response, 401, "Jwt is missing")
    # The realm has the path without its query.
    assert response.headers["www-authenticate"] == f'Bearer realm="{main_url}/some/path"'


def test_authorization_without_bearer_prefix_is_a_missing_token(main_url, key):
    response = get(main_url, "/", headers={"Authorization": "Basic " + token(key)})
    assert_denied(response, 401, "Jwt is missing")


# Malformed tokens (segments, base64url, JSON, claim types) and their jwt_verify_lib
# texts are in test_hostile_tokens.py.


def test_bad_signature(main_url, key):
    assert_denied(get(main_url, "/", token=flip_signature_bit(token(key))), 401, "Jwt verification fails")


def test_payload_changed_after_signing(main_url, key):
    forged = tamper_payload(token(key), sub="mallory")
    assert_denied(get(main_url, "/", token=forged), 401, "Jwt verification fails")


def test_signed_by_unknown_key_with_known_kid(main_url, key):
    impostor = generate_key("RS256", kid=key.kid)
    assert_denied(get(main_url, "/", token=token(impostor)), 401, "Jwt verification fails")


def test_expired(main_url, key):
    now = int(time.time())
    expired = token(key, iat=now - 1000, exp=now - SKEW - 30)
    assert_denied(get(main_url, "/expired", token=expired), 401, "Jwt is expired")


def test_expired_within_clock_skew_is_accepted(main_url, key):
    now = int(time.time())
    upstream_view(get(main_url, "/", token=token(key, iat=now - 1000, exp=now - SKEW + 30)))


def test_not_yet_valid(main_url, key):
    now = int(time.time())
    assert_denied(get(main_url, "/", token=token(key, nbf=now + SKEW + 30)), 401, "Jwt not yet valid")


def test_not_yet_valid_within_clock_skew_is_accepted(main_url, key):
    now = int(time.time())
    upstream_view(get(main_url, "/", token=token(key, nbf=now + SKEW - 30)))


def test_issuer_not_configured(main_url, key):
    stranger = sign({}, claims("https://other-issuer.test", aud=AUDIENCE), key)
    assert_denied(get(main_url, "/", token=stranger), 401, "Jwt issuer is not configured")


def test_no_key_matches_kid(main_url, key):
    unknown = generate_key("RS256", kid="kid-nobody-has")
    assert_denied(get(main_url, "/", token=token(unknown)), 401, "Jwks doesn't have key to match kid or alg from Jwt")


def test_no_key_matches_alg_without_kid(main_url):
    # The JWKS holds only an RSA key: nothing can verify ES256.
    es_key = generate_key("ES256", kid=None)
    assert_denied(get(main_url, "/", token=token(es_key)), 401, "Jwks doesn't have key to match kid or alg from Jwt")


@pytest.mark.parametrize("aud", ["api-b", ["api-b", "api-c"]], ids=["string", "list"])
def test_audience_not_allowed(main_url, key, aud):
    assert_denied(get(main_url, "/", token=token(key, aud=aud)), 403, "Audiences in Jwt are not allowed")


def test_token_without_aud_is_not_allowed_when_audiences_are_configured(main_url, key):
    # jwt_authn's rule: configured audiences require one of them in the token.
    assert_denied(get(main_url, "/", token=token(key, aud=None)), 403, "Audiences in Jwt are not allowed")


def test_audience_list_containing_an_allowed_one(main_url, key):
    upstream_view(get(main_url, "/", token=token(key, aud=["other", AUDIENCE])))


def test_token_larger_than_max_token_bytes(main_url, key):
    oversized = token(key, padding="x" * 3000)
    assert_rejected_token(get(main_url, "/", token=oversized))


def test_no_key_set_could_be_fetched(envoy, key):
    started = time.monotonic()
    response = get(envoy.url("no_keys"), "/wait?x=1", token=token(key))
    elapsed = time.monotonic() - started
    assert_denied(response, 401, "Jwks remote fetch is failed")
    # Bounded by the rule's 1s timeout (plus scheduling slack on 2 cores).
    assert elapsed < 4.0
