"""Each supported algorithm verifies; hostile algorithms and shapes are rejected.

Three listeners share one Envoy: JWKS keys with alg and kid, keys without
`alg`, and keys without `kid` (tokens then carry no kid either, so the filter
must pick a key by its type alone).
"""

import pytest
from cryptography.hazmat.primitives import serialization

from harness.client import assert_rejected_token, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import (
    ALL_ALGS,
    b64url_decode,
    cached_key,
    claims,
    generate_key,
    hmac_token,
    raw_token,
    sign,
)

ISSUER = "https://issuer-alg.test"


@pytest.fixture(scope="module")
def keys():
    """One key per algorithm, plus a 3072-bit RSA key."""
    by_alg = {alg: cached_key(alg, "alg") for alg in ALL_ALGS}
    by_alg["RS256-3072"] = generate_key("RS256", kid="rs256-3072", rsa_bits=3072)
    return by_alg


def kidless_keys():
    """One key per key type, without kid: RSA, P-256, P-384, Ed25519."""
    return {
        "RSA": cached_key("RS256", "nokid").with_kid(None),
        "P-256": cached_key("ES256", "nokid").with_kid(None),
        "P-384": cached_key("ES384", "nokid").with_kid(None),
        "Ed25519": cached_key("EdDSA", "nokid").with_kid(None),
    }


def kidless_key_for(alg: str):
    key_type = {"ES256": "P-256", "ES384": "P-384", "EdDSA": "Ed25519"}.get(alg, "RSA")
    # One RSA key signs for every RS* and PS* alg.
    return kidless_keys()[key_type].as_alg(alg)


@pytest.fixture(scope="module")
def envoy(module_stack, keys):
    full = module_stack.jwks_server({"keys": [k.jwk() for k in keys.values()]})
    no_alg = module_stack.jwks_server({"keys": [k.jwk(include_alg=False) for k in keys.values()]})
    no_kid = module_stack.jwks_server({"keys": [k.jwk(include_alg=False) for k in kidless_keys().values()]})
    listeners = [
        Listener(name, plugin_config(rule(ISSUER, server), servers=(server,)))
        for name, server in (("full", full), ("no_alg", no_alg), ("no_kid", no_kid))
    ]
    return module_stack.envoy(*listeners, servers=(full, no_alg, no_kid))


def valid_claims():
    return claims(ISSUER)


@pytest.mark.parametrize("alg", list(ALL_ALGS) + ["RS256-3072"])
def test_algorithm_verifies(envoy, keys, alg):
    token = sign({}, valid_claims(), keys[alg])
    upstream_view(get(envoy.url("full"), "/", token=token))


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_jwks_key_without_alg(envoy, keys, alg):
    token = sign({}, valid_claims(), keys[alg])
    upstream_view(get(envoy.url("no_alg"), "/", token=token))


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_token_without_kid_uses_a_key_of_its_type(envoy, alg):
    token = sign({}, valid_claims(), kidless_key_for(alg))
    upstream_view(get(envoy.url("no_kid"), "/", token=token))


@pytest.mark.parametrize("alg", ["RS256", "ES384", "EdDSA"])
def test_jwks_key_without_alg_still_checks_the_signature(envoy, keys, alg):
    impostor = generate_key(alg, kid=keys[alg].kid)
    assert_rejected_token(get(envoy.url("no_alg"), "/", token=sign({}, valid_claims(), impostor)))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_token_without_kid_signed_by_an_unknown_key(envoy, alg):
    stranger = generate_key(alg, kid=None)
    assert_rejected_token(get(envoy.url("no_kid"), "/", token=sign({}, valid_claims(), stranger)))


# ----- hostile algorithms -----
def rsa_public_key_encodings(key) -> dict[str, bytes]:
    public = key.private_key.public_key()
    return {
        "pem": key.public_pem(),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "pkcs1-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "jwk-n": b64url_decode(key.jwk()["n"]),
    }


@pytest.mark.parametrize("encoding", ["pem", "der", "pkcs1-pem", "jwk-n"])
@pytest.mark.parametrize("listener", ["full", "no_alg"])
def test_hs256_signed_with_the_public_key_is_rejected(envoy, keys, encoding, listener):
    """Key confusion: an HMAC 'signed' with the RSA public key must not verify."""
    secret = rsa_public_key_encodings(keys["RS256"])[encoding]
    token = hmac_token(valid_claims(), secret, kid=keys["RS256"].kid)
    assert_rejected_token(get(envoy.url(listener), "/", token=token))


def test_hs256_without_kid_is_rejected(envoy, keys):
    token = hmac_token(valid_claims(), keys["RS256"].public_pem())
    assert_rejected_token(get(envoy.url("no_kid"), "/", token=token))


def test_token_signed_with_another_alg_than_its_header_is_rejected(envoy, keys):
    # Header says RS384, signature is RS256 over the same input.
    good = sign({}, valid_claims(), keys["RS256"])
    head, body, sig = good.split(".")
    relabelled = raw_token({"alg": "RS384", "typ": "JWT", "kid": keys["RS256"].kid}, body, b64url_decode(sig))
    assert_rejected_token(get(envoy.url("full"), "/", token=relabelled))


# alg none, crit, b64, DER and out-of-range ECDSA signatures, JWE and the other
# hostile shapes, with jwt_authn's texts, are in test_hostile_tokens.py.
