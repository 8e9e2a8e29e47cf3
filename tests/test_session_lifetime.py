"""How long a browser session lasts and what its tokens are worth upstream
(issue #26): tokens are renewed ahead of their expiry so that no forwarded
token is ever expired; without a refresh token the session lasts its
`sessionTtl`, forwarding no token past its `exp`."""

import base64
import json
import time

import requests

from harness.login import login
from harness.oidc_app import App, html_session, upstream

FORWARD_ID_TOKEN = {"forwardToken": {"token": "id_token", "header": "x-id-token"}}


def exp_of(token: str) -> int:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]


def test_a_forwarded_token_is_never_expired(stack):
    # 6 s tokens and a clock skew of a minute: renewed 3 s ahead (half the lifetime).
    app = App(stack, oidc_fields=FORWARD_ID_TOKEN, top_level={"clockSkewSeconds": 60},
              idp_options={"ttl": {"IdToken": 6, "AccessToken": 6}})
    session = html_session()
    login(session, f"{app.url}/", "amy")
    seen_tokens = set()
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        response = session.get(f"{app.url}/work", allow_redirects=False, timeout=10)
        received = time.time()
        token = upstream(response)["headers"]["x-id-token"]
        assert exp_of(token) > received, f"an expired token went upstream ({exp_of(token)} <= {received:.2f})"
        seen_tokens.add(token)
        time.sleep(0.25)
    assert len(seen_tokens) >= 2, "the tokens were renewed"
    refreshes = [e for e in app.idp.events() if e.get("grant_type") == "refresh_token"]
    # One renewal per ~3 s of token life, not one per request.
    assert 1 <= len(refreshes) <= 6, refreshes


def test_without_a_refresh_token_the_session_outlives_its_tokens_but_forwards_none(stack):
    app = App(stack, oidc_fields=FORWARD_ID_TOKEN, top_level={"clockSkewSeconds": 0},
              idp_options={"ttl": {"IdToken": 3, "AccessToken": 3}, "refresh_token_requires_offline_access": True})
    # Default scopes, no offline_access: the IdP issues no refresh token, and the
    # configuration said at load what that means.
    assert "`scopes` has no `offline_access`" in app.envoy.log_text()
    session = html_session()
    first = upstream(login(session, f"{app.url}/", "bea").response)
    assert exp_of(first["headers"]["x-id-token"]) > time.time()
    time.sleep(4.5)
    later = upstream(session.get(f"{app.url}/later", allow_redirects=False, timeout=10))
    assert later["headers"]["x-user-email"] == "bea@example.test"
    assert "x-id-token" not in later["headers"], "an expired token must not go upstream"
    # API calls of the same browser keep working too (no `401 Jwt is missing`).
    api = session.get(f"{app.url}/api", headers={"Accept": "application/json"}, allow_redirects=False, timeout=10)
    assert upstream(api)["headers"]["x-user-email"] == "bea@example.test"
    # A spoofed copy of the forwarding header does not take its place.
    spoofed = session.get(f"{app.url}/api", headers={"Accept": "application/json", "x-id-token": "forged"},
                          allow_redirects=False, timeout=10)
    assert "x-id-token" not in upstream(spoofed)["headers"]
    assert not [e for e in app.idp.events() if e.get("grant_type") == "refresh_token"]
    assert requests.get(f"{app.url}/api", headers={"Accept": "application/json"}, timeout=10).status_code == 401
