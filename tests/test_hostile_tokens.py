"""Hostile tokens through a real Envoy: each is denied with jwt_authn's status
and text, never reaches the upstream, and never hurts the Wasm VM.

One Envoy serves the whole module. Its `filter` listener runs our module; its
`jwt_authn` listener runs Envoy's own jwt_authn filter with the same issuer,
audience, key set and token locations, so every expected answer is checked
against the reference implementation too: where we deliberately differ (we are
stricter), the case says what jwt_authn answers instead.
"""

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.client import assert_denied, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import (
    as_jwe_shape,
    b64url,
    b64url_decode,
    cached_key,
    claims,
    hmac_token,
    signature_over,
    unsigned_token,
)

ISSUER = "https://hostile.test"
AUDIENCE = "api-hostile"
# jwt_authn's default locations, plus a cookie, spelled out for both filters.
LOCATIONS = {
    "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
    "fromParams": ["access_token"],
    "fromCookies": ["jwt"],
}
BIG_TOKEN_LIMIT = 1024 * 1024  # the `big` listener's maxTokenBytes (the config's maximum)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

VERIFICATION_FAILS = "Jwt verification fails"
BAD_FORMAT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
NO_MATCHING_KEY = "Jwks doesn't have key to match kid or alg from Jwt"
ALG_NOT_SUPPORTED = "Jwt header [alg] is not supported"
BAD_KID = "Jwt header [kid] field is not a string"
HEADER_BAD_JSON = "Jwt header is an invalid JSON"
PAYLOAD_BAD_JSON = "Jwt payload is an invalid JSON"
PAYLOAD_BAD_BASE64 = "Jwt payload is an invalid Base64url encoded"
SEGMENTS = ("header", "payload", "signature")
# The `filter` listener verifies RS*/ES* as the probe chooses (the host on Envoy
# 1.40); these two pin `signatureVerification`, so every case is also answered by
# each of Envoy's BoringSSL and the module's own crypto alone.
FILTERS = ("filter", "filter_host", "filter_module")


def bad_base64(segment: str) -> str:
    return f"Jwt {segment} is an invalid Base64url encoded"


def not_integer(claim: str) -> str:
    return f"Jwt payload [{claim}] field is not an integer"


def out_of_range(claim: str) -> str:
    return f"Jwt payload [{claim}] field is not a positive 64 bit integer"


# ----- keys -----
@dataclass(frozen=True)
class Keys:
    """The issuer's keys (all in its JWKS) and an attacker's keys (in none)."""

    rsa: object = field(default_factory=lambda: cached_key("RS256", "hostile"))
    p256: object = field(default_factory=lambda: cached_key("ES256", "hostile"))
    p384: object = field(default_factory=lambda: cached_key("ES384", "hostile"))
    ed25519: object = field(default_factory=lambda: cached_key("EdDSA", "hostile"))
    attacker_rsa: object = field(default_factory=lambda: cached_key("RS256", "attacker"))

    def jwks(self) -> dict:
        return {"keys": [k.jwk() for k in (self.rsa, self.p256, self.p384, self.ed25519)]}


KEYS = Keys()


# ----- token building, byte by byte -----
def valid_claims(**changes) -> dict:
    """Claims the filter accepts (None drops one)."""
    return claims(ISSUER, **({"aud": AUDIENCE} | changes))


def header_for(key, **changes) -> dict:
    header = {"alg": key.alg, "typ": "JWT", "kid": key.kid} | changes
    return {k: v for k, v in header.items() if v is not None}


def json_bytes(value) -> bytes:
    """JSON text for a dict/list/str value; bytes are taken as already-written JSON."""
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def signed(header, payload, key, encode: Callable[[bytes], str] = b64url) -> str:
    """A token whose signature by `key` is valid over exactly the segments sent,
    so that only the hostile structure can be the reason for a denial."""
    head, body = encode(json_bytes(header)), encode(json_bytes(payload))
    signing_input = f"{head}.{body}"
    alg = header.get("alg", key.alg) if isinstance(header, dict) else key.alg
    return f"{signing_input}.{encode(signature_over(signing_input.encode(), key, alg))}"


def good(key=None, **claim_changes) -> str:
    key = key or KEYS.rsa
    return signed(header_for(key), valid_claims(**claim_changes), key)


def with_signature(token: str, signature: bytes) -> str:
    return f"{token.rsplit('.', 1)[0]}.{b64url(signature)}"


def signing_input_of(token: str) -> bytes:
    return token.rsplit(".", 1)[0].encode()


def signature_of(token: str) -> bytes:
    return b64url_decode(token.rsplit(".", 1)[1])


def padded_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def segment_with_padding(value) -> str:
    """base64url of the JSON, grown by a space until its encoding needs '=' padding."""
    raw = json_bytes(value)
    while len(raw) % 3 == 0:
        raw += b" "
    return padded_b64url(raw)


def p1363(r: int, s: int, size: int = 32) -> bytes:
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def ecdsa_signed_as(r_s: Callable[[bytes], bytes], key=None) -> str:
    """An ES256 token whose signature is `r_s(valid P1363 signature)`."""
    token = good(key or KEYS.p256)
    return with_signature(token, r_s(signature_of(token)))


def public_key_encodings(key) -> dict[str, bytes]:
    """The public key in every form an attacker might feed an HMAC."""
    public = key.private_key.public_key()
    return {
        "pem": key.public_pem(),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(key.jwk()).encode(),
    }


def key_confusion(key, encoding: str) -> str:
    return hmac_token(valid_claims(), public_key_encodings(key)[encoding], kid=key.kid)


def attacker_signed(**header_changes) -> str:
    """Signed by a key the issuer never published, under the issuer's RSA kid."""
    attacker = KEYS.attacker_rsa
    return signed(header_for(attacker, kid=KEYS.rsa.kid) | header_changes, valid_claims(), attacker)


def with_kid(kid) -> str:
    return signed(header_for(KEYS.rsa, kid=kid), valid_claims(), KEYS.rsa)


def with_claims_json(payload_json: bytes, key=None) -> str:
    key = key or KEYS.rsa
    return signed(header_for(key), payload_json, key)


def claims_json_with(**raw_values: str) -> bytes:
    """Valid claims with some values replaced by raw JSON text (1e400, 18446744073709551616)."""
    payload = valid_claims()
    for name in raw_values:
        payload[name] = f"@{name}@"
    text = json.dumps(payload, separators=(",", ":"))
    for name, raw in raw_values.items():
        text = text.replace(f'"@{name}@"', raw)
    return text.encode()


def restandardized_token(segment: int) -> str:
    """A validly signed token with one segment re-encoded in standard base64 ('+', '/')."""
    # '?' and '>' (0x3F, 0x3E) give the 6-bit groups 62 and 63 at most alignments;
    # the nonce shifts the alignment (and the signature) until one does.
    for nonce in range(200):
        filler = "?>?>??>>???>>>" + "x" * (nonce % 3)
        header = header_for(KEYS.rsa, q=filler)
        parts = signed(header, valid_claims(q=filler, n=nonce), KEYS.rsa).split(".")
        standard = base64.b64encode(b64url_decode(parts[segment])).decode().rstrip("=")
        if "+" in standard or "/" in standard:
            parts[segment] = standard
            return ".".join(parts)
    raise AssertionError("no nonce gave a '+' or '/'")


def huge_token(size: int) -> str:
    """A validly signed token of about `size` characters."""
    return good(padding="x" * (size * 3 // 4))


# ----- requests -----
@dataclass(frozen=True)
class Request:
    """Where the token(s) go: a query string and headers; the path is the case's own."""

    query: str = ""
    headers: dict = field(default_factory=dict)


def bearer(token: str) -> Request:
    return Request(headers={"Authorization": f"Bearer {token}"})


def in_query(token: str) -> Request:
    return Request(query=f"access_token={token}")


def everywhere(header_token: str, param_token: str, cookie_token: str) -> Request:
    return Request(
        query=f"access_token={param_token}",
        headers={"Authorization": f"Bearer {header_token}", "Cookie": f"jwt={cookie_token}"},
    )


def send(base_url: str, path: str, request: Request) -> requests.Response:
    query = f"?{request.query}" if request.query else ""
    return get(base_url, path + query, headers=request.headers)


# ----- the table -----
ACCEPTED = (200, "")  # jwt_authn lets it through (we are stricter)
TOO_LARGE = "Request Header Fields Too Large"  # Envoy's own 431, before any filter


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], Request]
    body: str
    status: int = 401
    # jwt_authn's (status, body) where it differs from ours; None: the same.
    envoy: tuple[int, str] | None = None


def case(case_id, make, body, status=401, envoy=None) -> Case:
    return Case(case_id, make, body, status, envoy)


def rs256_with_header(**changes) -> str:
    """Validly signed by the issuer's RSA key, with header fields added or changed."""
    return signed(header_for(KEYS.rsa, **changes), valid_claims(), KEYS.rsa)


def rs256_with_raw_header(header_json: bytes) -> str:
    """Validly signed by the issuer's RSA key over a header written byte by byte."""
    return signed(header_json, valid_claims(), KEYS.rsa)


def resized_signature(key, change: Callable[[bytes], bytes]) -> str:
    """A token by `key` whose valid signature is `change`d (cut, grown)."""
    token = good(key)
    return with_signature(token, change(signature_of(token)))


def relabelled(token: str, **header_changes) -> str:
    """The token with header fields changed but its payload and signature kept."""
    head, body, sig = token.split(".")
    header = json.loads(b64url_decode(head)) | header_changes
    return f"{b64url(json_bytes(header))}.{body}.{sig}"


def der_ecdsa_token() -> str:
    """ES256 signed correctly but with the signature DER-encoded, not R || S."""
    token = good(KEYS.p256)
    der = KEYS.p256.private_key.sign(signing_input_of(token), ec.ECDSA(hashes.SHA256()))
    return with_signature(token, der)


def padded_token(segment: int) -> str:
    """A validly signed token whose segment `segment` carries '=' padding."""
    header, payload = header_for(KEYS.rsa), valid_claims()
    head = segment_with_padding(header) if segment == 0 else b64url(json_bytes(header))
    body = segment_with_padding(payload) if segment == 1 else b64url(json_bytes(payload))
    signature = signature_over(f"{head}.{body}".encode(), KEYS.rsa)
    sig = padded_b64url(signature) if segment == 2 else b64url(signature)
    if segment == 2 and "=" not in sig:
        sig += "=="  # 256 bytes encode with one '='; make sure there is padding
    return f"{head}.{body}.{sig}"


def bad_character_token() -> str:
    head, body, sig = good().split(".")
    return f"{head}.{body[:10]}!{body[11:]}.{sig}"


def attacker_jwk_header() -> dict:
    return KEYS.attacker_rsa.jwk() | {"kid": KEYS.rsa.kid}


def five_valid_tokens() -> Request:
    """More tokens than the filter examines (MAX_TOKENS = 4), all valid."""
    token = good()
    return Request(
        query=f"access_token={token}&access_token={token}",
        headers={"Authorization": f"Bearer {token}", "Cookie": f"jwt={token}; jwt={token}"},
    )


def same_token_twice(where: str) -> Request:
    token = good()
    if where == "cookie":
        return Request(headers={"Cookie": f"jwt={token}; jwt={token}"})
    return Request(query=f"access_token={token}", headers={"Authorization": f"Bearer {token}"})


# Each maker returns the Request to send; ids read as the attack.
CASES = [
    # ----- alg none, any spelling -----
    *(case(f"alg-{alg}", lambda alg=alg: bearer(unsigned_token(valid_claims(), alg=alg)), BAD_FORMAT)
      for alg in ("none", "None", "NONE")),
    case("alg-none-keeping-a-real-signature", lambda: bearer(relabelled(good(), alg="none")), ALG_NOT_SUPPORTED),
    # ----- key confusion: HS256 keyed with the public key's bytes -----
    *(case(f"hs256-keyed-with-{name}-{encoding}",
           lambda key=key, encoding=encoding: bearer(key_confusion(key, encoding)), NO_MATCHING_KEY)
      for name, key in (("rsa", KEYS.rsa), ("p256", KEYS.p256))
      for encoding in ("pem", "der", "jwk-json")),
    # ----- ECDSA out-of-range signatures (CVE-2022-21449 and friends) -----
    case("es256-r0-s0", lambda: bearer(ecdsa_signed_as(lambda sig: p1363(0, 0))), VERIFICATION_FAILS),
    case("es256-r=n-s=n", lambda: bearer(ecdsa_signed_as(lambda sig: p1363(P256_ORDER, P256_ORDER))), VERIFICATION_FAILS),
    case("es256-r=n-s=1", lambda: bearer(ecdsa_signed_as(lambda sig: p1363(P256_ORDER, 1))), VERIFICATION_FAILS),
    case("es256-r0-s-valid", lambda: bearer(ecdsa_signed_as(lambda sig: bytes(32) + sig[32:])), VERIFICATION_FAILS),
    case("es256-all-ff", lambda: bearer(ecdsa_signed_as(lambda sig: b"\xff" * 64)), VERIFICATION_FAILS),
    case("es384-r0-s0", lambda: bearer(with_signature(good(KEYS.p384), bytes(96))), VERIFICATION_FAILS),
    # ----- signatures of the wrong length or encoding -----
    case("es256-der-encoded", lambda: bearer(der_ecdsa_token()), VERIFICATION_FAILS),
    case("es256-63-bytes", lambda: bearer(ecdsa_signed_as(lambda sig: sig[:63])), VERIFICATION_FAILS),
    case("es256-65-bytes", lambda: bearer(ecdsa_signed_as(lambda sig: sig + b"\x00")), VERIFICATION_FAILS, envoy=ACCEPTED),
    case("rs256-one-byte-short", lambda: bearer(resized_signature(KEYS.rsa, lambda sig: sig[:-1])), VERIFICATION_FAILS),
    case("rs256-one-byte-long", lambda: bearer(resized_signature(KEYS.rsa, lambda sig: sig + b"\x00")), VERIFICATION_FAILS),
    case("eddsa-63-bytes", lambda: bearer(resized_signature(KEYS.ed25519, lambda sig: sig[:63])),
         "Jwt ED25519 signature is wrong length"),
    case("es256-empty-signature", lambda: bearer(with_signature(good(KEYS.p256), b"")), BAD_FORMAT),
    # ----- kid -----
    case("kid-empty", lambda: bearer(with_kid("")), NO_MATCHING_KEY, envoy=ACCEPTED),
    case("kid-path-like", lambda: bearer(with_kid("../../etc/passwd")), NO_MATCHING_KEY),
    case("kid-10kb", lambda: bearer(with_kid("k" * 10_000)), NO_MATCHING_KEY),
    case("kid-number", lambda: bearer(with_kid(7)), BAD_KID),
    case("kid-null", lambda: bearer(rs256_with_raw_header(b'{"alg":"RS256","kid":null}')), BAD_KID),
    # ----- keys offered by the token itself: ignored -----
    case("jwk-embedded-attacker-key", lambda: bearer(attacker_signed(jwk=attacker_jwk_header())), VERIFICATION_FAILS),
    case("jwk-embedded-attacker-key-no-kid",
         lambda: bearer(signed({"alg": "RS256", "jwk": attacker_jwk_header()}, valid_claims(), KEYS.attacker_rsa)),
         VERIFICATION_FAILS),
    case("jku-to-attacker", lambda: bearer(attacker_signed(jku="https://attacker.test/jwks.json")), VERIFICATION_FAILS),
    case("x5u-to-attacker", lambda: bearer(attacker_signed(x5u="https://attacker.test/cert.pem")), VERIFICATION_FAILS),
    # ----- JWS extensions and JWE -----
    case("crit-unknown", lambda: bearer(rs256_with_header(crit=["x-must"], **{"x-must": 1})),
         VERIFICATION_FAILS, envoy=ACCEPTED),
    case("b64-false", lambda: bearer(rs256_with_header(b64=False, crit=["b64"])), VERIFICATION_FAILS, envoy=ACCEPTED),
    case("b64-false-without-crit", lambda: bearer(rs256_with_header(b64=False)), VERIFICATION_FAILS, envoy=ACCEPTED),
    case("jwe-five-segments", lambda: bearer(as_jwe_shape(good())), BAD_FORMAT),
    case("jwe-enc-header-three-segments", lambda: bearer(rs256_with_header(enc="A256GCM")),
         VERIFICATION_FAILS, envoy=ACCEPTED),
    # ----- segments and base64url -----
    case("four-segments", lambda: bearer(good() + ".e30"), BAD_FORMAT),
    case("trailing-dot", lambda: bearer(good() + "."), BAD_FORMAT, envoy=ACCEPTED),
    case("two-segments", lambda: bearer(good().rsplit(".", 1)[0]), BAD_FORMAT),
    case("empty-payload-segment", lambda: bearer(good().split(".")[0] + ".." + good().split(".")[2]), BAD_FORMAT),
    case("bad-base64url-character", lambda: bearer(bad_character_token()), PAYLOAD_BAD_BASE64),
    *(case(f"padding-in-{name}", lambda segment=segment: bearer(padded_token(segment)), bad_base64(name), envoy=ACCEPTED)
      for segment, name in enumerate(SEGMENTS)),
    *(case(f"standard-base64-in-{name}", lambda segment=segment: bearer(restandardized_token(segment)), bad_base64(name))
      for segment, name in enumerate(SEGMENTS)),
    case("one-segment", lambda: bearer("garbage"), BAD_FORMAT),
    case("segments-not-base64url", lambda: bearer("a.b.c"), bad_base64("header")),
    case("five-plain-segments", lambda: bearer(good() + ".e30.e30"), BAD_FORMAT),
    # ----- JSON -----
    case("header-not-json", lambda: bearer(rs256_with_raw_header(b"alg=RS256")), HEADER_BAD_JSON),
    case("payload-not-json", lambda: bearer(with_claims_json(b"iss=" + ISSUER.encode())), PAYLOAD_BAD_JSON),
    case("header-json-array", lambda: bearer(rs256_with_raw_header(b'["alg","RS256"]')), HEADER_BAD_JSON),
    case("header-json-string", lambda: bearer(rs256_with_raw_header(b'"RS256"')), HEADER_BAD_JSON),
    case("payload-json-array", lambda: bearer(with_claims_json(json_bytes([valid_claims()]))), PAYLOAD_BAD_JSON),
    case("payload-json-string", lambda: bearer(with_claims_json(b'"' + ISSUER.encode() + b'"')), PAYLOAD_BAD_JSON),
    case("header-duplicate-alg",
         lambda: bearer(rs256_with_raw_header(b'{"alg":"none","kid":"%s","alg":"RS256"}' % KEYS.rsa.kid.encode())),
         HEADER_BAD_JSON),
    case("payload-duplicate-iss",
         lambda: bearer(with_claims_json(claims_json_with(iss=f'"https://evil.test","iss":"{ISSUER}"'))),
         PAYLOAD_BAD_JSON),
    case("payload-duplicate-exp",
         lambda: bearer(with_claims_json(claims_json_with(exp=f'1,"exp":{int(time.time()) + 300}'))),
         PAYLOAD_BAD_JSON),
    # ----- claim types -----
    *(case(f"{name}-as-string", lambda name=name: bearer(good(**{name: str(int(time.time()))})), not_integer(name))
      for name in ("exp", "nbf", "iat")),
    case("exp-1e400", lambda: bearer(with_claims_json(claims_json_with(exp="1e400"))), PAYLOAD_BAD_JSON),
    case("exp-2^64", lambda: bearer(with_claims_json(claims_json_with(exp=str(2**64)))), out_of_range("exp")),
    case("exp-float", lambda: bearer(good(exp=time.time() + 300.5)), not_integer("exp"), envoy=ACCEPTED),
    case("exp-negative", lambda: bearer(good(exp=-1)), out_of_range("exp")),
    case("nbf-negative", lambda: bearer(good(nbf=-1)), out_of_range("nbf")),
    case("iat-float", lambda: bearer(good(iat=time.time() - 10.5)), not_integer("iat"), envoy=ACCEPTED),
    case("aud-nested-object", lambda: bearer(good(aud={"aud": AUDIENCE})),
         "Jwt payload [aud] field is not a string or string list"),
    case("iss-number", lambda: bearer(good(iss=42)), "Jwt payload [iss] field is not a string"),
    case("sub-number", lambda: bearer(good(sub=42)), "Jwt payload [sub] field is not a string"),
    # ----- size -----
    case("token-50kb-over-max-token-bytes", lambda: bearer(huge_token(50_000)), VERIFICATION_FAILS, envoy=ACCEPTED),
    case("token-64kb-in-header", lambda: bearer(huge_token(64 * 1024)), TOO_LARGE, status=431),
    case("token-64kb-in-query", lambda: in_query(huge_token(64 * 1024)), TOO_LARGE, status=431),
    case("token-1mb-in-header", lambda: bearer(huge_token(1024 * 1024)), TOO_LARGE, status=431),
    # ----- several tokens at once -----
    case("valid-header-invalid-query", lambda: everywhere(good(), relabelled(good(), alg="none"), good()),
         ALG_NOT_SUPPORTED),
    case("invalid-cookie-valid-elsewhere", lambda: everywhere(good(), good(), attacker_signed()), VERIFICATION_FAILS),
    case("more-tokens-than-the-limit", five_valid_tokens, VERIFICATION_FAILS, envoy=ACCEPTED),
]


# ----- one Envoy: our filter, jwt_authn as the reference, and a large-token listener -----
def jwt_authn_filter(jwks: dict) -> dict:
    """Envoy's own jwt_authn, configured as the `filter` listener's rule is."""
    provider = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "from_params": ["access_token"],
        "from_cookies": ["jwt"],
    }
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"hostile": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "hostile"}}],
        },
    }


def add_jwt_authn(envoy, listener_name: str, jwks: dict) -> None:
    """Put jwt_authn before the router of a listener the harness built without filters."""
    bootstrap = json.loads(envoy.config_path.read_text())
    for listener in bootstrap["static_resources"]["listeners"]:
        if listener["name"] == listener_name:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["http_filters"].insert(0, jwt_authn_filter(jwks))
    envoy.config_path.write_text(json.dumps(bootstrap, indent=2))


@pytest.fixture(scope="module")
def envoy(module_stack):
    server = module_stack.jwks_server(KEYS.jwks())
    our_rule = rule(ISSUER, server, audiences=[AUDIENCE], **LOCATIONS)
    listeners = [
        Listener("filter", plugin_config(our_rule, servers=(server,))),
        Listener("filter_host", plugin_config(our_rule, servers=(server,), signatureVerification="host")),
        Listener("filter_module", plugin_config(our_rule, servers=(server,), signatureVerification="module")),
        Listener("big", plugin_config(our_rule, servers=(server,), maxTokenBytes=BIG_TOKEN_LIMIT)),
        Listener("jwt_authn", None),
    ]
    envoy = module_stack.new_envoy(*listeners, servers=(server,))
    add_jwt_authn(envoy, "jwt_authn", KEYS.jwks())
    envoy.start()
    # Baseline once every listener has served: V8 VMs are made per worker at start-up.
    for listener in FILTERS + ("big",):
        upstream_view(send(envoy.url(listener), "/warm-up", bearer(good())))
    envoy.baseline_wasm_stats = wasm_stats(envoy)
    return envoy


@pytest.fixture(scope="module")
def built_cases():
    """Each case's request, made once: the filter and jwt_authn get the same bytes."""
    return {c.id: c.make() for c in CASES}


def reached_upstream(echo_server, path: str) -> bool:
    return any(seen.split("?", 1)[0] == path for seen in echo_server.seen_paths)


def assert_answer(response: requests.Response, status: int, body: str) -> None:
    if status == 431:
        # Envoy's codec answers before any filter runs: no challenge header.
        assert (response.status_code, response.text) == (status, body)
        assert "www-authenticate" not in response.headers
    else:
        assert_denied(response, status, body)


@pytest.mark.parametrize("listener", FILTERS)
@pytest.mark.parametrize("hostile", CASES, ids=[c.id for c in CASES])
def test_hostile_token_is_denied(envoy, echo_server, built_cases, hostile, listener):
    path = f"/hostile/{listener}/{hostile.id}"
    response = send(envoy.url(listener), path, built_cases[hostile.id])
    assert_answer(response, hostile.status, hostile.body)
    assert not reached_upstream(echo_server, path)


@pytest.mark.parametrize("hostile", CASES, ids=[c.id for c in CASES])
def test_jwt_authn_answers_the_same_or_is_laxer(envoy, built_cases, hostile):
    """The reference: jwt_authn gives our answer, or lets the token through where
    the case says we are deliberately stricter."""
    response = send(envoy.url("jwt_authn"), f"/reference/{hostile.id}", built_cases[hostile.id])
    if hostile.envoy == ACCEPTED:
        assert response.status_code == 200, response.text
    else:
        status, body = hostile.envoy or (hostile.status, hostile.body)
        assert (response.status_code, response.text) == (status, body)


# ----- accepted on purpose -----
def test_a_valid_token_carrying_jku_and_x5u_is_accepted(envoy):
    """jku/x5u/jwk/x5c are ignored, as in jwt_authn: keys come only from the rule's
    JWKS, so the header cannot change which key verifies (see the attacker cases)."""
    token = signed(header_for(KEYS.rsa, jku="https://attacker.test/jwks.json", x5u="https://attacker.test/c.pem"),
                   valid_claims(), KEYS.rsa)
    for listener in ("filter", "jwt_authn"):
        upstream_view(get(envoy.url(listener), "/jku", token=token))


@pytest.mark.parametrize("where", ["header-and-query", "cookie-twice"])
def test_the_same_valid_token_twice_is_accepted_and_removed(envoy, where):
    """As jwt_authn: every copy verifies, so the request passes; no copy reaches the upstream."""
    token = good()
    request = same_token_twice(where)
    seen = upstream_view(send(envoy.url("filter"), "/twice", request))
    assert token not in json.dumps(seen)
    upstream_view(send(envoy.url("jwt_authn"), "/twice", request))


def test_valid_tokens_in_all_three_locations_are_accepted(envoy):
    seen = upstream_view(send(envoy.url("filter"), "/three", everywhere(good(), good(), good())))
    assert seen["path"] == "/three"
    assert "authorization" not in seen["headers"] and "cookie" not in seen["headers"]


@pytest.mark.parametrize("request_for", [bearer, in_query], ids=["header", "query"])
def test_50kb_token_below_envoys_header_limit_is_verified(envoy, request_for):
    """Envoy's 60 KiB header limit lets a 50 KB token through; with maxTokenBytes
    raised it verifies and is removed; with the default 16 KiB it is refused (table)."""
    token = huge_token(50_000)
    seen = upstream_view(send(envoy.url("big"), "/big", request_for(token)))
    assert seen["path"] == "/big"
    assert token not in json.dumps(seen)


def test_50kb_forged_token_is_denied_under_a_large_limit(envoy, echo_server):
    forged = with_signature(huge_token(50_000), signature_of(attacker_signed()))
    assert_denied(send(envoy.url("big"), "/big-forged", bearer(forged)), 401, VERIFICATION_FAILS)
    assert not reached_upstream(echo_server, "/big-forged")


# ----- the VM survived -----
# Envoy 1.40's Wasm stats (admin /stats?filter=wasm): the V8 runtime's VM gauges
# and counters, and the plugin's (named by vm_config.vm_id) reload counters.
VM_HEALTH_STATS = (
    "wasm.envoy.wasm.runtime.v8.active",
    "wasm.envoy.wasm.runtime.v8.created",
    "wasm.wasm_vm_count",
    "wasm.oidc_filter.vm_reload",
    "wasm.oidc_filter.vm_reload_failure",
    "wasm.oidc_filter.vm_reload_backoff",
)


def wasm_stats(envoy) -> dict[str, int]:
    text = requests.get(envoy.admin_url + "/stats", params={"filter": "wasm"}, timeout=5).text
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            stats[name] = int(value)
    return stats


def test_zz_vm_survived_the_suite(envoy):
    """Runs last (module order): a valid token still passes on the same Envoy, and
    the V8 runtime reports no VM failure or restart."""
    for listener in FILTERS + ("big",):
        upstream_view(send(envoy.url(listener), "/after", bearer(good())))
    stats, baseline = wasm_stats(envoy), envoy.baseline_wasm_stats
    # A VM that failed is reloaded (vm_reload*) or re-created (created grows).
    for name in VM_HEALTH_STATS:
        assert stats[name] == baseline[name], f"{name}: {baseline[name]} -> {stats[name]}"
    assert stats["wasm.oidc_filter.vm_reload"] == 0
    assert stats["wasm.oidc_filter.vm_reload_failure"] == 0
    assert "panicked" not in envoy.log_text()
