"""Hardening through Envoy: session refresh under concurrency and outages (a
scripted IdP counts token endpoint calls), what reaches the upstream on every
path (the filter's cookies, underscore spellings of identity headers), and
logout only from our own origin."""

import threading
import time

import pytest
import requests

from harness.client import get
from harness.envoy import Listener
from harness.fake_idp import STATUS_500, TOKEN, FakeIdp, json_reply
from harness.login import SAME_ORIGIN, login
from harness.oidc_app import CLIENT_ID, App, html_session, oidc_config, set_cookies, upstream
from harness.tokens import generate_key, sign
from test_idp_faults import callback, id_token, start_login

KEY = generate_key("RS256", kid="hardening-1")
CLIENT_TIMEOUT = 15


def refreshes(idp: FakeIdp) -> int:
    return sum(1 for request in idp.token_requests if request["form"].get("grant_type") == "refresh_token")


def token_endpoint(idp: FakeIdp, refresh_reply):
    """Logins as in test_idp_faults (code `<lifetime>.<nonce>`); refreshes answered by
    `refresh_reply(form)`."""

    def reply(form: dict):
        if form.get("grant_type") == "refresh_token":
            return refresh_reply(form)
        lifetime, _, nonce = form.get("code", "").partition(".")
        return json_reply({"access_token": "a", "token_type": "Bearer", "refresh_token": "refresh-me",
                           "id_token": id_token(idp.issuer, int(lifetime), nonce, key=idp.key)})

    return reply


@pytest.fixture
def fake_app(stack):
    """A scripted IdP and one Envoy worker (so "one refresh per worker" is one)."""
    idp = stack.own(FakeIdp(KEY).start())
    config = oidc_config(idp, {"timeout": "3s"}, jwtRules=[{"issuer": idp.issuer, "audiences": [CLIENT_ID]}],
                         clockSkewSeconds=0)
    envoy = stack.envoy(Listener("app", config), clusters={"idp": idp.port}, concurrency=1)
    return idp, envoy


def expired_session(envoy) -> requests.Session:
    """A browser whose session's ID token lived 1 s and has expired."""
    browser, state, nonce = start_login(envoy)
    response = callback(envoy, browser, state, nonce, lifetime=1)
    assert response.status_code == 302, response.text[:300]
    time.sleep(2.2)
    return browser


def page(envoy, browser, path="/page", **headers):
    return browser.get(envoy.url() + path, headers=headers, allow_redirects=False, timeout=CLIENT_TIMEOUT)


def test_a_refresh_without_id_token_gives_the_session_a_new_expiry(fake_app):
    idp, envoy = fake_app
    idp.reply = token_endpoint(idp, lambda form: json_reply({"access_token": "a2", "token_type": "Bearer",
                                                             "expires_in": 120, "refresh_token": "refresh-me"}))
    browser = expired_session(envoy)
    for _ in range(5):
        assert upstream(page(envoy, browser))["headers"]["x-user-email"] == "olivia@example.test"
    assert refreshes(idp) == 1, "one refresh, then the renewed session lives `expires_in`"


def test_parallel_requests_of_one_expired_session_share_one_refresh(fake_app):
    idp, envoy = fake_app
    # A slow IdP that rotates refresh tokens strictly: a second use is invalid_grant.
    used = set()

    def rotate(form):
        if form["refresh_token"] in used:
            return json_reply({"error": "invalid_grant"}, status=400)
        used.add(form["refresh_token"])
        return json_reply({"access_token": "a2", "token_type": "Bearer", "refresh_token": f"r{len(used)}",
                           "id_token": id_token(idp.issuer, 300, key=idp.key)}, delay=1.0)

    idp.reply = token_endpoint(idp, rotate)
    cookies = expired_session(envoy).cookies
    results = []

    def one():
        browser = html_session()
        browser.cookies.update(cookies)
        results.append(page(envoy, browser).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    assert results == [200] * 4
    assert refreshes(idp) == 1


def test_an_idp_outage_backs_off_per_session(fake_app):
    idp, envoy = fake_app
    idp.reply = token_endpoint(idp, lambda form: json_reply({"access_token": "a2", "token_type": "Bearer"}))
    browser = expired_session(envoy)
    idp.set_fault(TOKEN, STATUS_500)
    before = refreshes(idp)
    started = time.monotonic()
    statuses = [page(envoy, browser, accept="application/json").status_code for _ in range(6)]
    elapsed = time.monotonic() - started
    assert statuses == [401] * 6
    # Within the first second of backoff only the first request asked the IdP.
    if elapsed < 1.0:
        assert refreshes(idp) - before == 1, idp.token_requests[before:]
    else:
        assert refreshes(idp) - before <= 2
    # After the backoff, and with the IdP back, the session is renewed.
    idp.set_fault(TOKEN, "ok")
    time.sleep(1.2)
    assert upstream(page(envoy, browser))["headers"]["x-user-email"] == "olivia@example.test"


def test_a_refreshed_id_token_for_another_subject_ends_the_session(fake_app):
    idp, envoy = fake_app

    def mallory(form):
        claims = {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "mallory", "email": "mallory@example.test",
                  "iat": int(time.time()), "exp": int(time.time()) + 300}
        return json_reply({"access_token": "a2", "token_type": "Bearer", "id_token": sign({}, claims, idp.key)})

    idp.reply = token_endpoint(idp, mallory)
    browser = expired_session(envoy)
    response = page(envoy, browser, accept="application/json")
    assert response.status_code == 401
    assert any(c.startswith("oidc_session=;") for c in set_cookies(response)), set_cookies(response)


# ----- what reaches the upstream -----
COOKIES = 'oidc_session=forged; app="quoted value"; oidc_session_1=x; oidc_session_login=y; theme=dark'


def test_filter_cookies_and_underscore_identity_headers_never_reach_the_upstream(stack):
    """Public path, CORS preflight and session (bearer requests: the pipeline's unit test)."""
    app = App(stack, top_level={"publicPaths": ["/healthz"]})
    browser = html_session()
    login(browser, f"{app.url}/", "alice")
    spoof = {"x_user_email": "spoof@evil.test", "x-user_email": "spoof@evil.test", "Cookie": COOKIES}
    preflight = {"Origin": "https://spa.test", "Access-Control-Request-Method": "GET"}
    responses = {
        "public": get(app.url, "/healthz", headers=spoof),
        "preflight": requests.options(app.url + "/api", headers=spoof | preflight, timeout=CLIENT_TIMEOUT),
    }
    session_cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies if c.name.startswith("oidc_session"))
    responses["session"] = get(app.url, "/api", headers=spoof | {"Cookie": f"app=1; {session_cookies}"})
    for path, response in responses.items():
        seen = upstream(response)["headers"]
        assert "x_user_email" not in seen and "x-user_email" not in seen, path
        assert "oidc_session" not in seen.get("cookie", ""), (path, seen.get("cookie"))
    assert upstream(responses["public"])["headers"]["cookie"] == 'app="quoted value"; theme=dark'
    assert upstream(responses["session"])["headers"]["cookie"] == "app=1"


# ----- logout -----
def test_only_a_same_origin_request_logs_out(stack):
    app = App(stack)
    browser = html_session()
    login(browser, f"{app.url}/", "alice")
    cross = browser.get(f"{app.url}/oauth2/logout", headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False)
    assert cross.status_code == 200
    assert '<form method="post" action="/oauth2/logout">' in cross.text
    assert not set_cookies(cross)
    upstream(browser.get(f"{app.url}/still-in", allow_redirects=False))
    no_signal = requests.get(f"{app.url}/oauth2/logout", cookies=browser.cookies, allow_redirects=False, timeout=10)
    assert no_signal.status_code == 200 and not set_cookies(no_signal)
    # The page's button: a POST from our origin.
    posted = browser.post(f"{app.url}/oauth2/logout", headers={"Origin": app.url}, allow_redirects=False)
    assert posted.status_code == 302
    assert any(c.startswith("oidc_session=;") for c in set_cookies(posted))
    same = html_session()
    login(same, f"{app.url}/", "alice")
    assert same.get(f"{app.url}/oauth2/logout", headers=SAME_ORIGIN, allow_redirects=False).status_code == 302
