"""The IdP failing, through a real Envoy: discovery, JWKS and the token endpoint
(code exchange and refresh) refuse connections, hang past the timeout, answer 500,
HTML, truncated JSON or a huge body, or the whole IdP goes down and comes back.

What must hold while it fails: sessions and cached keys keep working, new logins
end in a clear error page within the timeout (never a hang), API calls get the
usual 401 texts; and after recovery everything works again without restarting
Envoy. The filter's counters (`wasmcustom.oidc_filter.*` in Envoy's /stats) must
show the failures. test_jwks_fetching.py already covers a bare JWKS server that is
down, slow, 500 or garbage; test_oidc_hostile_idp.py token replies that are 500,
not JSON, huge or slow (without timing, recovery or counters).
"""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness.client import assert_denied, get, upstream_view
from harness.envoy import Listener
from harness.fake_idp import DISCOVERY, FAULTS, HANG, JWKS, TOKEN, FakeIdp, json_reply, now
from harness.login import SAME_ORIGIN, follow, login
from harness.oidc_app import CLIENT_ID, App, html_session, oidc_config, set_cookies, upstream
from harness.tokens import generate_key, sign
from harness.waiting import wait_until

KEY = generate_key("RS256", kid="faults-1")
# The filter's timeout for every IdP call in this module. 1 s would do on an idle
# machine; on a loaded 2-core one the scripted IdP itself sometimes takes that long.
TIMEOUT_SECONDS = 2
# Envoy's timers (1 s idle tick) and a loaded machine: generous, but below a hang
# (the faulty IdP hangs for HANG_SECONDS).
MARGIN_SECONDS = 4
HANG_SECONDS = 12
REFRESH_SECONDS = 2  # jwksCacheDuration: discovery and keys are refetched this often
# How long a failure or a recovery may take to show: the next refresh, its timeout,
# the ~1 s copy of the counters to Envoy, and a loaded machine.
SETTLE_SECONDS = REFRESH_SECONDS + TIMEOUT_SECONDS + 8
WORKER_SYNC_SECONDS = 1.5  # other workers adopt a fetched key set within their 1 s tick
CLIENT_TIMEOUT = 15  # what a hang would run into
BACKOFF_SECONDS = 1.2  # a session's first refresh backoff (1 s) and a margin
NO_KEY = "Jwks doesn't have key to match kid or alg from Jwt"
UNREACHABLE = "could not be reached"
STAT_PREFIX = "wasmcustom.oidc_filter."


# ----- Envoy stats -----
def stats(envoy) -> dict[str, int]:
    """The filter's counters from Envoy's admin, by name without the prefix."""
    reply = requests.get(f"{envoy.admin_url}/stats", params={"filter": "oidc_filter"}, timeout=5)
    values = {}
    for line in reply.text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith(STAT_PREFIX) and value.strip().isdigit():
            values[name.removeprefix(STAT_PREFIX)] = int(value)
    return values


def wait_for_stat_increase(envoy, name: str, before: dict[str, int], timeout: float = 8.0, at_least: int = 1) -> int:
    """Wait until counter `name` rose by `at_least` over its value in `before`; the
    filter copies its counts to Envoy on a ~1 s timer. Returns the increase."""
    deadline = time.monotonic() + timeout
    while True:
        increase = stats(envoy).get(name, 0) - before.get(name, 0)
        if increase >= at_least or time.monotonic() > deadline:
            return increase
        time.sleep(0.2)


def assert_stat_increases(envoy, name: str, before: dict[str, int], timeout: float = 8.0) -> None:
    assert wait_for_stat_increase(envoy, name, before, timeout) > 0, f"{name} did not move: {stats(envoy)}"




def timed(call):
    """(result, seconds) of `call()`."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


# ----- the scripted IdP -----
def id_token(issuer: str, lifetime: int, nonce: str | None = None, key=KEY) -> str:
    claims = {"iss": issuer, "aud": CLIENT_ID, "sub": "olivia", "email": "olivia@example.test"}
    claims |= {"iat": now(), "exp": now() + lifetime} | ({"nonce": nonce} if nonce else {})
    return sign({}, claims, key)


def scripted_token_endpoint(idp: FakeIdp):
    """A well-behaved token endpoint. The test's "code" is `<lifetime>.<nonce>`, so
    the reply needs no state: the ID token lives `lifetime` seconds and carries the
    login's nonce. Refreshes return a 5-minute ID token without nonce."""

    def reply(form: dict):
        if form.get("grant_type") == "refresh_token":
            return json_reply({"access_token": "a2", "token_type": "Bearer", "refresh_token": form["refresh_token"],
                               "id_token": id_token(idp.issuer, 300, key=idp.key)})
        lifetime, _, nonce = form.get("code", "").partition(".")
        return json_reply({"access_token": "a", "token_type": "Bearer", "refresh_token": "refresh-me",
                           "id_token": id_token(idp.issuer, int(lifetime), nonce, key=idp.key)})

    return reply


@pytest.fixture(scope="module")
def idp(module_stack):
    fake = module_stack.own(FakeIdp(KEY, hang_seconds=HANG_SECONDS).start())
    fake.reply = scripted_token_endpoint(fake)
    return fake


@pytest.fixture(scope="module")
def envoy(module_stack, idp):
    """One Envoy for the module: every IdP call times out after TIMEOUT_SECONDS, keys
    are refreshed every REFRESH_SECONDS (and after a failure, retried as often)."""
    config = oidc_config(
        idp,
        {"timeout": f"{TIMEOUT_SECONDS}s"},
        jwtRules=[{"issuer": idp.issuer, "audiences": [CLIENT_ID], "timeout": f"{TIMEOUT_SECONDS}s"}],
        clockSkewSeconds=0,
        jwksCacheDuration=f"{REFRESH_SECONDS}s",
        jwksMinRefetchInterval="1s",
    )
    return module_stack.envoy(Listener("app", config), clusters={"idp": idp.port})


@pytest.fixture
def healthy(idp, envoy):
    """Every test starts with a working IdP whose keys the filter holds, and leaves it so."""
    idp.heal()
    idp.come_back()
    if idp.keys != [KEY]:
        idp.keys = [KEY]
        # A worker may still hold an older set for a moment: let the periodic
        # refresh fetch KEY back and every worker adopt it.
        time.sleep(REFRESH_SECONDS + WORKER_SYNC_SECONDS)
    assert wait_until(lambda: bearer_works(envoy, KEY), timeout=SETTLE_SECONDS), "the filter has no keys"
    yield
    idp.heal()
    idp.come_back()


def url(envoy, path: str = "/") -> str:
    return envoy.url() + path


def bearer_works(envoy, key) -> bool:
    token = id_token(envoy_issuer(envoy), 300, key=key)
    return get(envoy.url(), "/api", token=token).status_code == 200


def envoy_issuer(envoy) -> str:
    (listener,) = envoy.listeners.values()
    return listener.plugin_config["oidc"]["issuer"]


# ----- the browser's side -----
def start_login(envoy) -> tuple[requests.Session, str, str]:
    """A navigation without session: the browser's session, the state and the nonce."""
    browser = html_session()
    response = browser.get(url(envoy, "/private"), allow_redirects=False, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 302, f"{response.status_code}: {response.text[:200]}"
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return browser, query["state"][0], query["nonce"][0]


def callback(envoy, browser, state: str, nonce: str, lifetime: int = 300) -> requests.Response:
    return browser.get(
        url(envoy, f"/oauth2/callback?code={lifetime}.{nonce}&state={state}"),
        allow_redirects=False,
        timeout=CLIENT_TIMEOUT,
    )


def logged_in_browser(envoy, lifetime: int = 300) -> requests.Session:
    browser, state, nonce = start_login(envoy)
    response = callback(envoy, browser, state, nonce, lifetime)
    assert (response.status_code, response.headers.get("location")) == (302, "/private"), response.text[:300]
    return browser


def with_cookies(cookies) -> requests.Session:
    """A fresh browser holding a copy of `cookies` (what the user's browser had)."""
    browser = html_session()
    browser.cookies.update(cookies)
    return browser


def assert_session_page(browser: requests.Session, envoy) -> None:
    seen = upstream(browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT))
    assert seen["headers"]["x-user-email"] == "olivia@example.test"


def page_status(browser: requests.Session, envoy) -> int:
    return browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT).status_code


def assert_error_page(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text
    assert not any(c.startswith("oidc_session=") and "Max-Age=0" not in c for c in set_cookies(response))


def api_call(envoy, cookies=None) -> requests.Response:
    return requests.get(
        url(envoy, "/api"), cookies=cookies, headers={"Accept": "application/json"}, allow_redirects=False,
        timeout=CLIENT_TIMEOUT,
    )


def assert_bounded(elapsed: float, what: str) -> None:
    assert elapsed < TIMEOUT_SECONDS + MARGIN_SECONDS, f"{what} took {elapsed:.1f}s with a {TIMEOUT_SECONDS}s timeout"


# ----- discovery and JWKS -----
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("endpoint", [DISCOVERY, JWKS])
def test_failing_key_refreshes_keep_sessions_and_cached_keys(idp, envoy, healthy, endpoint, fault):
    browser = logged_in_browser(envoy)
    before = stats(envoy)
    idp.set_fault(endpoint, fault)
    # A periodic refresh runs into the fault and is counted as failed.
    failed = "discovery_fetch.failed" if endpoint == DISCOVERY else "jwks_fetch.failed"
    assert_stat_increases(envoy, failed, before, timeout=SETTLE_SECONDS)
    # The session and a token signed with a cached key still work, at once.
    (_, elapsed) = timed(lambda: assert_session_page(browser, envoy))
    assert elapsed < 1.0, f"a session request waited {elapsed:.1f}s for the failing IdP"
    (response, elapsed) = timed(lambda: get(envoy.url(), "/api", token=id_token(idp.issuer, 300)))
    upstream_view(response)
    assert elapsed < 1.0
    # A login still starts (the endpoints are cached); an API call without
    # credentials gets the usual 401; a token with an unknown key is refused
    # within the timeout (its refetch fails).
    start_login(envoy)
    assert_denied(api_call(envoy), 401, "Jwt is missing")
    stranger = generate_key("RS256", kid="stranger")
    (response, elapsed) = timed(lambda: get(envoy.url(), "/api", token=id_token(idp.issuer, 300, key=stranger)))
    assert_denied(response, 401, NO_KEY)
    assert_bounded(elapsed, "an unknown kid during the outage")
    # Recovery: the next refresh succeeds again, without restarting Envoy.
    before = stats(envoy)
    idp.heal()
    succeeded = "discovery_fetch.succeeded" if endpoint == DISCOVERY else "jwks_fetch.succeeded"
    assert_stat_increases(envoy, succeeded, before, timeout=SETTLE_SECONDS)
    assert_session_page(browser, envoy)


def test_keys_rotated_during_an_outage_are_fetched_after_recovery(idp, envoy, healthy):
    before = stats(envoy)
    idp.go_down()
    # Discovery comes first in each refresh: it is what fails.
    assert_stat_increases(envoy, "discovery_fetch.failed", before, timeout=SETTLE_SECONDS)
    new_key = generate_key("RS256", kid="faults-2")
    idp.keys = [new_key, KEY]
    assert not bearer_works(envoy, new_key)
    idp.come_back()
    # Picked up by the periodic refresh or the unknown-kid refetch.
    assert wait_until(lambda: bearer_works(envoy, new_key), timeout=SETTLE_SECONDS)
    assert bearer_works(envoy, KEY)
    # A login whose ID token is signed by the new key completes.
    idp.keys = [new_key]
    assert wait_until(lambda: not bearer_works(envoy, KEY), timeout=SETTLE_SECONDS)
    assert_session_page(logged_in_browser(envoy), envoy)


# ----- the whole IdP down, then back -----
def test_an_idp_that_is_down_then_back(idp, envoy, healthy):
    browser = logged_in_browser(envoy)
    browser_to_refresh = logged_in_browser(envoy, lifetime=1)
    pending, state, nonce = start_login(envoy)
    time.sleep(1.5)  # the short session's tokens expire (clockSkewSeconds 0)
    before = stats(envoy)
    idp.go_down()
    assert_stat_increases(envoy, "discovery_fetch.failed", before, timeout=SETTLE_SECONDS)
    # Sessions and cached keys work.
    assert_session_page(browser, envoy)
    upstream_view(get(envoy.url(), "/api", token=id_token(idp.issuer, 300)))
    # The login in progress ends in a clear page, within the timeout.
    (response, elapsed) = timed(lambda: callback(envoy, pending, state, nonce))
    assert_error_page(response, 502, UNREACHABLE)
    assert_bounded(elapsed, "the callback")
    assert_stat_increases(envoy, "login.failed", before)
    # The expired session cannot be refreshed: an API call gets 401, a navigation
    # is sent to log in again.
    saved = browser_to_refresh.cookies.copy()
    (response, elapsed) = timed(lambda: api_call(envoy, saved))
    assert_denied(response, 401, "Jwt is missing")
    assert_bounded(elapsed, "the refresh")
    navigation = with_cookies(saved).get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT)
    assert navigation.status_code == 302 and navigation.headers["location"].startswith(f"{idp.issuer}/auth"), (navigation.status_code, navigation.headers.get("location"), navigation.text[:300])
    assert_stat_increases(envoy, "refresh.failed", before)
    # Back: a new login completes and the expired session is refreshed.
    before = stats(envoy)
    idp.come_back()
    assert_session_page(logged_in_browser(envoy), envoy)
    assert_stat_increases(envoy, "login.completed", before)
    refreshed = with_cookies(saved)
    assert_session_page(refreshed, envoy)
    assert_stat_increases(envoy, "refresh.succeeded", before)


# ----- the token endpoint -----
@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_code_exchange_gives_a_page_in_bounded_time(idp, envoy, healthy, fault):
    browser, state, nonce = start_login(envoy)
    before = stats(envoy)
    idp.set_fault(TOKEN, fault)
    (response, elapsed) = timed(lambda: callback(envoy, browser, state, nonce))
    assert_error_page(response, 502, UNREACHABLE)
    assert_bounded(elapsed, "the callback")
    assert_stat_increases(envoy, "login.failed", before)
    # Recovery: the user starts again and gets in.
    idp.heal()
    assert_session_page(logged_in_browser(envoy), envoy)


@pytest.fixture
def expired_session(envoy, idp):
    """Cookies of a session whose tokens have expired but that holds a refresh token.
    One per test: a worker remembers a session's refresh (its result, its backoff)."""
    idp.heal()
    browser = logged_in_browser(envoy, lifetime=1)
    time.sleep(1.5)
    return browser.cookies.copy()


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_refresh_sends_to_login_in_bounded_time(idp, envoy, healthy, expired_session, fault):
    before = stats(envoy)
    calls = idp.count(TOKEN)
    idp.set_fault(TOKEN, fault)
    (response, elapsed) = timed(lambda: api_call(envoy, expired_session))
    assert_denied(response, 401, "Jwt is missing")
    assert_bounded(elapsed, "the refresh")
    # The user's browser keeps whatever cookies the filter leaves it.
    browser = with_cookies(expired_session)
    (navigation, elapsed) = timed(lambda: browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT))
    assert navigation.status_code == 302 and navigation.headers["location"].startswith(f"{idp.issuer}/auth")
    assert_bounded(elapsed, "the refresh")
    # The session backs off after a failure: the navigation did not ask the IdP again
    # (unless it reached the other worker, which has its own memory).
    assert wait_for_stat_increase(envoy, "refresh.failed", before, at_least=1) >= 1
    assert idp.count(TOKEN) - calls <= 2
    # The IdP did not refuse the refresh token, it failed: the session survives and
    # is renewed once the IdP is back.
    assert "oidc_session" in browser.cookies, "a failing IdP ended the session"
    before = stats(envoy)
    idp.heal()
    time.sleep(BACKOFF_SECONDS)
    renewed = browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT)
    assert upstream(renewed)["headers"]["x-user-email"] == "olivia@example.test"
    assert any(c.startswith("oidc_session=") and "Max-Age=0" not in c for c in set_cookies(renewed))
    assert_stat_increases(envoy, "refresh.succeeded", before)


def test_a_refused_refresh_ends_the_session(idp, envoy, healthy, expired_session):
    """The counterpart: 400 invalid_grant (revoked or expired refresh token) clears the cookie."""
    idp.reply = lambda form: json_reply({"error": "invalid_grant"}, status=400)
    try:
        browser = with_cookies(expired_session)
        navigation = browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT)
        assert navigation.status_code == 302
        assert "oidc_session" not in browser.cookies
    finally:
        idp.reply = scripted_token_endpoint(idp)


def test_a_refresh_signed_with_rotated_keys_keeps_the_session(stack):
    """The IdP rotated its keys and the refreshed ID token is signed with the new one,
    which the filter has not fetched yet (long cache): the refresh fails, but the
    session stays, the keys are refetched at once, and the next request refreshes."""
    fake = stack.own(FakeIdp(KEY).start())
    fake.reply = scripted_token_endpoint(fake)
    config = oidc_config(
        fake, {"timeout": f"{TIMEOUT_SECONDS}s"},
        jwtRules=[{"issuer": fake.issuer, "audiences": [CLIENT_ID], "timeout": f"{TIMEOUT_SECONDS}s"}],
        clockSkewSeconds=0, jwksCacheDuration="600s", jwksMinRefetchInterval="1s",
    )
    envoy = stack.envoy(Listener("app", config), clusters={"idp": fake.port})
    browser = logged_in_browser(envoy, lifetime=1)
    time.sleep(1.5)  # the tokens expire, and the start-up fetch is over 1 s old
    before = stats(envoy)
    fake.keys = [generate_key("RS256", kid="faults-rotated")]
    first = browser.get(url(envoy, "/page"), allow_redirects=False, timeout=CLIENT_TIMEOUT)
    assert first.status_code == 302
    assert "oidc_session" in browser.cookies, "a key rotation ended the session"
    assert_stat_increases(envoy, "refresh.failed", before)
    assert wait_until(lambda: page_status(browser, envoy) == 200, timeout=SETTLE_SECONDS)
    assert_session_page(browser, envoy)
    assert_stat_increases(envoy, "refresh.succeeded", before)


# ----- before the first discovery -----
@pytest.mark.parametrize("fault", [HANG, "down"])
def test_an_idp_failing_from_start_up_gives_a_page_then_recovers(stack, fault):
    fake = stack.own(FakeIdp(KEY, hang_seconds=HANG_SECONDS).start())
    fake.reply = scripted_token_endpoint(fake)
    if fault == "down":
        fake.go_down()
    else:
        fake.set_fault(DISCOVERY, fault)
    config = oidc_config(
        fake, {"timeout": f"{TIMEOUT_SECONDS}s"},
        jwtRules=[{"issuer": fake.issuer, "audiences": [CLIENT_ID], "timeout": f"{TIMEOUT_SECONDS}s"}],
        jwksMinRefetchInterval="1s",
    )
    envoy = stack.envoy(Listener("app", config), clusters={"idp": fake.port})
    # No endpoints known: a navigation gets a page, an API call and a bearer
    # token the usual 401s, all within the timeout.
    (response, elapsed) = timed(lambda: html_session().get(url(envoy, "/"), allow_redirects=False, timeout=CLIENT_TIMEOUT))
    assert_error_page(response, 502, UNREACHABLE)
    assert_bounded(elapsed, "a navigation")
    (response, elapsed) = timed(lambda: get(envoy.url(), "/api", token=id_token(fake.issuer, 300)))
    assert_denied(response, 401, "Jwks remote fetch is failed")
    assert_bounded(elapsed, "a bearer request")
    assert_denied(api_call(envoy), 401, "Jwt is missing")
    assert_stat_increases(envoy, "discovery_fetch.failed", {})
    # Recovery without a restart: discovery is retried (every second without keys).
    fake.come_back()
    fake.heal()
    assert wait_until(lambda: bearer_works(envoy, KEY), timeout=SETTLE_SECONDS)
    assert_session_page(logged_in_browser(envoy), envoy)


# ----- the real IdP, cut off from Envoy -----
def test_real_idp_sessions_survive_an_outage_and_logins_recover(stack):
    app = App(
        stack,
        oidc_fields={"timeout": f"{TIMEOUT_SECONDS}s", "forwardToken": {"token": "id_token", "header": "authorization"}},
        top_level={"jwksCacheDuration": f"{REFRESH_SECONDS}s", "jwksMinRefetchInterval": "1s"},
        idp_relay=True,
    )
    browser = html_session()
    seen = upstream(login(browser, f"{app.url}/", "paula").response)
    bearer = seen["headers"]["authorization"].removeprefix("Bearer ")
    before = stats(app.envoy)
    app.relay.switch_off()
    assert_stat_increases(app.envoy, "discovery_fetch.failed", before, timeout=SETTLE_SECONDS)
    # The session and the cached keys keep working.
    assert upstream(browser.get(f"{app.url}/during", allow_redirects=False))["headers"]["x-user-email"] == (
        "paula@example.test"
    )
    upstream_view(get(app.url, "/api", token=bearer))
    # A new login gets through the IdP's pages (the browser still reaches it), but
    # the code exchange cannot: a clear page, within the timeout.
    newcomer = html_session()
    result = follow(newcomer, f"{app.url}/", username="quinn", stop_before=f"{app.url}/oauth2/callback")
    (response, elapsed) = timed(lambda: newcomer.get(result.hops[-1].location, allow_redirects=False, timeout=CLIENT_TIMEOUT))
    assert_error_page(response, 502, UNREACHABLE)
    assert_bounded(elapsed, "the callback")
    assert_stat_increases(app.envoy, "login.failed", before)
    # Logging out needs no call from Envoy: it still answers at once.
    logout = newcomer.get(f"{app.url}/oauth2/logout", headers=SAME_ORIGIN, allow_redirects=False, timeout=CLIENT_TIMEOUT)
    assert logout.status_code == 302 and urlsplit(logout.headers["location"]).path.endswith("/session/end")
    # Back: once the filter reaches the IdP again (its next discovery fetch, within
    # one refresh period), a new login completes without restarting Envoy, and the
    # VM is healthy. (A login at the very moment the relay listened again once got
    # Envoy's 503 for the token call on a loaded machine.)
    before = stats(app.envoy)
    app.relay.switch_on()
    assert_stat_increases(app.envoy, "discovery_fetch.succeeded", before, timeout=SETTLE_SECONDS)
    again = login(html_session(), f"{app.url}/", "quinn")
    assert upstream(again.response)["headers"]["x-user-email"] == "quinn@example.test"
    assert_stat_increases(app.envoy, "login.completed", before)
    assert upstream(browser.get(f"{app.url}/after", allow_redirects=False))["headers"]["x-user-email"] == (
        "paula@example.test"
    )
    assert app.envoy.exit_code() is None
    assert_vm_never_failed(app.envoy)


def test_envoy_and_its_vm_are_healthy_at_the_end(idp, envoy, healthy):
    """After every fault above, one Envoy still serves: no crash, no stuck VM."""
    assert envoy.exit_code() is None
    assert_session_page(logged_in_browser(envoy), envoy)
    upstream_view(get(envoy.url(), "/api", token=id_token(idp.issuer, 300)))
    assert_vm_never_failed(envoy)


def assert_vm_never_failed(envoy) -> None:
    """No trap, panic or failed VM in Envoy's log (what a crashing filter leaves there)."""
    signs = ("Uncaught", "RuntimeError", "VM failed", "panicked")
    failures = [line for line in envoy.log_text().splitlines() if any(sign in line for sign in signs)]
    assert not failures, failures[:5]
