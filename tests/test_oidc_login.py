"""Browser login through the filter, against the real oidc-provider IdP.

Envoy runs the filter with an `oidc` block; the IdP is reached by the filter's own
dispatch calls through the `idp` cluster. A cookie-keeping client (harness.login)
plays the browser; one test drives headless Chromium.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness.login import SAME_ORIGIN, follow, login, logout
from harness.oidc_app import App, html_session, upstream

@pytest.fixture(scope="module")
def app(module_stack):
    return App(module_stack)


def test_login_lands_on_the_original_url_with_identity(app):
    session = html_session()
    result = login(session, f"{app.url}/reports?id=7", "alice")
    seen = upstream(result.response)
    assert seen["path"] == "/reports?id=7"
    assert seen["headers"]["x-user-email"] == "alice@example.test"
    cookie = seen["headers"].get("cookie", "")
    assert "oidc_session" not in cookie, "session cookies never reach the upstream"
    first = result.hops[0]
    assert first.status == 302
    query = parse_qs(urlsplit(first.location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"]
    # Later requests ride on the session, without the IdP.
    again = upstream(session.get(f"{app.url}/other", allow_redirects=False))
    assert again["headers"]["x-user-email"] == "alice@example.test"


def test_spoofed_identity_headers_are_replaced(app):
    session = html_session()
    login(session, f"{app.url}/", "bob")
    seen = upstream(session.get(f"{app.url}/", headers={"x-user-email": "admin@evil.test"}, allow_redirects=False))
    assert seen["headers"]["x-user-email"] == "bob@example.test"


def test_api_requests_without_session_get_401(app):
    response = requests.get(f"{app.url}/api/data", headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer realm=")
    xhr = requests.get(
        f"{app.url}/page", headers={"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, allow_redirects=False
    )
    assert xhr.status_code == 401


def test_bearer_tokens_are_judged_by_the_token_rules(app):
    session = html_session()
    request = app.idp.auth_request(redirect_uri=f"{app.url}/oauth2/callback")
    result = login(session, request.url, "carol", stop_before=f"{app.url}/oauth2/callback")
    code = result.callback_params(f"{app.url}/oauth2/callback")["code"]
    tokens = app.idp.exchange_code(code, request).json()
    ok = requests.get(f"{app.url}/api", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert ok.status_code == 200
    bad = requests.get(f"{app.url}/api", headers={"Authorization": "Bearer a.b.c", "Accept": "text/html"})
    assert (bad.status_code, bad.text) == (401, "Jwt header is an invalid Base64url encoded"), "a bad token is never a login redirect"


def test_tampered_state_is_refused(app):
    session = html_session()
    result = follow(session, f"{app.url}/x", username="dave", stop_before=f"{app.url}/oauth2/callback")
    callback = result.hops[-1].location
    assert callback.startswith(f"{app.url}/oauth2/callback")
    tampered = callback.replace("state=", "state=x")
    response = session.get(tampered, allow_redirects=False)
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]


def test_callback_without_login_cookie_is_refused(app):
    response = requests.get(f"{app.url}/oauth2/callback?code=abc&state=def", allow_redirects=False)
    assert response.status_code == 400


def test_open_redirect_attempts_stay_on_origin(app):
    session = html_session()
    result = login(session, f"{app.url}//evil.test/path", "erin")
    assert urlsplit(result.url).netloc == f"127.0.0.1:{app.port}"


def test_logout_clears_the_session_and_ends_the_idp_session(app):
    session = html_session()
    login(session, f"{app.url}/", "frank")
    response = session.get(f"{app.url}/oauth2/logout", headers=SAME_ORIGIN, allow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path.endswith("/session/end")
    query = parse_qs(location.query)
    assert query["post_logout_redirect_uri"] == [f"{app.url}/signed-out"]
    assert query["id_token_hint"]
    after = session.get(f"{app.url}/", allow_redirects=False)
    assert after.status_code == 302, "logged out: back to the IdP"
    # The IdP confirms the sign-out and sends the browser to postLogoutRedirectUri.
    ended = logout(session, response.headers["location"], stop_before=f"{app.url}/signed-out")
    ended.redirect_to(f"{app.url}/signed-out")
    # The IdP session is gone too: the next login shows the login form again.
    login(session, f"{app.url}/", "frank")


@pytest.mark.browser
def test_headless_chromium_logs_in(app, browser):
    browser.get(f"{app.url}/dashboard")
    browser.dev_login("grace")
    browser.wait_for_url(f"{app.url}/dashboard")
    seen = json.loads(browser.text())
    assert seen["headers"]["x-user-email"] == "grace@example.test"
