"""Client authentication with a signed assertion at the token endpoint
(`tokenEndpointAuthMethod: client_secret_jwt` and `private_key_jwt`, RFC 7523
§2.2, OIDC Core §9), against oidc-provider with the client registered for that
method: the code exchange and the refresh each send a fresh assertion, never the
secret, and the IdP's own checks (a reused `jti`, a wrong `aud`) are real ones.
`private_key_jwt` assertions are signed by Envoy's `sign` (BoringSSL)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from harness.envoy import Listener
from harness.login import login
from harness.oidc_app import App, html_session, upstream
from harness.tokens import generate_key, pkcs8_pem, self_signed_certificate_pem

SHORT_TOKENS = {"IdToken": 3, "AccessToken": 3}
# HS256 needs a secret of at least 32 bytes (RFC 7518 §3.2).
SECRET = "client-secret-jwt-0123456789abcdef-0123"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(assertion: str) -> dict:
    payload = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def hs256(claims: dict, secret: str) -> str:
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def app_with_client_secret_jwt(stack) -> App:
    return App(
        stack,
        oidc_fields={"tokenEndpointAuthMethod": "client_secret_jwt", "clientSecret": SECRET},
        client_fields={"token_endpoint_auth_method": "client_secret_jwt", "client_secret": SECRET},
        top_level={"clockSkewSeconds": 0},
        idp_options={"ttl": SHORT_TOKENS},
    )


def token_request(app: App, assertion: str) -> requests.Response:
    """A refresh the test sends itself, authenticated by `assertion`."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "not-a-real-refresh-token",
        "client_id": "app",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    return requests.post(app.idp.endpoint("token"), data=form, timeout=10)


def login_and_refresh(app: App, user: str) -> list[str]:
    """A login, then a request after the tokens expired, which the filter renews
    with a refresh; the assertions the IdP received for the two, checked for the
    claims every assertion must carry and for fresh `jti`s."""
    session = html_session()
    app.idp.clear_events()
    result = login(session, f"{app.url}/", user)
    assert upstream(result.response)["headers"]["x-user-email"] == f"{user}@example.test"
    time.sleep(4)
    renewed = session.get(f"{app.url}/after-expiry", allow_redirects=False)
    assert upstream(renewed)["headers"]["x-user-email"] == f"{user}@example.test"
    grants = [e for e in app.idp.events() if e["event"] == "grant.success"]
    assert [e["grant_type"] for e in grants] == ["authorization_code", "refresh_token"], app.idp.events()
    assertions = app.idp.assertions()
    assert len(assertions) == 2, assertions
    seen = [claims_of(assertion) for assertion in assertions]
    for claims in seen:
        assert claims["iss"] == claims["sub"] == "app"
        assert claims["aud"] == app.idp.endpoint("token")
        assert 0 < claims["exp"] - claims["iat"] <= 60
        assert abs(claims["iat"] - time.time()) < 30
        assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) == 16
    assert seen[0]["jti"] != seen[1]["jti"], "each request gets a fresh jti"
    return assertions


def test_login_and_refresh_with_client_secret_jwt(stack):
    app = app_with_client_secret_jwt(stack)
    assertions = login_and_refresh(app, "ivan")
    headers = [json.loads(base64.urlsafe_b64decode(a.split(".")[0] + "==")) for a in assertions]
    assert all(h == {"alg": "HS256", "typ": "JWT"} for h in headers), headers
    assert SECRET not in json.dumps(app.idp.events())


def test_the_idp_refuses_a_replayed_or_misdirected_assertion(stack):
    """What makes a fresh jti and the right aud necessary: oidc-provider refuses
    a reused assertion and one for another audience (a control assertion, fresh
    and well aimed, gets past client authentication to the grant's own check)."""
    app = app_with_client_secret_jwt(stack)
    session = html_session()
    app.idp.clear_events()
    login(session, f"{app.url}/", "judy")
    (sent,) = app.idp.assertions()
    replayed = token_request(app, sent)
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client", replayed.text
    now = int(time.time())
    claims = {"iss": "app", "sub": "app", "iat": now, "exp": now + 60}
    token_endpoint = app.idp.endpoint("token")
    misdirected = token_request(app, hs256({**claims, "aud": "https://elsewhere.test/token", "jti": "a1"}, SECRET))
    assert misdirected.status_code == 401 and misdirected.json()["error"] == "invalid_client", misdirected.text
    control = token_request(app, hs256({**claims, "aud": token_endpoint, "jti": "a2"}, SECRET))
    assert control.json()["error"] == "invalid_grant", control.text


def test_a_short_secret_is_refused_at_load(stack):
    config = {
        "oidc": {
            "issuer": "https://idp.example.test", "clientId": "app", "clientSecret": "too-short",
            "tokenEndpointAuthMethod": "client_secret_jwt", "cookieSecrets": [base64.b64encode(bytes(32)).decode()],
        },
    }  # fmt: skip
    outcome = stack.envoy_expecting_failure(Listener("main", config), timeout=20)
    assert not outcome.became_ready
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any("oidc.tokenEndpointAuthMethod" in line and "at least 32 bytes" in line for line in lines), lines


# ----- private_key_jwt -----
def app_with_private_key_jwt(stack, key, environment: dict | None = None, envoy_options=None, **oidc_extra) -> App:
    return App(
        stack,
        oidc_fields={
            "tokenEndpointAuthMethod": "private_key_jwt",
            "clientPrivateKeyFromEnv": "CLIENT_PRIVATE_KEY",
            "clientKeyId": key.kid,
            "clientSecret": None,
        } | oidc_extra,
        client_fields={"token_endpoint_auth_method": "private_key_jwt", "extra": {"jwks": {"keys": [key.jwk()]}}},
        top_level={"clockSkewSeconds": 0},
        idp_options={"ttl": SHORT_TOKENS},
        vm_environment={"key_values": {"CLIENT_PRIVATE_KEY": pkcs8_pem(key)} | (environment or {})},
        envoy_options=envoy_options,
    )


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_login_and_refresh_with_private_key_jwt(stack, alg):
    key = generate_key(alg, kid=f"client-{alg.lower()}")
    # The RSA client also names its certificate, as Entra ID wants (x5t#S256).
    certificate = self_signed_certificate_pem(key) if alg == "RS256" else None
    extra = {"clientCertificateFromEnv": "CLIENT_CERTIFICATE"} if certificate else {}
    app = app_with_private_key_jwt(stack, key, {"CLIENT_CERTIFICATE": certificate} if certificate else None, **extra)
    assertions = login_and_refresh(app, "kim")
    headers = [json.loads(base64.urlsafe_b64decode(a.split(".")[0] + "==")) for a in assertions]
    expected = {"alg": alg, "typ": "JWT", "kid": key.kid}
    if certificate:
        der = base64.b64decode("".join(certificate.strip().splitlines()[1:-1]))
        expected["x5t#S256"] = b64url(hashlib.sha256(der).digest())
    assert all(h == expected for h in headers), headers
    # The filter's assertion, replayed, is refused.
    replayed = token_request(app, assertions[0])
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client", replayed.text


def test_a_key_the_idp_does_not_know_fails_the_sign_in_with_a_page(stack):
    registered, other = generate_key("ES256", kid="registered"), generate_key("ES256", kid="registered")
    app = App(
        stack,
        oidc_fields={"tokenEndpointAuthMethod": "private_key_jwt", "clientPrivateKeyFromEnv": "K", "clientSecret": None},
        client_fields={"token_endpoint_auth_method": "private_key_jwt", "extra": {"jwks": {"keys": [registered.jwk()]}}},
        vm_environment={"key_values": {"K": pkcs8_pem(other)}},
    )  # fmt: skip
    session = html_session()
    from harness.login import follow

    result = follow(session, f"{app.url}/", username="lee")
    assert result.status == 401, result.status
    assert "text/html" in result.response.headers["content-type"]


@pytest.mark.parametrize(
    ("environment", "fields", "expected"),
    [
        ({}, {}, "environment variable `CLIENT_PRIVATE_KEY` is not set"),
        ({"CLIENT_PRIVATE_KEY": "not a key"}, {}, "is not an unencrypted PKCS#8 PEM private key"),
        ({"CLIENT_PRIVATE_KEY": None}, {"clientAssertionAlg": "RS256"}, "signs ES256"),
        (None, {"clientPrivateKeyFromEnv": None}, "private_key_jwt needs the client's private key"),
    ],
    ids=["unset", "not-a-key", "alg-mismatch", "no-key-named"],
)
def test_a_missing_or_malformed_private_key_is_refused_at_load(stack, environment, fields, expected):
    key = generate_key("ES256", kid="k")
    if environment is not None and "CLIENT_PRIVATE_KEY" in environment and environment["CLIENT_PRIVATE_KEY"] is None:
        environment = {"CLIENT_PRIVATE_KEY": pkcs8_pem(key)}
    oidc = {
        "issuer": "https://idp.example.test", "clientId": "app", "tokenEndpointAuthMethod": "private_key_jwt",
        "clientPrivateKeyFromEnv": "CLIENT_PRIVATE_KEY", "cookieSecrets": [base64.b64encode(bytes(32)).decode()],
    } | fields  # fmt: skip
    oidc = {name: value for name, value in oidc.items() if value is not None}
    listener = Listener("main", {"oidc": oidc}, vm_environment={"key_values": environment or {}})
    outcome = stack.envoy_expecting_failure(listener, timeout=20)
    assert not outcome.became_ready
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any(expected in line for line in lines), lines
    body_line = pkcs8_pem(key).splitlines()[1]
    ours = [line for line in outcome.log.splitlines() if "wasm log" in line or "plugin configuration" in line]
    assert not any(body_line in line for line in ours), "the key never reaches the filter's log lines"
