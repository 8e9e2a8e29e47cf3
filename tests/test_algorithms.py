"""Each supported algorithm verifies; hostile algorithms and shapes are rejected.

Three listeners share one Envoy: JWKS keys with alg and kid, keys without
`alg`, and keys without `kid` (tokens then carry no kid either, so the filter
must pick a key by its type alone).
"""

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.client import assert_denied, assert_rejected_token, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import (
    ALL_ALGS,
    as_jwe_shape,
    b64url,
    b64url_decode,
    cached_key,
    claims,
    generate_key,
    hmac_token,
    raw_token,
    sign,
    unsigned_token,
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
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(envoy, keys, alg):
    token = unsigned_token(valid_claims(), alg=alg)
    assert_rejected_token(get(envoy.url("full"), "/", token=token))


def test_alg_none_with_a_known_kid_is_rejected(envoy, keys):
    token = raw_token({"alg": "none", "kid": keys["RS256"].kid}, valid_claims())
    assert_rejected_token(get(envoy.url("full"), "/", token=token))


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


def test_unknown_crit_header_is_rejected(envoy, keys):
    token = sign({"crit": ["x-must-understand"], "x-must-understand": True}, valid_claims(), keys["ES256"])
    assert_rejected_token(get(envoy.url("full"), "/", token=token))


def test_token_signed_with_another_alg_than_its_header_is_rejected(envoy, keys):
    # Header says RS384, signature is RS256 over the same input.
    good = sign({}, valid_claims(), keys["RS256"])
    head, body, sig = good.split(".")
    relabelled = raw_token({"alg": "RS384", "typ": "JWT", "kid": keys["RS256"].kid}, body, b64url_decode(sig))
    assert_rejected_token(get(envoy.url("full"), "/", token=relabelled))


def test_ecdsa_signature_in_der_form_is_rejected(envoy, keys):
    """JWS wants R||S; a DER-encoded ECDSA signature must not be accepted."""
    key = keys["ES256"]
    good = sign({}, valid_claims(), key)
    signing_input = good.rsplit(".", 1)[0]
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    assert_rejected_token(get(envoy.url("full"), "/", token=f"{signing_input}.{b64url(der)}"))


# ----- hostile shapes -----
def test_jwe_shaped_token_is_rejected(envoy, keys):
    token = as_jwe_shape(sign({}, valid_claims(), keys["RS256"]))
    assert_denied(get(envoy.url("full"), "/", token=token), 401, "Jwt verification fails")


@pytest.mark.parametrize("extra", [".", ".e30", ".e30.e30"], ids=["empty-4th", "4-segments", "5-segments-plain"])
def test_extra_segments_are_rejected(envoy, keys, extra):
    token = sign({}, valid_claims(), keys["RS256"]) + extra
    assert_denied(get(envoy.url("full"), "/", token=token), 401, "Jwt verification fails")


def restandardized(segment: str) -> str | None:
    """The segment in the standard base64 alphabet with padding, if that differs."""
    standard = base64.b64encode(b64url_decode(segment)).decode()
    return standard if any(c in standard for c in "+/") else None


def token_with_standard_base64(key, segment: int) -> str:
    """A valid token with one segment re-encoded in standard base64 ('+', '/')."""
    # '?' and '>' (0x3F, 0x3E) give the 6-bit groups 62 and 63 ('+', '/') at
    # most alignments; the nonce shifts the alignment until one does.
    for nonce in range(200):
        filler = {"q": "?>?>??>>???>>>", "n": "x" * (nonce % 3)}
        parts = sign(filler, valid_claims() | filler, key).split(".")
        standard = restandardized(parts[segment])
        if standard is not None:
            parts[segment] = standard
            return ".".join(parts)
    raise AssertionError("no nonce gave a '+' or '/' in standard base64")


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
def test_standard_base64_alphabet_is_rejected(envoy, keys, segment):
    token = token_with_standard_base64(keys["RS256"], segment)
    assert_denied(get(envoy.url("full"), "/", token=token), 401, "Jwt verification fails")


def test_invalid_base64url_character_is_rejected(envoy, keys):
    head, body, sig = sign({}, valid_claims(), keys["RS256"]).split(".")
    broken = f"{head}.{body[:10]}!{body[11:]}.{sig}"
    assert_denied(get(envoy.url("full"), "/", token=broken), 401, "Jwt verification fails")
