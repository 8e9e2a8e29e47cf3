"""The harness checks itself: minted tokens verify with keys rebuilt from their
JWK, and the local servers behave as the other tests assume. No Envoy here,
so a failure in this file is a harness bug, not a filter bug."""

import http.client
import json

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from harness import ports
from harness.jwks_server import DISCOVERY_PATH, DOWN, ERROR_500, GARBAGE, JWKS_PATH, NORMAL, JwksServer
from harness.tokens import ALL_ALGS, b64url_decode, cached_key, claims, flip_signature_bit, sign

HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def public_key_from_jwk(jwk: dict):
    def number(field):
        return int.from_bytes(b64url_decode(jwk[field]), "big")

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    if jwk["kty"] == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
        return ec.EllipticCurvePublicNumbers(number("x"), number("y"), curve).public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


def verify(token: str, jwk: dict) -> None:
    """Independent JWS verification from the JWK; raises InvalidSignature."""
    head, body, sig = token.split(".")
    alg = json.loads(b64url_decode(head))["alg"]
    data, signature = f"{head}.{body}".encode(), b64url_decode(sig)
    public = public_key_from_jwk(jwk)
    if alg.startswith("RS"):
        public.verify(signature, data, padding.PKCS1v15(), HASHES[alg[2:]])
    elif alg.startswith("PS"):
        digest = HASHES[alg[2:]]
        public.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
    elif alg.startswith("ES"):
        half = len(signature) // 2
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        public.verify(der, data, ec.ECDSA(HASHES[alg[2:]]))
    else:
        public.verify(signature, data)


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_minted_token_verifies_with_its_jwk(alg):
    key = cached_key(alg, "selfcheck")
    token = sign({}, claims("https://x.test"), key)
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": alg, "typ": "JWT", "kid": key.kid}
    verify(token, key.jwk(include_alg=False, include_kid=False))
    with pytest.raises(InvalidSignature):
        verify(flip_signature_bit(token), key.jwk())


def test_jwks_server_modes_and_counts():
    with JwksServer({"keys": []}) as server:
        assert requests.get(server.jwks_uri, timeout=5).json() == {"keys": []}
        discovery = requests.get(server.base_url + DISCOVERY_PATH, timeout=5).json()
        assert discovery == {"issuer": server.base_url, "jwks_uri": server.jwks_uri}
        server.set_mode(ERROR_500)
        assert requests.get(server.jwks_uri, timeout=5).status_code == 500
        server.set_mode(GARBAGE)
        with pytest.raises(ValueError):
            requests.get(server.jwks_uri, timeout=5).json()
        server.set_mode(DOWN)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.jwks_uri, timeout=5)
        server.set_mode(NORMAL)
        server.set_jwks({"keys": [{"kty": "OKP"}]})
        assert requests.get(server.jwks_uri, timeout=5).json() == {"keys": [{"kty": "OKP"}]}
        assert server.count(JWKS_PATH) == 4
        assert server.count(DISCOVERY_PATH) == 1


def test_echo_server_keeps_repeated_headers(echo_server):
    connection = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=5)
    try:
        connection.putrequest("GET", "/a?b=1")
        connection.putheader("X-Rep", "1")
        connection.putheader("X-Rep", "2")
        connection.putheader("X-One", "v")
        connection.endheaders()
        seen = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert seen["path"] == "/a?b=1"
    assert seen["headers"]["x-rep"] == ["1", "2"]
    assert seen["headers"]["x-one"] == "v"


def test_free_ports_stay_out_of_the_ephemeral_range_and_never_repeat():
    """A server's port, picked before the server binds it, must not be one an
    outgoing connection can take meanwhile (a CI run once failed with Envoy's
    listener on a port from the ephemeral range: "Address already in use")."""
    low = ports.ephemeral_low()
    handed = [ports.free_port() for _ in range(300)]
    assert len(set(handed)) == len(handed)
    assert all(1024 <= port < low or port > 60999 for port in handed), handed[:10]
