"""One sign-in for a whole domain (issue #22): `redirectUri`, `cookieDomain` and
`allowedRedirectDomains`.

One Envoy listener serves three hosts of `example.localhost`: two apps
(`a.` and `b.`) and the callback host `auth.`, all under one top-level `oidc`
block whose IdP client has exactly one redirect URI, the callback host's.
Chromium resolves `*.localhost` to loopback by itself; the Python clients do so
through harness.hostnames. A login started on one app ends on the callback host
and returns to where it started; the session cookies are the domain's, so the
other app lets the user in without asking the IdP; refresh and logout work from
any host.

The open-redirect tests use a scripted IdP and hand the callback login cookies
sealed with the test's own cookie key, so that the return URL can be anything
an attacker might want it to be.
"""

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.envoy import Listener
from harness.fake_idp import FakeIdp, json_reply, now
from harness.hostnames import localhost_subdomains
from harness.idp import Idp, default_client
from harness.login import SAME_ORIGIN, follow, login, logout
from harness.oidc_app import CLIENT_ID as FAKE_CLIENT_ID
from harness.oidc_app import html_session, new_cookie_secret, set_cookies, upstream
from harness.ports import free_port
from harness.tokens import generate_key, sign
from test_deployment_files import envoy_local_with, secret_env, validate_with_envoy

DOMAIN = "example.localhost"
HOST_A, HOST_B, HOST_AUTH = f"a.{DOMAIN}", f"b.{DOMAIN}", f"auth.{DOMAIN}"
CLIENT_ID = "domain-client"
CLIENT_SECRET = "domain-" + secrets.token_hex(16)
SESSION = "oidc_session"
REQUEST_TIMEOUT = 10
SHORT_TOKENS = {"IdToken": 3, "AccessToken": 3}


@pytest.fixture(scope="module", autouse=True)
def loopback_names():
    with localhost_subdomains():
        yield


@dataclass
class Domain:
    envoy: object
    idp: object
    port: int
    cookie_key: str

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def redirect_uri(self) -> str:
        return self.url(HOST_AUTH, "/oauth2/callback")

    def get(self, host: str, path: str = "/", *, cookies: dict | None = None, html: bool = True,
            headers: dict | None = None) -> requests.Response:
        """One request to the listener with `Host: <host>:<port>`, no cookie jar."""
        sent = {"Host": f"{host}:{self.port}", "Connection": "close",
                "Accept": "text/html" if html else "application/json"}
        if cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        sent.update(headers or {})
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=sent, allow_redirects=False,
                            timeout=REQUEST_TIMEOUT)


def domain_config(issuer: str, idp_authority: str, port: int, cookie_key: str, client_id: str,
                  client_secret: str) -> dict:
    return {
        "oidc": {
            "issuer": issuer,
            "clientId": client_id,
            "clientSecret": client_secret,
            "cookieSecrets": [cookie_key],
            # Plain HTTP on loopback: the one setting under which an http redirectUri loads.
            "cookieSecure": False,
            "cookieDomain": DOMAIN,
            "redirectUri": f"http://{HOST_AUTH}:{port}/oauth2/callback",
            "allowedRedirectDomains": [f".{DOMAIN}:{port}"],
            "postLogoutRedirectUri": f"http://{HOST_AUTH}:{port}/signed-out",
            "outputClaimToHeaders": [{"header": "x-user-email", "claim": "email"}],
        },
        "publicPaths": ["/signed-out"],
        "clusters": {idp_authority: "idp"},
        "apps": [{"name": "a", "hosts": [HOST_A]}, {"name": "b", "hosts": [HOST_B]}],
    }


def start_domain(stack, idp_options: dict | None = None) -> Domain:
    port = free_port()
    client = default_client(f"http://{HOST_AUTH}:{port}/oauth2/callback", f"http://{HOST_AUTH}:{port}/signed-out",
                            client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    idp = stack.idp(clients=[client], **(idp_options or {}))
    key = new_cookie_secret()
    config = domain_config(idp.issuer, idp.authority, port, key, CLIENT_ID, CLIENT_SECRET)
    envoy = stack.envoy(Listener("domain", config, port=port), clusters={"idp": idp.port})
    return Domain(envoy=envoy, idp=idp, port=port, cookie_key=key)


@pytest.fixture(scope="module")
def dom(module_stack) -> Domain:
    return start_domain(module_stack)


def idp_calls(idp: Idp) -> list[dict]:
    """What the IdP did for our client: authorizations, code and refresh grants, logouts."""
    return [e for e in idp.events() if e.get("client_id") in (CLIENT_ID, None) and e.get("event") != "server_error"]


# ----- one login, every host -----
def test_one_login_signs_in_every_host_of_the_domain(dom):
    user = html_session()
    start = dom.url(HOST_A, "/reports?id=7&q=a%20b")
    result = login(user, start, "alice")
    first = result.hops[0]
    assert first.status == 302, result.describe()
    query = parse_qs(urlsplit(first.location).query)
    assert query["redirect_uri"] == [dom.redirect_uri], "every login sends the one redirect URI"
    login_cookies = [c for c in first.set_cookies if c.startswith(f"{SESSION}_login_")]
    assert login_cookies and f"Domain={DOMAIN}" in login_cookies[0], first.set_cookies
    # The callback host finished the login and sent the browser back to a's URL.
    back = result.redirect_to(dom.url(HOST_A))
    assert back.url.startswith(dom.redirect_uri) and back.location == start, result.describe()
    assert all(f"Domain={DOMAIN}" in c for c in back.set_cookies), back.set_cookies
    seen = upstream(result.response)
    assert (seen["path"], seen["headers"]["x-user-email"]) == ("/reports?id=7&q=a%20b", "alice@example.test")
    assert SESSION not in seen["headers"].get("cookie", "")

    # b (and the callback host) take the session as it is: no call to the IdP.
    dom.idp.clear_events()
    for host in (HOST_B, HOST_AUTH):
        seen = upstream(user.get(dom.url(host, "/page"), allow_redirects=False, timeout=REQUEST_TIMEOUT))
        assert seen["headers"]["x-user-email"] == "alice@example.test", host
        assert SESSION not in seen["headers"].get("cookie", ""), "session cookies never reach the upstream"
    assert idp_calls(dom.idp) == [], "b asked the IdP"


def test_two_logins_at_once_each_return_to_their_own_app(dom):
    """Two tabs of one browser (one cookie jar) start logins on a and b before
    either ends; each ends where it started, in either order."""
    for order in ((0, 1), (1, 0)):
        user = html_session()
        starts = [dom.url(HOST_A, "/one?tab=1"), dom.url(HOST_B, "/two?tab=2")]
        authorizations = []
        for url in starts:
            response = user.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT)
            assert response.status_code == 302, response.text[:200]
            authorizations.append(response.headers["location"])
        in_flight = [c.name for c in user.cookies if c.name.startswith(f"{SESSION}_login_")]
        assert len(set(in_flight)) == 2, in_flight
        first, second = order
        result = login(user, authorizations[first], f"tabs{first}{second}")
        assert result.redirect_to(starts[first]), result.describe()
        assert upstream(result.response)["path"] == urlsplit(starts[first]).path + "?" + urlsplit(starts[first]).query
        result = login(user, authorizations[second], require_login_page=False)
        seen = upstream(result.response)
        assert seen["path"] == urlsplit(starts[second]).path + "?" + urlsplit(starts[second]).query, result.describe()
        assert not [c.name for c in user.cookies if c.name.startswith(f"{SESSION}_login_")], "login cookies cleared"


def test_logout_from_one_host_ends_the_session_everywhere(dom):
    user = html_session()
    upstream(login(user, dom.url(HOST_A, "/"), "bob").response)
    upstream(user.get(dom.url(HOST_B, "/"), allow_redirects=False, timeout=REQUEST_TIMEOUT))
    dom.idp.clear_events()
    response = user.get(dom.url(HOST_B, "/oauth2/logout"), headers=SAME_ORIGIN, allow_redirects=False,
                        timeout=REQUEST_TIMEOUT)
    assert response.status_code == 302, response.text[:200]
    location = response.headers["location"]
    assert location.startswith(dom.idp.endpoint("end_session")), location
    assert parse_qs(urlsplit(location).query)["post_logout_redirect_uri"] == [dom.url(HOST_AUTH, "/signed-out")]
    expired = [c for c in set_cookies(response) if "Max-Age=0" in c]
    assert any(c.startswith(f"{SESSION}=;") for c in expired), expired
    assert all(f"Domain={DOMAIN}" in c for c in expired), expired
    result = logout(user, location)
    assert result.url == dom.url(HOST_AUTH, "/signed-out"), result.describe()
    ended = [e for e in dom.idp.events("end_session.success")]
    assert len(ended) == 1, dom.idp.events()
    # a and b alike send the browser to the IdP again.
    for host in (HOST_A, HOST_B):
        again = user.get(dom.url(host, "/again"), allow_redirects=False, timeout=REQUEST_TIMEOUT)
        assert again.status_code == 302 and again.headers["location"].startswith(dom.idp.issuer), host


def test_refresh_works_from_another_host(stack):
    dom = start_domain(stack, idp_options={"ttl": SHORT_TOKENS})
    user = html_session()
    upstream(login(user, dom.url(HOST_A, "/"), "carol").response)
    dom.idp.clear_events()
    time.sleep(4)
    response = user.get(dom.url(HOST_B, "/after-expiry"), allow_redirects=False, timeout=REQUEST_TIMEOUT)
    assert upstream(response)["headers"]["x-user-email"] == "carol@example.test"
    renewed = [c for c in set_cookies(response) if c.startswith(f"{SESSION}=") and "Max-Age=0" not in c]
    assert renewed and f"Domain={DOMAIN}" in renewed[0], set_cookies(response)
    refreshes = [e for e in dom.idp.events() if e.get("grant_type") == "refresh_token"]
    assert refreshes, dom.idp.events()
    # The renewed session serves a at once.
    dom.idp.clear_events()
    upstream(user.get(dom.url(HOST_A, "/again"), allow_redirects=False, timeout=REQUEST_TIMEOUT))
    assert not [e for e in dom.idp.events() if e.get("grant_type") == "refresh_token"]


def test_a_host_outside_the_domain_gets_a_page_not_a_login(dom):
    for host in ("evil.localhost", f"{DOMAIN}.evil.localhost", f"x{DOMAIN}"):
        response = dom.get(host, "/")
        assert response.status_code == 400, (host, response.status_code, response.text[:200])
        assert "cookieDomain" in response.text
        assert not set_cookies(response)


# ----- Chromium -----
@pytest.mark.browser
def test_chromium_signs_in_once_for_the_domain_and_out_everywhere(dom, browser):
    start = dom.url(HOST_A, "/dashboard?id=3&view=full")
    browser.get(start)
    browser.dev_login("grace")
    browser.wait_for_url(lambda url: url == start)
    assert json.loads(browser.text())["headers"]["x-user-email"] == "grace@example.test"

    dom.idp.clear_events()
    browser.get(dom.url(HOST_B, "/notes"))
    browser.wait_for_url(dom.url(HOST_B, "/notes"))
    assert json.loads(browser.text())["headers"]["x-user-email"] == "grace@example.test"
    assert idp_calls(dom.idp) == [], "b asked the IdP"

    # Typed into the address bar (Sec-Fetch-Site: none): a logout the filter accepts.
    browser.get(dom.url(HOST_B, "/oauth2/logout"))
    browser.confirm_logout()
    browser.wait_for_url(dom.url(HOST_AUTH, "/signed-out"))
    assert len(dom.idp.events("end_session.success")) == 1
    assert not [c for c in browser.cookies() if c["name"].startswith(SESSION)]
    browser.get(dom.url(HOST_A, "/after"))
    browser.wait_for_url(lambda url: url.startswith(dom.idp.issuer))


@pytest.mark.browser
def test_chromium_two_tabs_sign_in_to_two_apps_at_once(dom, browser):
    starts = [dom.url(HOST_A, "/tab-one?x=1"), dom.url(HOST_B, "/tab-two?y=2")]
    driver = browser.driver
    browser.get(starts[0])
    browser.wait_for_url(lambda url: url.startswith(dom.idp.issuer))
    first_tab = driver.current_window_handle
    driver.switch_to.new_window("tab")
    browser.get(starts[1])
    browser.wait_for_url(lambda url: url.startswith(dom.idp.issuer))
    # Both logins are in flight; b's ends first, then a's.
    browser.dev_login("heidi")
    browser.wait_for_url(lambda url: url == starts[1])
    assert json.loads(browser.text())["path"] == "/tab-two?y=2"
    driver.switch_to.window(first_tab)
    browser.dev_login("heidi")
    browser.wait_for_url(lambda url: url == starts[0])
    assert json.loads(browser.text())["path"] == "/tab-one?x=1"


# ----- returns to allowed hosts only -----
FAKE_KEY = generate_key("RS256", kid="domain-1")


def seal(key_b64: str, purpose: str, plaintext: bytes) -> str:
    """What the filter's CookieKeys::seal makes: base64url(nonce || AES-256-GCM(plaintext, aad=purpose))."""
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(base64.b64decode(key_b64)).encrypt(nonce, plaintext, purpose.encode())
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


@dataclass
class Scripted:
    domain: Domain
    idp: FakeIdp

    def finish_login(self, return_to: str) -> requests.Response:
        """A callback on the callback host for a login whose sealed return URL is
        `return_to`, with a code the scripted IdP exchanges for a valid ID token."""
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        pending = {"state": state, "nonce": nonce, "verifier": secrets.token_urlsafe(32), "return_to": return_to,
                   "expires_at": now() + 300}
        name = f"{SESSION}_login_{state[:8]}"
        cookie = seal(self.domain.cookie_key, name, json.dumps(pending).encode())
        return self.domain.get(HOST_AUTH, f"/oauth2/callback?code={quote(nonce)}&state={quote(state)}",
                               cookies={name: cookie})


@pytest.fixture(scope="module")
def scripted(module_stack) -> Scripted:
    idp = module_stack.own(FakeIdp(FAKE_KEY).start())

    def reply(form: dict):
        claims = {"iss": idp.issuer, "aud": FAKE_CLIENT_ID, "sub": "mallory", "email": "mallory@example.test",
                  "nonce": form.get("code", ""), "iat": now(), "exp": now() + 300}
        return json_reply({"access_token": "a", "token_type": "Bearer", "id_token": sign({}, claims, FAKE_KEY)})

    idp.reply = reply
    port = free_port()
    key = new_cookie_secret()
    config = domain_config(idp.issuer, idp.authority, port, key, FAKE_CLIENT_ID, "scripted-secret")
    envoy = module_stack.envoy(Listener("scripted", config, port=port), clusters={"idp": idp.port})
    return Scripted(Domain(envoy=envoy, idp=idp, port=port, cookie_key=key), idp)


def allowed_returns(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://{HOST_A}:{port}/reports?id=7", f"http://{HOST_A}:{port}/reports?id=7"),
        (f"http://deep.{HOST_B}:{port}/x", f"http://deep.{HOST_B}:{port}/x"),
        (f"HTTP://A.Example.LOCALHOST:{port}/Mixed", f"http://{HOST_A}:{port}/Mixed"),
        (f"http://{HOST_AUTH}:{port}/home?x=1", "/home?x=1"),
    ]


def refused_returns(port: int) -> list[str]:
    a = f"{HOST_A}:{port}"
    return [
        f"http://evil.localhost:{port}/",
        f"http://{DOMAIN}.evil.localhost:{port}/",
        f"http://{HOST_A}.evil.localhost:{port}/",
        f"http://evil.localhost:{port}?.{DOMAIN}",
        f"http://evil.localhost:{port}/.{DOMAIN}",
        f"http://evil.localhost:{port}#.{DOMAIN}",
        f"http://{a}@evil.localhost:{port}/",
        f"http://user:pw@{a}/",
        f"http://evil.localhost:{port}\\.{DOMAIN}/",
        f"http://{a}\\@evil.localhost/",
        "http:\\\\evil.localhost/",
        "http:/evil.localhost/",
        "//evil.localhost/",
        "///evil.localhost/",
        "/\\evil.localhost/",
        "\\\\evil.localhost\\",
        f"HTTP://EVIL.LOCALHOST:{port}/",
        f"hTtP://A.Example.Localhost.Evil.Localhost:{port}/",
        f"http://{HOST_A}%40evil.localhost:{port}/",
        f"http://evil.localhost%2f.{DOMAIN}:{port}/",
        f"http://evil.localhost\u3002{DOMAIN}:{port}/",
        f"http://evil%2elocalhost:{port}/",
        f"http://a.example%2elocalhost:{port}/",
        f"http://a.{DOMAIN}%2eevil.localhost:{port}/",
        f"http://xn--80ak6aa92e.localhost:{port}/",
        f"http://a.\u0435xample.localhost:{port}/",
        f"http://a.{DOMAIN}.:{port}/",
        f"http://bad{DOMAIN}:{port}/",
        f"http://{HOST_A}/",
        f"http://{HOST_A}:1/",
        f"http://{HOST_A}:{port + 1}/",
        f"https://evil.localhost:{port}/",
        "javascript:alert(document.cookie)",
        f"JavaScript://{a}/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        f"ftp://{a}/",
        f"http://{a}/\r\nset-cookie: x=1",
        f" http://{a}/",
        "",
    ]


def test_allowed_returns_are_followed(scripted):
    port = scripted.domain.port
    for return_to, location in allowed_returns(port):
        response = scripted.finish_login(return_to)
        assert response.status_code == 302, (return_to, response.status_code, response.text[:200])
        assert response.headers["location"] == location, return_to
        assert any(c.startswith(f"{SESSION}=") and "Max-Age=0" not in c for c in set_cookies(response)), return_to


def test_every_open_redirect_attempt_lands_on_the_safe_default(scripted):
    port = scripted.domain.port
    for return_to in refused_returns(port):
        response = scripted.finish_login(return_to)
        assert response.status_code == 302, (return_to, response.status_code, response.text[:200])
        assert response.headers["location"] == "/", (return_to, response.headers["location"])


def test_a_login_started_under_a_forged_host_never_leaves_the_domain(scripted):
    """The return URL comes from the request's Host: one outside the domain is
    refused before any login starts; inside it, only the path is the client's."""
    dom = scripted.domain
    for host in ("evil.localhost", f"{HOST_A}.evil.localhost", f"{DOMAIN}.evil.localhost"):
        response = dom.get(host, "/start")
        assert response.status_code == 400, (host, response.status_code)
    for path in ("//evil.localhost/x",):
        response = dom.get(HOST_A, path)
        assert response.status_code == 302 and response.headers["location"].startswith(scripted.idp.issuer), path


# ----- docs/one-sign-in.md -----
DOC = Path(__file__).resolve().parents[1] / "docs" / "one-sign-in.md"
PARTIAL = "<!-- docs-check: partial -->"


def fenced_blocks(text: str, language: str) -> list[tuple[str, bool]]:
    """Each ```language block's body, and whether the line before its fence marks it partial."""
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == f"```{language}":
            end = next(j for j in range(index + 1, len(lines)) if lines[j].strip() == "```")
            partial = index > 0 and lines[index - 1].strip() == PARTIAL
            blocks.append(("\n".join(lines[index + 1:end]), partial))
            index = end
        index += 1
    return blocks


def documented_configs() -> list[tuple[str, dict]]:
    """Every whole plugin configuration of the page: its JSON blocks not marked
    partial, and the WasmPlugin's pluginConfig."""
    text = DOC.read_text()
    configs = [("json", json.loads(body)) for body, partial in fenced_blocks(text, "json") if not partial]
    plugins = [document for body, _ in fenced_blocks(text, "yaml") for document in yaml.safe_load_all(body)
               if document and document.get("kind") == "WasmPlugin"]
    assert len(plugins) == 1, "one WasmPlugin on the page"
    plugin = plugins[0]
    config = plugin["spec"]["pluginConfig"]
    env_names = {entry["name"] for entry in plugin["spec"]["vmConfig"]["env"] if entry.get("valueFrom") == "HOST"}
    assert env_names == set(secret_env(config)), "vmConfig.env passes exactly the variables the config names"
    return [*configs, ("WasmPlugin", config)]


def test_the_docs_page_configurations_load_in_the_filter(wasm_path, tmp_path):
    text = DOC.read_text()
    assert text.startswith("# One sign-in for a domain\n")
    assert "with **one** redirect URI,\n`https://auth.example.com/oauth2/callback`" in text, "the URI to register"
    configs = documented_configs()
    assert len(configs) >= 2
    for where, config in configs:
        oidc = config["oidc"]
        assert (oidc["redirectUri"], oidc["cookieDomain"]) == ("https://auth.example.com/oauth2/callback", "example.com")
        assert oidc["allowedRedirectDomains"] == [".example.com"]
        env = secret_env(config)
        bootstrap = envoy_local_with(wasm_path, config, host_env_keys=sorted(env))
        result = validate_with_envoy(bootstrap, tmp_path, env)
        assert result.returncode == 0, f"{where}: {result.stderr[-3000:]}"
    # Control: the validation does read the new fields.
    where, config = configs[0]
    broken = json.loads(json.dumps(config))
    broken["oidc"]["redirectUri"] = "https://auth.example.org/oauth2/callback"
    env = secret_env(broken)
    result = validate_with_envoy(envoy_local_with(wasm_path, broken, host_env_keys=sorted(env)), tmp_path, env)
    assert result.returncode != 0 and "oidc.redirectUri" in result.stderr, result.stderr[-3000:]
