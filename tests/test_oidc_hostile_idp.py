"""What the filter does with token endpoint replies a real IdP would never send.

A scripted IdP (harness.fake_idp) answers the code exchange; every reply below must
end in a clear error page and no session, never a hang, a crash or a session.
"""

from urllib.parse import parse_qs, urlsplit

import pytest

from harness.envoy import Listener
from harness.fake_idp import FakeIdp, json_reply, now
from harness.oidc_app import CLIENT_ID, html_session, oidc_config, set_cookies
from harness.tokens import generate_key, sign, unsigned_token

KEY = generate_key("RS256", kid="fake-idp")
IMPOSTOR = generate_key("RS256", kid="fake-idp")


@pytest.fixture(scope="module")
def idp(module_stack):
    return module_stack.own(FakeIdp(KEY).start())


@pytest.fixture(scope="module")
def app_url(module_stack, idp):
    config = oidc_config(idp, {"timeout": "1s"})
    listener = Listener("app", config)
    module_stack.envoy(listener, clusters={"idp": idp.port})
    return f"http://127.0.0.1:{listener.port}"


def id_token(issuer: str, nonce: str, key=KEY, **changes) -> str:
    claims = {"iss": issuer, "aud": CLIENT_ID, "sub": "mallory", "nonce": nonce, "iat": now(), "exp": now() + 300}
    claims.update(changes)
    return sign({}, {k: v for k, v in claims.items() if v is not None}, key)


def start_login(app_url: str):
    """The browser's first visit: returns its session, the state and the nonce sent to the IdP."""
    session = html_session()
    response = session.get(f"{app_url}/private", allow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return session, query["state"][0], query["nonce"][0]


def finish(app_url, session, state):
    return session.get(f"{app_url}/oauth2/callback?code=c0de&state={state}", allow_redirects=False, timeout=30)


def test_a_good_reply_logs_in(app_url, idp):
    session, state, nonce = start_login(app_url)
    idp.reply = lambda form: json_reply({"access_token": "a", "token_type": "Bearer", "id_token": id_token(idp.issuer, nonce)})
    response = finish(app_url, session, state)
    assert (response.status_code, response.headers["location"]) == (302, "/private")
    request = idp.token_requests[-1]
    assert request["form"]["grant_type"] == "authorization_code"
    assert request["form"]["code_verifier"]
    assert request["authorization"].startswith("Basic ")


HOSTILE_ID_TOKENS = {
    "other-audience": lambda issuer, nonce: id_token(issuer, nonce, aud="someone-else"),
    "several-audiences-no-azp": lambda issuer, nonce: id_token(issuer, nonce, aud=[CLIENT_ID, "other"]),
    "other-azp": lambda issuer, nonce: id_token(issuer, nonce, azp="other"),
    "other-issuer": lambda issuer, nonce: id_token(issuer, nonce, iss="http://evil.test"),
    "wrong-nonce": lambda issuer, nonce: id_token(issuer, nonce + "x"),
    "no-nonce": lambda issuer, nonce: id_token(issuer, None),
    "expired": lambda issuer, nonce: id_token(issuer, nonce, iat=now() - 1000, exp=now() - 500),
    "unknown-key": lambda issuer, nonce: id_token(issuer, nonce, key=IMPOSTOR),
    "alg-none": lambda issuer, nonce: unsigned_token({"iss": issuer, "aud": CLIENT_ID, "nonce": nonce, "exp": now() + 60}),
    "not-a-jwt": lambda issuer, nonce: "definitely-not-a-jwt",
}


@pytest.mark.parametrize("make_token", HOSTILE_ID_TOKENS.values(), ids=HOSTILE_ID_TOKENS.keys())
def test_hostile_id_tokens_are_refused(app_url, idp, make_token):
    session, state, nonce = start_login(app_url)
    token = make_token(idp.issuer, nonce)
    idp.reply = lambda form: json_reply({"access_token": "a", "token_type": "Bearer", "id_token": token})
    response = finish(app_url, session, state)
    assert response.status_code == 401
    assert "text/html" in response.headers["content-type"]
    assert not any(c.startswith("oidc_session=") and "Max-Age=0" not in c for c in set_cookies(response))


BROKEN_REPLIES = {
    "server-error": (lambda nonce: (500, b"upstream exploded", 0), 502),
    "not-json": (lambda nonce: (200, b"<html>oops</html>", 0), 502),
    "no-id-token": (lambda nonce: json_reply({"access_token": "a", "token_type": "Bearer"}), 502),
    "not-bearer": (lambda nonce: json_reply({"access_token": "a", "token_type": "MAC"}), 502),
    "invalid-grant": (lambda nonce: json_reply({"error": "invalid_grant"}, status=400), 401),
    "huge-body": (lambda nonce: (200, b'{"pad":"' + b"x" * 200_000 + b'"}', 0), 502),
    "slower-than-timeout": (lambda nonce: json_reply({"access_token": "a"}, delay=3), 502),
}


@pytest.mark.parametrize("reply_and_status", BROKEN_REPLIES.values(), ids=BROKEN_REPLIES.keys())
def test_broken_replies_give_a_page_not_a_hang(app_url, idp, reply_and_status):
    make_reply, status = reply_and_status
    session, state, nonce = start_login(app_url)
    idp.reply = lambda form: make_reply(nonce)
    response = finish(app_url, session, state)
    assert response.status_code == status
    assert "text/html" in response.headers["content-type"]
