"""Session cookies over time: refresh, chunking, tampering, secret rotation,
replayed callbacks, IdP refusals and client authentication methods."""

import time
from urllib.parse import urlsplit

import requests

from harness.login import follow, login, logout
from harness.oidc_app import App, html_session, new_cookie_secret, set_cookies, upstream

SHORT_TOKENS = {"IdToken": 3, "AccessToken": 3}


def test_expired_tokens_are_refreshed_transparently(stack):
    app = App(stack, top_level={"clockSkewSeconds": 0}, idp_options={"ttl": SHORT_TOKENS})
    session = html_session()
    login(session, f"{app.url}/", "alice")
    app.idp.clear_events()
    time.sleep(4)
    response = session.get(f"{app.url}/after-expiry", allow_redirects=False)
    assert upstream(response)["headers"]["x-user-email"] == "alice@example.test"
    assert any(c.startswith("oidc_session=") and "Max-Age=0" not in c for c in set_cookies(response)), "renewed cookie"
    refreshes = [e for e in app.idp.events() if e.get("grant_type") == "refresh_token"]
    assert refreshes, f"no refresh at the IdP: {app.idp.events()}"
    # The renewed session works without another refresh.
    app.idp.clear_events()
    upstream(session.get(f"{app.url}/again", allow_redirects=False))
    assert not [e for e in app.idp.events() if e.get("grant_type") == "refresh_token"]


def test_a_failed_refresh_sends_browsers_to_login_and_apis_get_401(stack):
    app = App(stack, top_level={"clockSkewSeconds": 0}, idp_options={"ttl": SHORT_TOKENS})
    session = html_session()
    login(session, f"{app.url}/", "bob")
    cookies = session.cookies.copy()
    # Logging out at the IdP revokes the refresh token the filter holds.
    logout(session, app.idp.end_session_url(post_logout_redirect_uri=f"{app.url}/signed-out"))
    time.sleep(4)
    browser = html_session()
    browser.cookies.update(cookies)
    navigation = browser.get(f"{app.url}/page", allow_redirects=False)
    assert navigation.status_code == 302
    assert navigation.headers["location"].startswith(app.idp.issuer)
    api = requests.get(f"{app.url}/api", cookies=cookies, headers={"Accept": "application/json"}, allow_redirects=False)
    assert api.status_code == 401


def test_large_id_tokens_are_stored_in_chunks_and_tampering_is_no_session(stack):
    app = App(stack, idp_options={"extra_id_token_claims": (12, 500)})
    session = html_session()
    login(session, f"{app.url}/", "carol")
    names = sorted(c.name for c in session.cookies if c.name.startswith("oidc_session"))
    assert names[:3] == ["oidc_session_0", "oidc_session_1", "oidc_session_2"], names
    assert all(len(c.value) <= 3800 for c in session.cookies if c.name.startswith("oidc_session"))
    upstream(session.get(f"{app.url}/", allow_redirects=False))
    chunk = next(c for c in session.cookies if c.name == "oidc_session_1")
    chunk.value = chunk.value[:-4] + ("AAAA" if not chunk.value.endswith("AAAA") else "BBBB")
    tampered = session.get(f"{app.url}/", allow_redirects=False)
    assert tampered.status_code == 302, "a tampered session is no session, not an error"


def test_cookie_secrets_rotate(stack):
    old, new = new_cookie_secret(), new_cookie_secret()
    app = App(
        stack,
        oidc_fields={"cookieSecrets": [old]},
        variants={
            "rotated": ({"cookieSecrets": [new, old]}, None),
            "retired": ({"cookieSecrets": [new]}, None),
        },
    )
    session = html_session()
    login(session, f"{app.url}/", "dave")
    # Cookies ignore ports, so the other listeners on 127.0.0.1 get the same cookies.
    assert upstream(session.get(f"{app.variant_urls['rotated']}/", allow_redirects=False))
    assert session.get(f"{app.variant_urls['retired']}/", allow_redirects=False).status_code == 302


def test_a_replayed_callback_is_refused(stack):
    app = App(stack)
    session = html_session()
    result = login(session, f"{app.url}/", "erin")
    callback = result.redirect_to(f"{app.url}/oauth2/callback").location
    replay = session.get(callback, allow_redirects=False)
    assert replay.status_code == 400


def test_idp_refusal_gives_a_clear_page(stack):
    app = App(stack)
    session = html_session()
    start = session.get(f"{app.url}/", allow_redirects=False)
    state = dict(p.split("=", 1) for p in urlsplit(start.headers["location"]).query.split("&"))["state"]
    refused = session.get(f"{app.url}/oauth2/callback?error=access_denied&state={state}", allow_redirects=False)
    assert refused.status_code == 401
    assert "access_denied" in refused.text and "text/html" in refused.headers["content-type"]


def test_client_secret_post(stack):
    app = App(
        stack,
        oidc_fields={"tokenEndpointAuthMethod": "client_secret_post"},
        client_fields={"token_endpoint_auth_method": "client_secret_post"},
    )
    session = html_session()
    assert upstream(login(session, f"{app.url}/", "frank").response)["headers"]["x-user-email"] == "frank@example.test"


def test_wrong_client_authentication_fails_with_a_page(stack):
    app = App(stack, client_fields={"token_endpoint_auth_method": "client_secret_post"})
    session = html_session()
    result = follow(session, f"{app.url}/", username="grace")
    assert result.status == 401
    assert "text/html" in result.response.headers["content-type"]


def test_an_unreachable_idp_gives_502_not_a_hang(stack):
    app = App(stack)
    session = html_session()
    result = follow(session, f"{app.url}/", username="heidi", stop_before=f"{app.url}/oauth2/callback")
    callback = result.hops[-1].location
    app.idp.stop()
    started = time.monotonic()
    response = session.get(callback, allow_redirects=False, timeout=30)
    assert response.status_code == 502
    assert time.monotonic() - started < 20, "bounded by the dispatch timeout"


def test_a_nonce_other_than_the_logins_is_refused(stack):
    app = App(stack)
    session = html_session()
    start = session.get(f"{app.url}/", allow_redirects=False)
    # The same state and login cookie, but the IdP is asked for another nonce.
    forged = start.headers["location"].replace("nonce=", "nonce=forged")
    result = login(session, forged, "ivan", stop_before=f"{app.url}/oauth2/callback")
    callback = result.redirect_to(f"{app.url}/oauth2/callback").location
    response = session.get(callback, allow_redirects=False)
    assert response.status_code == 401
    assert "oidc_session=" not in " ".join(set_cookies(response))


def test_the_id_token_can_be_forwarded_for_upstream_verification(stack):
    app = App(stack, oidc_fields={"forwardToken": {"token": "id_token", "header": "authorization"}})
    session = html_session()
    login(session, f"{app.url}/", "judy")
    seen = upstream(session.get(f"{app.url}/", allow_redirects=False))
    token = seen["headers"]["authorization"].removeprefix("Bearer ")
    claims = app.idp.validate_id_token(token)
    assert claims["email"] == "judy@example.test"


def test_logins_recover_when_the_idp_rotates_its_keys(stack):
    app = App(stack, top_level={"jwksMinRefetchInterval": "1s"})
    login(html_session(), f"{app.url}/", "kim")
    app.idp.rotate_keys(keep_old=False)
    time.sleep(1.2)  # past jwksMinRefetchInterval since the start-up fetch
    # The cached keys predate the rotation: the filter refuses the unknown kid with a
    # clear page and asks for the new keys ...
    first = login(html_session(), f"{app.url}/", "kim")
    assert first.status == 401 and "keys just changed" in first.response.text
    # ... which are fetched at once and reach every worker within its idle tick (1 s).
    deadline = time.monotonic() + 5
    while True:
        again = login(html_session(), f"{app.url}/", "kim")
        if again.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert upstream(again.response)["headers"]["x-user-email"] == "kim@example.test"


def test_one_top_level_declaration_sets_a_claim_header_for_sessions_and_tokens(stack):
    """`outputClaimToHeaders` at the top level: the same header whether the user
    arrives with the session cookie or with a bearer token of the same issuer."""
    app = App(
        stack,
        oidc_fields={"outputClaimToHeaders": [], "forwardToken": {"token": "id_token", "header": "x-id-token"}},
        top_level={"outputClaimToHeaders": [{"header": "x-user-email", "claim": "email"}]},
    )
    session = html_session()
    login(session, f"{app.url}/", "lena")
    seen = upstream(session.get(f"{app.url}/", headers={"X-User-Email": "boss@example.test"}, allow_redirects=False))
    assert seen["headers"]["x-user-email"] == "lena@example.test"
    id_token = seen["headers"]["x-id-token"]
    api = requests.get(f"{app.url}/api", headers={"Authorization": f"Bearer {id_token}",
                                                   "X-User-Email": "boss@example.test"}, timeout=10)
    assert upstream(api)["headers"]["x-user-email"] == "lena@example.test"
