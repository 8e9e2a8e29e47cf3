"""A login callback sent many times (a replay flood, a double submit or a reload
during the exchange), through a real Envoy and the real IdP.

Each code exchange is a call to the token endpoint with the client's credentials
that holds a worker's memory until it is answered. The filter exchanges a state's
code once per worker: the same callback meanwhile waits for the first exchange and
is then sent back where the login started, and later replays (while the login
cookie lasts) get the same without a call. Envoy runs one worker here, so "once"
is exactly one call; the relay in front of the IdP holds each call of Envoy's for
a few seconds, so that the first exchange is still in flight when the replays come.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.login import login
from harness.oidc_app import App, html_session, set_cookies, upstream
from harness.stats import wait_stat

REPLAYS = 20
# Longer than it takes to send the replays, well under the filter's 5 s timeout.
TOKEN_CALL_DELAY = 3.0
CLIENT_TIMEOUT = 15
RETURN_PATH = "/replayed?x=1"


def code_exchanges(idp) -> list[dict]:
    """Every call the token endpoint got for an authorization code, good or refused
    (a reused code also logs `grant.revoked`, which is no call of its own)."""
    return [
        e for e in idp.events()
        if e.get("grant_type") == "authorization_code" and e["event"] in ("grant.success", "grant.error")
    ]


def test_a_replayed_callback_reaches_the_token_endpoint_once(stack):
    app = App(stack, idp_relay=True, envoy_options={"concurrency": 1})
    browser = html_session()
    started = login(browser, f"{app.url}{RETURN_PATH}", "rita", stop_before=f"{app.url}/oauth2/callback")
    callback = started.redirect_to(f"{app.url}/oauth2/callback").location
    # The browser's cookies, login cookie included, on every copy of the callback.
    headers = {
        "Accept": "text/html",
        "Cookie": "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies),
    }

    def send(_=None) -> requests.Response:
        return requests.get(callback, headers=headers, allow_redirects=False, timeout=CLIENT_TIMEOUT)

    app.idp.clear_events()
    app.relay.delay_seconds = TOKEN_CALL_DELAY
    with ThreadPoolExecutor(max_workers=REPLAYS + 1) as pool:
        first = pool.submit(send)
        time.sleep(0.5)  # the first exchange is dispatched and held by the relay
        replays = list(pool.map(send, range(REPLAYS)))
        first = first.result()
    app.relay.delay_seconds = 0.0
    later = send()
    calls = code_exchanges(app.idp)

    assert len(calls) == 1, f"{len(calls)} token endpoint calls for one state: {calls}"
    assert calls[0]["event"] == "grant.success"
    # The first one logs in and lands where the login started.
    assert first.status_code == 302 and first.headers["location"] == RETURN_PATH, first.text[:300]
    session_cookies = [c for c in set_cookies(first) if c.startswith("oidc_session=") and "Max-Age=0" not in c]
    assert session_cookies, set_cookies(first)
    # Every replay is answered by the filter: sent back there too, with no session
    # of its own, no 5xx, never passed to the upstream.
    for replay in [*replays, later]:
        assert replay.status_code == 302, f"{replay.status_code}: {replay.text[:300]}"
        assert replay.headers["location"] == RETURN_PATH
        assert not [c for c in set_cookies(replay) if c.startswith("oidc_session")], set_cookies(replay)
    # Back there with the first one's session, the user is in.
    signed_in = requests.get(
        f"{app.url}{RETURN_PATH}",
        headers={"Accept": "text/html", "Cookie": session_cookies[0].split(";", 1)[0]},
        allow_redirects=False,
        timeout=CLIENT_TIMEOUT,
    )
    assert upstream(signed_in)["headers"]["x-user-email"] == "rita@example.test"
    counted = wait_stat(app.envoy.admin_url, "wasmcustom.oidc_filter.login.replayed", REPLAYS + 1)
    assert counted == REPLAYS + 1
