"""The relying party's side of OpenID Connect, done by hand in Python.

Enough to drive a real OpenID provider without the filter: a registered
`Client`, authorization requests with state, nonce and an S256 PKCE challenge,
token requests (client_secret_basic or client_secret_post), and an ID token
check whose signature verification uses `cryptography` only.
"""

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

REQUEST_TIMEOUT = 10.0
DEFAULT_SCOPE = "openid email profile"

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


# ----- clients -----
@dataclass
class Client:
    """A confidential client as registered at the IdP (oidc-provider metadata).

    `extra` holds any other client metadata passed through as is, e.g.
    {"id_token_signed_response_alg": "ES256"}."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    token_endpoint_auth_method: str = "client_secret_basic"  # or client_secret_post
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    extra: dict = field(default_factory=dict)

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def metadata(self) -> dict:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(self.grant_types),
            "response_types": ["code"],
            **self.extra,
        }


# ----- base64url, random values, PKCE -----
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def random_value(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(48)  # 64 characters, within 43..128
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


# ----- authorization requests -----
@dataclass
class AuthRequest:
    """An authorization request the test built, and the secrets it keeps."""

    url: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_verifier: str
    code_challenge: str


def authorization_request(
    authorization_endpoint: str,
    client: Client,
    redirect_uri: str | None = None,
    scope: str = DEFAULT_SCOPE,
    **extra_params,
) -> AuthRequest:
    """A code-flow request with fresh state, nonce and S256 challenge.
    `extra_params` are added (a value of None removes a parameter, e.g.
    code_challenge=None to leave PKCE out)."""
    verifier, challenge = pkce_pair()
    redirect_uri = redirect_uri or client.redirect_uri
    state, nonce = random_value(), random_value()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra_params)
    params = {k: v for k, v in params.items() if v is not None}
    return AuthRequest(
        url=f"{authorization_endpoint}?{urlencode(params)}",
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        code_challenge=challenge,
    )


def query_params(url: str) -> dict[str, str]:
    """The query of `url` as a dict (last value wins)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# ----- token endpoint -----
def token_request(
    token_endpoint: str, client: Client, data: dict, auth_method: str | None = None
) -> requests.Response:
    """POST to the token endpoint authenticating as `client` (its registered
    method unless `auth_method` says otherwise)."""
    method = auth_method or client.token_endpoint_auth_method
    form = dict(data)
    auth = None
    if method == "client_secret_basic":
        # RFC 6749 section 2.3.1: form-urlencode id and secret before Basic.
        auth = requests.auth.HTTPBasicAuth(_form_encode(client.client_id), _form_encode(client.client_secret))
    elif method == "client_secret_post":
        form.update(client_id=client.client_id, client_secret=client.client_secret)
    elif method == "none":
        form.update(client_id=client.client_id)
    else:
        raise ValueError(f"unsupported token_endpoint_auth_method {method}")
    return requests.post(token_endpoint, data=form, auth=auth, timeout=REQUEST_TIMEOUT, allow_redirects=False)


def _form_encode(text: str) -> str:
    return urlencode({"": text})[1:]


def exchange_code(
    token_endpoint: str,
    client: Client,
    code: str,
    code_verifier: str | None,
    redirect_uri: str | None = None,
    auth_method: str | None = None,
) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or client.redirect_uri}
    if code_verifier is not None:
        data["code_verifier"] = code_verifier
    return token_request(token_endpoint, client, data, auth_method)


def refresh_grant(
    token_endpoint: str, client: Client, refresh_token: str, auth_method: str | None = None
) -> requests.Response:
    return token_request(token_endpoint, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}, auth_method)


# ----- JWTs -----
def decode_jwt(token: str) -> tuple[dict, dict]:
    """(header, payload) without any verification."""
    head, body, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


def public_key_from_jwk(jwk: dict):
    def number(name: str) -> int:
        return int.from_bytes(b64url_decode(jwk[name]), "big")

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    if jwk["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(number("x"), number("y"), _CURVES[jwk["crv"]]()).public_key()
    if jwk["kty"] == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    raise ValueError(f"unsupported JWK {jwk.get('kty')}/{jwk.get('crv')}")


def verify_jws(token: str, jwks: dict) -> tuple[dict, dict]:
    """Verify a compact JWS against the key of its `kid` in `jwks` (or the only
    key of a matching type); returns (header, payload). Raises on failure."""
    head, body, sig = token.split(".")
    header, payload = decode_jwt(token)
    alg = header["alg"]
    candidates = [k for k in jwks["keys"] if header.get("kid") is None or k.get("kid") == header["kid"]]
    candidates = [k for k in candidates if k.get("alg") in (None, alg)]
    if not candidates:
        raise ValueError(f"no key for kid {header.get('kid')!r} alg {alg}")
    key = public_key_from_jwk(candidates[0])
    data, signature = f"{head}.{body}".encode(), b64url_decode(sig)
    if alg.startswith("RS"):
        key.verify(signature, data, padding.PKCS1v15(), _HASHES[alg[2:]]())
    elif alg.startswith("PS"):
        digest = _HASHES[alg[2:]]()
        key.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
    elif alg.startswith("ES"):
        half = len(signature) // 2
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        key.verify(der, data, ec.ECDSA(_HASHES[alg[2:]]()))
    elif alg in ("EdDSA", "Ed25519"):
        key.verify(signature, data)
    else:
        raise ValueError(f"unsupported alg {alg}")
    return header, payload


def validate_id_token(
    token: str, jwks: dict, issuer: str, client_id: str, nonce: str | None = None, leeway: int = 0
) -> dict:
    """The ID token's claims after the checks of OIDC Core 3.1.3.7: signature,
    iss, aud (and azp), exp, iat, and nonce when one is expected."""
    _, claims = verify_jws(token, jwks)
    now = time.time()
    assert claims["iss"] == issuer, f"iss {claims['iss']!r} != {issuer!r}"
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert client_id in audiences, f"aud {claims['aud']!r} lacks {client_id!r}"
    if len(audiences) > 1:
        assert claims.get("azp") == client_id
    assert claims["exp"] > now - leeway, f"expired: exp {claims['exp']} now {now:.0f}"
    assert claims["iat"] <= now + leeway + 1, f"iat {claims['iat']} in the future"
    if nonce is not None:
        assert claims.get("nonce") == nonce, f"nonce {claims.get('nonce')!r} != {nonce!r}"
    return claims
