"""JWT minting with `cryptography` only, including hostile tokens.

A `SigningKey` pairs a private key with its JWS algorithm and kid; `jwk()`
exports its public half in the shapes a JWKS may hold (with or without `alg`
and `kid`). `sign()` makes a compact JWS; the `raw_*` and `tamper_*` helpers
build the malformed and malicious tokens a verifier must reject.
"""

import base64
import functools
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS = ("ES256", "ES384")
ALL_ALGS = RSA_ALGS + EC_ALGS + ("EdDSA",)

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES = {"ES256": (ec.SECP256R1, "P-256", 32), "ES384": (ec.SECP384R1, "P-384", 48)}


# ----- base64url -----
def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _uint_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


# ----- keys -----
@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str | None
    private_key: object

    def with_kid(self, kid: str | None) -> "SigningKey":
        """The same key material under another kid (None: no kid)."""
        return replace(self, kid=kid)

    def as_alg(self, alg: str) -> "SigningKey":
        """The same key material signing under another compatible alg (RS256 -> PS384)."""
        return replace(self, alg=alg)

    def jwk(self, include_alg: bool = True, include_kid: bool = True) -> dict:
        """The public JWK; `use: sig` is always set, `alg`/`kid` on request."""
        jwk = _public_jwk(self.alg, self.private_key.public_key())
        jwk["use"] = "sig"
        if include_alg:
            jwk["alg"] = self.alg
        if include_kid and self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def generate_key(alg: str, kid: str | None = None, rsa_bits: int = 2048) -> SigningKey:
    """A fresh key for `alg`; kid defaults to a readable name like 'es256-1a2b'."""
    if alg in RSA_ALGS:
        private = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif alg in EC_ALGS:
        private = ec.generate_private_key(_EC_CURVES[alg][0]())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no key type for alg {alg}")
    if kid is None:
        kid = f"{alg.lower()}-{id(private) & 0xFFFF:04x}"
    return SigningKey(alg=alg, kid=kid, private_key=private)


@functools.lru_cache(maxsize=None)
def cached_key(alg: str, name: str = "default") -> SigningKey:
    """A key made once per (alg, name) per test session: RSA generation is slow."""
    return generate_key(alg, kid=f"{name}-{alg.lower()}")


def jwks(*jwks_entries: dict) -> dict:
    """A JWKS document from JWK dicts (see SigningKey.jwk)."""
    return {"keys": list(jwks_entries)}


def jwks_of(*keys: SigningKey) -> dict:
    """A JWKS document holding the full public JWK (alg and kid) of each key."""
    return jwks(*(k.jwk() for k in keys))


def _public_jwk(alg: str, public) -> dict:
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": b64url(_uint_bytes(numbers.n)), "e": b64url(_uint_bytes(numbers.e))}
    if isinstance(public, ec.EllipticCurvePublicKey):
        _, crv, size = _EC_CURVES[alg]
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url(_uint_bytes(numbers.x, size)),
            "y": b64url(_uint_bytes(numbers.y, size)),
        }
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    raise TypeError(f"unsupported key {public!r}")


# ----- signing -----
def signature_over(signing_input: bytes, key: SigningKey, alg: str | None = None) -> bytes:
    """The raw JWS signature of `signing_input` with `key` under `alg` (default: the key's)."""
    alg = alg or key.alg
    private = key.private_key
    if alg.startswith("RS"):
        return private.sign(signing_input, padding.PKCS1v15(), _HASHES[alg[2:]]())
    if alg.startswith("PS"):
        digest = _HASHES[alg[2:]]()
        # RFC 7518 section 3.5: the salt is as long as the hash output.
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return private.sign(signing_input, pss, digest)
    if alg in EC_ALGS:
        _, _, size = _EC_CURVES[alg]
        der = private.sign(signing_input, ec.ECDSA(_HASHES[alg[2:]]()))
        r, s = decode_dss_signature(der)
        # JWS uses the fixed-size R || S form, not DER (RFC 7518 section 3.4).
        return _uint_bytes(r, size) + _uint_bytes(s, size)
    if alg == "EdDSA":
        return private.sign(signing_input)
    raise ValueError(f"cannot sign with alg {alg}")


def sign(header: dict, payload: dict, key: SigningKey) -> str:
    """A compact JWS. `alg` and `kid` come from the key unless `header` sets them
    (a header value of None removes the field)."""
    full_header = {"alg": key.alg, "typ": "JWT"}
    if key.kid is not None:
        full_header["kid"] = key.kid
    full_header.update(header)
    full_header = {k: v for k, v in full_header.items() if v is not None}
    signing_input = f"{b64url_json(full_header)}.{b64url_json(payload)}"
    signature = signature_over(signing_input.encode(), key, full_header.get("alg", key.alg))
    return f"{signing_input}.{b64url(signature)}"


def claims(issuer: str, lifetime: int = 300, **extra) -> dict:
    """A payload valid now: iss, sub 'alice', iat, exp = now + lifetime, plus `extra`."""
    now = int(time.time())
    payload = {"iss": issuer, "sub": "alice", "iat": now, "exp": now + lifetime}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not None}


# ----- hostile tokens -----
def raw_token(header, payload, signature: bytes = b"") -> str:
    """header.payload.signature with no signing; header/payload may be dicts or str."""
    head = header if isinstance(header, str) else b64url_json(header)
    body = payload if isinstance(payload, str) else b64url_json(payload)
    return f"{head}.{body}.{b64url(signature)}"


def unsigned_token(payload: dict, alg: str = "none") -> str:
    """An 'alg: none' token (any spelling) with an empty signature."""
    return raw_token({"alg": alg, "typ": "JWT"}, payload)


def hmac_token(payload: dict, secret: bytes, kid: str | None = None) -> str:
    """HS256 token; with a public key's bytes as secret it is the key-confusion attack."""
    header = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def segments(token: str) -> list[str]:
    return token.split(".")


def tamper_payload(token: str, **changes) -> str:
    """The token with payload claims changed but the original signature kept."""
    head, body, sig = segments(token)
    payload = json.loads(b64url_decode(body))
    payload.update(changes)
    return f"{head}.{b64url_json(payload)}.{sig}"


def flip_signature_bit(token: str) -> str:
    """The token with one bit of its signature flipped (still valid base64url)."""
    head, body, sig = segments(token)
    raw = bytearray(b64url_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


def as_jwe_shape(token: str) -> str:
    """Five segments, the JWE compact shape."""
    head, body, sig = segments(token)
    return f"{head}.{b64url(b'enc-key')}.{b64url(b'iv-iv-iv-iv')}.{body}.{sig}"


def pkcs8_pem(key) -> str:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def self_signed_certificate_pem(key) -> str:
    """A certificate for `key`, as Entra ID's certificate credentials hold one."""
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
