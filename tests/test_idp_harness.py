"""The real-IdP harness checks itself: oidc-provider (tests/idp/server.mjs),
the non-browser login walker and headless Chromium, with the relying party's
part done by hand in Python. No Envoy and no filter here, so a failure in this
file is a harness (or IdP set-up) bug, not a filter bug.

Needs `npm ci --prefix tests/idp`; the browser test also tests/install-browser.sh.
"""

import time

import pytest
import requests

from harness import oidc
from harness.idp import Idp, IdpStartError, default_client
from harness.login import LoginError, follow, login, loopback_session, logout
from harness.oidc import Client, decode_jwt, public_key_from_jwk, validate_id_token, verify_jws
from harness.stack import Stack

pytestmark = pytest.mark.idp

POST_CLIENT_ID = "post-client"
ES256_CLIENT_ID = "es256-client"


@pytest.fixture(scope="module")
def env():
    """One IdP with three clients (basic/RS256, post, basic/ES256) and a callback server."""
    stack = Stack(name="idp-selfcheck")
    try:
        callback = stack.callback_server()
        clients = [
            default_client(callback.url, callback.logged_out_url),
            default_client(
                callback.url,
                callback.logged_out_url,
                client_id=POST_CLIENT_ID,
                client_secret="post-client-secret-0123456789abcdef",
                token_endpoint_auth_method="client_secret_post",
            ),
            default_client(
                callback.url,
                callback.logged_out_url,
                client_id=ES256_CLIENT_ID,
                client_secret="es256-client-secret-0123456789abcdef",
                extra={"id_token_signed_response_alg": "ES256"},
            ),
        ]
        idp = stack.idp(clients=clients, users={"carol": {"groups": ["admins", "users"], "name": "Carol C."}})
        yield stack, idp, callback
    finally:
        stack.close()


def client_named(idp: Idp, client_id: str) -> Client:
    return next(c for c in idp.clients if c.client_id == client_id)


def login_and_exchange(idp: Idp, callback, client: Client | None = None, username: str = "alice", **params):
    """Authorization request -> login walk -> callback -> token response JSON."""
    client = client or idp.client
    request = idp.auth_request(client=client, **params)
    session = requests.Session()
    flow = login(session, request.url, username)
    got = flow.callback_params(callback.url)
    assert got["state"] == request.state
    assert got["iss"] == idp.issuer  # RFC 9207 iss in the authorization response
    reply = idp.exchange_code(got["code"], request, client=client)
    assert reply.status_code == 200, reply.text
    return request, session, flow, reply.json()


# ----- discovery and keys -----
def test_discovery_document(env):
    _, idp, _ = env
    doc = requests.get(idp.discovery_url, timeout=5).json()
    assert idp.issuer == f"http://127.0.0.1:{idp.port}" and idp.authority == f"127.0.0.1:{idp.port}"
    assert doc["issuer"] == idp.issuer
    for name in ("authorization", "token", "userinfo", "end_session"):
        assert doc[f"{name}_endpoint"].startswith(idp.issuer + "/"), name
    assert doc["jwks_uri"] == idp.jwks_uri and doc["jwks_uri"].startswith(idp.issuer + "/")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "code" in doc["response_types_supported"]
    assert {"openid", "email", "profile", "offline_access"} <= set(doc["scopes_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert {"RS256", "ES256"} <= set(doc["id_token_signing_alg_values_supported"])
    assert {"sub", "email", "email_verified", "name", "groups"} <= set(doc["claims_supported"])


def test_jwks_publishes_rs256_and_es256_public_keys(env):
    _, idp, _ = env
    jwks = idp.jwks()
    by_alg = {k["alg"]: k for k in jwks["keys"]}
    assert set(by_alg) == {"RS256", "ES256"}
    for jwk in jwks["keys"]:
        assert jwk["use"] == "sig" and jwk["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private key material published"
    rsa_key = public_key_from_jwk(by_alg["RS256"])
    assert rsa_key.key_size == 2048
    ec_key = public_key_from_jwk(by_alg["ES256"])
    assert ec_key.curve.name == "secp256r1"


# ----- the code flow, by Python -----
def test_code_flow_with_pkce_client_secret_basic(env):
    _, idp, callback = env
    idp.clear_events()
    request, _, flow, tokens = login_and_exchange(idp, callback, username="carol")
    assert flow.pages() == ["login"]  # auto_consent: no consent page
    assert flow.response.status_code == 200 and flow.url.startswith(callback.url)
    assert set(tokens) >= {"access_token", "id_token", "refresh_token", "expires_in", "token_type"}
    assert tokens["token_type"].lower() == "bearer"
    assert set(tokens["scope"].split()) == {"openid", "email", "profile"}

    header, _ = decode_jwt(tokens["id_token"])
    assert header["alg"] == "RS256" and header["kid"] in {k["kid"] for k in idp.jwks()["keys"]}
    claims = idp.validate_id_token(tokens["id_token"], nonce=request.nonce)
    assert claims["sub"] == "carol"
    assert claims["email"] == "carol@example.test" and claims["email_verified"] is True
    assert claims["name"] == "Carol C." and claims["groups"] == ["admins", "users"]
    assert claims["aud"] == idp.client.client_id

    userinfo = idp.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == "carol"

    # A code is single-use.
    again = idp.exchange_code(flow.callback_params(callback.url)["code"], request)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    grants = [e["grant_type"] for e in idp.events("grant.success")]
    assert grants == ["authorization_code"]


def test_code_flow_with_client_secret_post(env):
    _, idp, callback = env
    client = client_named(idp, POST_CLIENT_ID)
    request, _, _, tokens = login_and_exchange(idp, callback, client=client)
    claims = validate_id_token(tokens["id_token"], idp.jwks(), idp.issuer, POST_CLIENT_ID, request.nonce)
    assert claims["sub"] == "alice" and claims["groups"] == ["users"]
    assert tokens.get("refresh_token")

    # The registered method is enforced: Basic is refused for this client.
    request = idp.auth_request(client=client)
    code = login(requests.Session(), request.url).callback_params(callback.url)["code"]
    refused = idp.exchange_code(code, request, client=client, auth_method="client_secret_basic")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_es256_signed_id_token(env):
    _, idp, callback = env
    client = client_named(idp, ES256_CLIENT_ID)
    request, _, _, tokens = login_and_exchange(idp, callback, client=client)
    header, _ = decode_jwt(tokens["id_token"])
    assert header["alg"] == "ES256"
    validate_id_token(tokens["id_token"], idp.jwks(), idp.issuer, ES256_CLIENT_ID, request.nonce)


def test_refresh_grant(env):
    _, idp, callback = env
    request, _, _, tokens = login_and_exchange(idp, callback)
    reply = idp.refresh(tokens["refresh_token"])
    assert reply.status_code == 200, reply.text
    refreshed = reply.json()
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] == tokens["refresh_token"]  # no rotation by default
    claims = idp.validate_id_token(refreshed["id_token"], nonce=request.nonce)
    assert claims["sub"] == "alice"
    assert idp.userinfo(refreshed["access_token"]).status_code == 200
    # A refresh token is bound to its client.
    other = client_named(idp, POST_CLIENT_ID)
    stolen = idp.refresh(refreshed["refresh_token"], client=other)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_pkce_is_required_and_checked(env):
    _, idp, callback = env
    # No code_challenge: the IdP answers the redirect_uri with an error.
    request = idp.auth_request(code_challenge=None, code_challenge_method=None)
    flow = follow(requests.Session(), request.url)
    got = flow.callback_params(callback.url)
    assert got["error"] == "invalid_request" and "PKCE" in got["error_description"]
    assert flow.pages() == []  # refused before any login page
    # A wrong verifier is refused at the token endpoint.
    request = idp.auth_request()
    code = login(requests.Session(), request.url).callback_params(callback.url)["code"]
    wrong = idp.exchange_code(code, request, code_verifier=oidc.pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_single_sign_on_and_stop_before(env):
    _, idp, callback = env
    session = loopback_session()
    login(session, idp.auth_request().url, "dave")
    before = len(callback.received)
    # Same cookie jar: no login page the second time; stop before the callback.
    request = idp.auth_request()
    flow = login(session, request.url, require_login_page=False, stop_before=callback.url)
    assert flow.pages() == []
    assert flow.hops[-1].status in (302, 303) and flow.hops[-1].location.startswith(callback.url)
    assert len(callback.received) == before  # the callback was not requested
    code = flow.callback_params(callback.url)["code"]
    tokens = idp.exchange_code(code, request).json()
    assert idp.validate_id_token(tokens["id_token"], nonce=request.nonce)["sub"] == "dave"


def test_rp_initiated_logout(env):
    _, idp, callback = env
    _, session, _, tokens = login_and_exchange(idp, callback)
    url = idp.end_session_url(tokens["id_token"], callback.logged_out_url, state="bye-123")
    flow = logout(session, url)
    assert flow.pages() == ["logout"]
    assert flow.url == f"{callback.logged_out_url}?state=bye-123"
    assert callback.received[-1].path == "/logged-out" and callback.received[-1].query == {"state": "bye-123"}
    # Without an IdP session the IdP answers with a self-submitting form.
    flow = logout(session, url)
    assert flow.pages() == ["autopost"] and flow.url == f"{callback.logged_out_url}?state=bye-123"
    # The session is gone (the login form shows again) and its refresh token too.
    assert "login" in follow(session, idp.auth_request().url).pages()
    refused = idp.refresh(tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # An unregistered post_logout_redirect_uri is refused.
    bad = requests.get(idp.end_session_url(tokens["id_token"], "http://127.0.0.1:9/evil"), timeout=5)
    assert bad.status_code == 400 and "post_logout_redirect_uri" in bad.text


def test_key_rotation_keeps_sessions(env):
    stack, _, callback = env
    idp = stack.idp(clients=[default_client(callback.url, callback.logged_out_url)], name="rotation")
    request, session, _, tokens = login_and_exchange(idp, callback)
    old_kids = [k["kid"] for k in idp.jwks()["keys"]]

    published = idp.rotate_keys()
    kids = [k["kid"] for k in published["keys"]]
    assert len(kids) == 4 and kids[2:] == old_kids and not set(kids[:2]) & set(old_kids)
    assert [k["kid"] for k in idp.jwks()["keys"]] == kids
    # Old tokens still verify; new ones are signed with the new RS256 key; the session survived.
    verify_jws(tokens["id_token"], idp.jwks())
    request = idp.auth_request()
    flow = login(session, request.url, require_login_page=False)
    assert flow.pages() == []
    new_tokens = idp.exchange_code(flow.callback_params(callback.url)["code"], request).json()
    assert decode_jwt(new_tokens["id_token"])[0]["kid"] == kids[0]
    idp.validate_id_token(new_tokens["id_token"], nonce=request.nonce)
    assert idp.refresh(tokens["refresh_token"]).status_code == 200

    idp.rotate_keys(keep_old=False)
    assert len(idp.jwks()["keys"]) == 2
    with pytest.raises(ValueError, match="no key for kid"):
        verify_jws(new_tokens["id_token"], idp.jwks())


# ----- configurations -----
def test_consent_form_when_auto_consent_is_off(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)], auto_consent=False)
    session = requests.Session()
    # consent=False stops on the consent page.
    stopped = login(session, idp.auth_request().url, consent=False)
    assert stopped.pages() == ["login"] and 'value="consent"' in stopped.response.text
    request = idp.auth_request()
    flow = login(session, request.url, require_login_page=False)
    assert flow.pages() == ["consent"]
    tokens = idp.exchange_code(flow.callback_params(callback.url)["code"], request).json()
    assert tokens.get("refresh_token")
    # Consent is remembered for the session.
    assert login(session, idp.auth_request().url, require_login_page=False).pages() == []


def test_refresh_token_rotation_and_reuse_detection(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)], rotate_refresh_token=True)
    _, _, _, tokens = login_and_exchange(idp, callback)
    first = idp.refresh(tokens["refresh_token"]).json()
    assert first["refresh_token"] != tokens["refresh_token"]
    second = idp.refresh(first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    # Reusing a rotated-out token revokes the whole grant, the newest token too.
    reused = idp.refresh(first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert idp.refresh(second["refresh_token"]).status_code == 400


@pytest.mark.slow
def test_short_lifetimes_expire(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(
        clients=[default_client(callback.url)], ttl={"AccessToken": 2, "IdToken": 2, "RefreshToken": 4}
    )
    request, _, _, tokens = login_and_exchange(idp, callback)
    started = time.time()
    claims = idp.validate_id_token(tokens["id_token"], nonce=request.nonce)
    assert claims["exp"] - claims["iat"] == 2
    assert tokens["expires_in"] <= 2
    assert idp.userinfo(tokens["access_token"]).status_code == 200

    time.sleep(max(0.0, started + 2.5 - time.time()))
    assert idp.userinfo(tokens["access_token"]).status_code == 401
    with pytest.raises(AssertionError, match="expired"):
        idp.validate_id_token(tokens["id_token"])
    refreshed = idp.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert idp.userinfo(refreshed.json()["access_token"]).status_code == 200

    assert refreshed.json()["refresh_token"] == tokens["refresh_token"]  # not rotated

    time.sleep(max(0.0, started + 4.5 - time.time()))
    expired = idp.refresh(tokens["refresh_token"])
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"


def test_extra_claims_make_a_big_id_token(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)], extra_id_token_claims=(12, 500))
    request, _, _, tokens = login_and_exchange(idp, callback)
    size = len(tokens["id_token"])
    print(f"ID token with 12 extra claims of 500 characters: {size} bytes")
    assert 8000 <= size <= 10000
    claims = idp.validate_id_token(tokens["id_token"], nonce=request.nonce)
    extra = {k: v for k, v in claims.items() if k.startswith("x_extra_")}
    assert len(extra) == 12 and all(len(v) == 500 for v in extra.values())
    assert claims["email"] == "alice@example.test"


def test_refresh_token_can_require_offline_access(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)], refresh_token_requires_offline_access=True)
    _, _, _, tokens = login_and_exchange(idp, callback)
    assert "refresh_token" not in tokens
    # offline_access counts only with prompt=consent (OIDC Core 11).
    _, _, _, tokens = login_and_exchange(idp, callback, scope="openid email offline_access", prompt="consent")
    assert tokens.get("refresh_token")


def test_response_mode_form_post(env):
    _, idp, callback = env
    request = idp.auth_request(response_mode="form_post")
    flow = login(requests.Session(), request.url)
    assert flow.pages() == ["login", "autopost"]
    received = callback.received[-1]
    assert received.method == "POST" and received.query["state"] == request.state
    assert idp.exchange_code(received.query["code"], request).status_code == 200


def test_localhost_issuer_keeps_idp_cookies_off_127_0_0_1(plain_stack):
    """With host="localhost" the IdP's cookies are not sent to an app on
    127.0.0.1 (cookies ignore ports, not host names)."""
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)], host="localhost")
    assert idp.issuer == f"http://localhost:{idp.port}" and idp.authority == f"localhost:{idp.port}"
    request = idp.auth_request()
    session = requests.Session()
    flow = login(session, request.url)
    assert flow.url.startswith(callback.url)
    assert "127.0.0.1" not in {c.domain for c in session.cookies}
    tokens = idp.exchange_code(flow.callback_params(callback.url)["code"], request).json()
    assert idp.validate_id_token(tokens["id_token"], nonce=request.nonce)["iss"] == idp.issuer


def test_loopback_session_sends_secure_cookies_over_http(plain_stack):
    """Like Chromium on 127.0.0.1: a Secure cookie set over http comes back."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("cookie"))
            self.send_response(200)
            self.send_header("set-cookie", "s=1; Path=/; Secure; HttpOnly; SameSite=Lax")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        plain, loopback = requests.Session(), loopback_session()
        for session in (plain, loopback):
            session.get(url, timeout=5)
            session.get(url, timeout=5)
        assert seen == [None, None, None, "s=1"]
    finally:
        server.shutdown()
        server.server_close()


def test_missing_node_modules_is_explained(monkeypatch, tmp_path):
    import harness.idp as idp_module

    monkeypatch.setattr(idp_module, "IDP_DIR", tmp_path)
    with pytest.raises(IdpStartError, match="npm ci --prefix tests/idp"):
        Idp().start()


def test_idp_exits_cleanly_on_sigterm(plain_stack):
    idp = plain_stack.idp()
    assert idp.exit_code() is None
    idp.stop()
    assert idp.exit_code() == 0
    assert "SIGTERM" in idp.log_text()


def test_login_walker_reports_an_unexpected_page(plain_stack):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url)])
    bad = idp.auth_request(client=default_client("http://127.0.0.1:9/not-registered"))
    with pytest.raises(LoginError, match="no login form"):
        login(requests.Session(), bad.url)


# ----- the same login by a real browser -----
@pytest.mark.browser
def test_browser_login_code_flow_and_logout(plain_stack, browser):
    callback = plain_stack.callback_server()
    idp = plain_stack.idp(clients=[default_client(callback.url, callback.logged_out_url)], auto_consent=False)
    request = idp.auth_request()

    browser.get(request.url)
    browser.dev_login("erin")  # login form, then the consent page
    browser.wait_for_url(callback.url)
    got = callback.wait_for().query
    assert got["state"] == request.state and got["iss"] == idp.issuer
    assert {c["name"] for c in browser.cookies()} >= {"_session"}

    tokens = idp.exchange_code(got["code"], request).json()
    claims = idp.validate_id_token(tokens["id_token"], nonce=request.nonce)
    assert claims["sub"] == "erin" and claims["email"] == "erin@example.test"

    browser.get(idp.end_session_url(tokens["id_token"], callback.logged_out_url, state="s1"))
    browser.confirm_logout()
    browser.wait_for_url(callback.logged_out_url)
    assert callback.wait_for("/logged-out").query == {"state": "s1"}
    assert "_session" not in {c["name"] for c in browser.cookies()}
