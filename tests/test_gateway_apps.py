"""Several apps behind one listener, chosen by host (`apps`), with secrets from
the VM's environment (`clientSecretFromEnv`, `cookieSecretsFromEnv`): issue #14.

One Envoy listener fronts three apps of one real IdP, each with its own client:
`grafana.localhost` (secrets from the Envoy process's environment through
`host_env_keys`), `wiki.localhost` and `*.docs.localhost` (client secret from
`key_values`, the same cookie keys as grafana) and `notes.localhost` (both from
`key_values`). The top level has no `oidc`: any other host gets bearer tokens
only. Python clients resolve `*.localhost` to 127.0.0.1 (harness.hostnames);
Chromium does so by itself. Envoy logs at debug level throughout, so the
check that no secret shows covers every request of the module.
"""

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness import stats
from harness.envoy import Envoy, Listener
from harness.hostnames import localhost_subdomains
from harness.idp import Idp, default_client
from harness.login import SAME_ORIGIN, login
from harness.oidc_app import assert_refused_page, html_session, new_cookie_secret, upstream
from harness.plugin import jwks_cluster_name, rule
from harness.ports import free_port
from harness.tokens import b64url_decode, cached_key, claims, sign

TOKENS_ISSUER = "https://issuer-gateway.test"
RBAC = "RBAC: access denied"
JWT_MISSING = "Jwt is missing"
MARKER = "invalid plugin configuration"
REQUEST_TIMEOUT = 10
# The filter's timer copies its counters to Envoy about once a second per VM.
COUNTER_FLUSH = 1.6

# Secrets: fresh per run, so a search for them finds only this run's leaks.
GRAFANA_SECRET = "grafana-" + secrets.token_hex(16)
WIKI_SECRET = "wiki-" + secrets.token_hex(16)
NOTES_SECRET = "notes-" + secrets.token_hex(16)
SHARED_KEYS = [new_cookie_secret(), new_cookie_secret()]  # grafana and wiki: one sealing key, one older
NOTES_KEYS = [new_cookie_secret(), new_cookie_secret()]

# Variables of the Envoy process passed to the VM (host_env_keys)...
HOST_ENV = {
    "GATEWAY_GRAFANA_CLIENT_SECRET": GRAFANA_SECRET,
    "GATEWAY_SHARED_COOKIE_KEYS": ", ".join(SHARED_KEYS),
}
# ... and variables written in the VM's configuration (key_values).
KEY_VALUES = {
    "WIKI_CLIENT_SECRET": WIKI_SECRET,
    "NOTES_CLIENT_SECRET": NOTES_SECRET,
    "NOTES_COOKIE_KEYS": "\n  ".join(NOTES_KEYS),
}

DENY_ADMIN = [{"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]
EDITORS_ONLY = [{"rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["editors"]}]}]}]
# Editors may use wiki; everyone else (bob, dave, erin) has the IdP's default groups: ["users"].
USERS = {"alice": {"groups": ["editors", "users"]}, "carol": {"groups": ["editors"]}, "grace": {"groups": ["editors"]}}


def client_id(app: str) -> str:
    return f"{app}-client"


def session_cookie(app: str) -> str:
    return f"oidc_session_{app}"


@dataclass
class Gateway:
    envoy: Envoy
    idp: Idp
    port: int
    key: object

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    def authority(self, host: str) -> str:
        return f"{host}:{self.port}"

    def get(self, authority: str, path: str = "/", *, html: bool = True, token: str | None = None,
            cookies: dict | None = None, headers: dict | None = None) -> requests.Response:
        """One request to the listener on 127.0.0.1 with `Host: authority`, no cookie jar."""
        sent = {"Host": authority, "Connection": "close", "Accept": "text/html" if html else "application/json"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        sent.update(headers or {})
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=sent, allow_redirects=False,
                            timeout=REQUEST_TIMEOUT)

    def login_redirect(self, response: requests.Response) -> dict[str, str]:
        """The authorization request of a login redirect to the IdP (its query)."""
        assert response.status_code == 302, f"expected a login redirect, got {response.status_code}: {response.text[:200]}"
        return self.authorization(response.headers["location"])

    def authorization(self, url: str) -> dict[str, str]:
        """The query of `url`, which must be the IdP's authorization endpoint."""
        location = urlsplit(url)
        assert f"{location.scheme}://{location.netloc}{location.path}" == self.idp.endpoint("authorization"), url
        return {name: values[-1] for name, values in parse_qs(location.query).items()}

    def token(self, **extra) -> str:
        return sign({}, claims(TOKENS_ISSUER, **extra), self.key)


@pytest.fixture(scope="module", autouse=True)
def loopback_names():
    with localhost_subdomains():
        yield


def app_oidc(idp: Idp, app: str, **fields) -> dict:
    return {
        "issuer": idp.issuer,
        "clientId": client_id(app),
        "cookieSecure": False,
        "postLogoutRedirectUri": "/signed-out",
        "outputClaimToHeaders": [{"header": "x-user-email", "claim": "email"}],
    } | fields


@pytest.fixture(scope="module")
def gw(module_stack) -> Gateway:
    port = free_port()
    clients = []
    for app, secret in (("grafana", GRAFANA_SECRET), ("wiki", WIKI_SECRET), ("notes", NOTES_SECRET)):
        origin = f"http://{app}.localhost:{port}"
        clients.append(default_client(f"{origin}/oauth2/callback", f"{origin}/signed-out",
                                      client_id=client_id(app), client_secret=secret))
    idp = module_stack.idp(clients=clients, users=USERS)
    key = cached_key("ES256", "gateway")
    jwks = module_stack.jwks_server({"keys": [key.jwk()]})
    config = {
        "jwtRules": [
            {"issuer": idp.issuer, "audiences": [client_id(app) for app in ("grafana", "wiki", "notes")]},
            rule(TOKENS_ISSUER, jwks),
        ],
        "clusters": {idp.authority: "idp", jwks.authority: jwks_cluster_name(jwks)},
        "publicPaths": ["/status"],
        "apps": [
            {
                "name": "grafana",
                "hosts": ["grafana.localhost"],
                "oidc": app_oidc(idp, "grafana", clientSecretFromEnv="GATEWAY_GRAFANA_CLIENT_SECRET",
                                 cookieSecretsFromEnv="GATEWAY_SHARED_COOKIE_KEYS"),
                "publicPaths": ["/healthz"],
                "authorizationPolicies": DENY_ADMIN,
            },
            {
                "name": "wiki",
                "hosts": ["wiki.localhost", "*.docs.localhost"],
                "oidc": app_oidc(idp, "wiki", clientSecretFromEnv="WIKI_CLIENT_SECRET",
                                 cookieSecretsFromEnv="GATEWAY_SHARED_COOKIE_KEYS"),
                "authorizationPolicies": EDITORS_ONLY,
            },
            {
                "name": "notes",
                # api.docs.localhost is notes': an exact host beats wiki's *.docs.localhost,
                # as in Envoy's choice of a virtual host, whatever the order of `apps`.
                "hosts": ["notes.localhost", "api.docs.localhost"],
                "oidc": app_oidc(idp, "notes", clientSecretFromEnv="NOTES_CLIENT_SECRET",
                                 cookieSecretsFromEnv="NOTES_COOKIE_KEYS"),
            },
        ],
    }
    listener = Listener("gateway", config, port=port,
                        vm_environment={"host_env_keys": sorted(HOST_ENV), "key_values": KEY_VALUES})
    envoy = module_stack.envoy(listener, servers=(jwks,), clusters={"idp": idp.port}, env=HOST_ENV,
                               log_level="debug")
    return Gateway(envoy=envoy, idp=idp, port=port, key=key)


def jar_cookies(session: requests.Session, host: str, name: str) -> dict[str, str]:
    """The session cookie `name` (and its chunks `name_0`...) the jar holds for `host`."""
    chunk = re.compile(re.escape(name) + r"_\d+")
    found = {c.name: c.value for c in session.cookies if c.domain == host and (c.name == name or chunk.fullmatch(c.name))}
    assert found, f"no {name} cookie for {host}: {[(c.domain, c.name) for c in session.cookies]}"
    return found


def renamed(cookies: dict[str, str], old: str, new: str) -> dict[str, str]:
    return {new + name[len(old):]: value for name, value in cookies.items()}


def authorizations(idp: Idp, app: str) -> int:
    return sum(1 for e in idp.events("authorization.success") if e.get("client_id") == client_id(app))


@pytest.fixture(scope="module")
def people(gw) -> dict[str, requests.Session]:
    """alice (an editor) and bob (not) logged in on grafana, then on wiki (the
    IdP remembers them: no second login form)."""
    sessions = {}
    for user in ("alice", "bob"):
        session = html_session()
        upstream(login(session, f"{gw.url('grafana.localhost')}/", user).response)
        login(session, f"{gw.url('wiki.localhost')}/", user, require_login_page=False)
        sessions[user] = session
    return sessions


# ----- logins per host -----
def test_a_login_on_one_host_is_no_login_on_another(gw):
    grafana, wiki = gw.url("grafana.localhost"), gw.url("wiki.localhost")
    user = html_session()
    result = login(user, f"{grafana}/dashboard?id=3", "carol")
    seen = upstream(result.response)
    assert (seen["path"], seen["headers"]["x-user-email"]) == ("/dashboard?id=3", "carol@example.test")
    assert result.hops[0].status == 302
    start = gw.authorization(result.hops[0].location)
    assert (start["client_id"], start["redirect_uri"]) == (client_id("grafana"), f"{grafana}/oauth2/callback")
    assert any(c.startswith(f"{session_cookie('grafana')}_login=") for c in result.hops[0].set_cookies), (
        f"grafana's login cookie: {result.hops[0].set_cookies}"
    )
    grafana_cookies = jar_cookies(user, "grafana.localhost", session_cookie("grafana"))

    # wiki knows nothing of it: a login with wiki's own client and callback.
    start = gw.login_redirect(user.get(f"{wiki}/page", allow_redirects=False))
    assert (start["client_id"], start["redirect_uri"]) == (client_id("wiki"), f"{wiki}/oauth2/callback")

    # grafana's session under wiki's cookie name (same cookie secrets) opens nothing on wiki.
    copied = renamed(grafana_cookies, session_cookie("grafana"), session_cookie("wiki"))
    assert gw.login_redirect(gw.get(gw.authority("wiki.localhost"), "/page", cookies=copied))["client_id"] == client_id("wiki")
    api = gw.get(gw.authority("wiki.localhost"), "/api", html=False, cookies=copied)
    assert api.status_code == 401, f"{api.status_code}: {api.text[:200]}"
    # Under its own name on wiki's host it is not wiki's cookie either.
    own = gw.get(gw.authority("wiki.localhost"), "/api", html=False, cookies=grafana_cookies)
    assert own.status_code == 401, f"{own.status_code}: {own.text[:200]}"

    # wiki's own login (the IdP remembers carol: no login form) gives wiki its own session.
    before = authorizations(gw.idp, "wiki")
    result = login(user, f"{wiki}/page", require_login_page=False)
    assert upstream(result.response)["headers"]["x-user-email"] == "carol@example.test"
    assert authorizations(gw.idp, "wiki") == before + 1
    wiki_cookies = jar_cookies(user, "wiki.localhost", session_cookie("wiki"))
    back = renamed(wiki_cookies, session_cookie("wiki"), session_cookie("grafana"))
    assert gw.login_redirect(gw.get(gw.authority("grafana.localhost"), "/", cookies=back))["client_id"] == client_id("grafana")

    # Each session stands on its own.
    assert upstream(user.get(f"{grafana}/again", allow_redirects=False))["headers"]["x-user-email"] == "carol@example.test"
    assert upstream(user.get(f"{wiki}/again", allow_redirects=False))["headers"]["x-user-email"] == "carol@example.test"
    for seen in (upstream(gw.get(gw.authority("grafana.localhost"), "/", cookies=grafana_cookies)),
                 upstream(gw.get(gw.authority("wiki.localhost"), "/", cookies=wiki_cookies))):
        assert "oidc_session" not in seen["headers"].get("cookie", ""), "session cookies never reach the upstream"

    # wiki's logout ends wiki's session only, at the IdP as wiki's client.
    response = user.get(f"{wiki}/oauth2/logout", headers=SAME_ORIGIN, allow_redirects=False)
    assert response.status_code == 302, f"{response.status_code}: {response.text[:200]}"
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["post_logout_redirect_uri"] == [f"{wiki}/signed-out"]
    hint = json.loads(b64url_decode(query["id_token_hint"][0].split(".")[1]))
    assert hint["aud"] in (client_id("wiki"), [client_id("wiki")]), hint
    assert gw.login_redirect(user.get(f"{wiki}/again", allow_redirects=False))["client_id"] == client_id("wiki")
    assert upstream(user.get(f"{grafana}/still", allow_redirects=False))["headers"]["x-user-email"] == "carol@example.test"


@pytest.mark.browser
def test_chromium_keeps_one_session_per_host(gw, browser):
    grafana, wiki = gw.url("grafana.localhost"), gw.url("wiki.localhost")
    browser.get(f"{grafana}/dashboard")
    browser.dev_login("grace")
    browser.wait_for_url(f"{grafana}/dashboard")
    assert json.loads(browser.text())["headers"]["x-user-email"] == "grace@example.test"
    names = {c["name"] for c in browser.cookies()}
    assert session_cookie("grafana") in names and session_cookie("wiki") not in names, names

    before = authorizations(gw.idp, "wiki")
    browser.get(f"{wiki}/notes")
    browser.wait_for_url(f"{wiki}/notes")
    assert json.loads(browser.text())["headers"]["x-user-email"] == "grace@example.test"
    assert authorizations(gw.idp, "wiki") == before + 1, "wiki sent the browser to the IdP with its own client"
    names = {c["name"] for c in browser.cookies()}
    assert session_cookie("wiki") in names and session_cookie("grafana") not in names, names


def test_secrets_from_host_env_and_key_values_complete_logins(gw):
    """grafana's client secret and cookie keys come from Envoy's own environment,
    notes' from key_values: the IdP accepted each client's code exchange."""
    for app in ("grafana", "notes"):
        user = html_session()
        result = login(user, f"{gw.url(f'{app}.localhost')}/start", "dave")
        assert upstream(result.response)["headers"]["x-user-email"] == "dave@example.test", app
        cookies = jar_cookies(user, f"{app}.localhost", session_cookie(app))
        assert upstream(gw.get(gw.authority(f"{app}.localhost"), "/next", cookies=cookies))["path"] == "/next"
    exchanged = {e.get("client_id") for e in gw.idp.events("grant.success")}
    assert {client_id("grafana"), client_id("notes")} <= exchanged, exchanged


# ----- host matching -----
def test_hosts_pick_the_app(gw):
    port = gw.port
    expected = {
        f"GRAFANA.LocalHost:{port}": "grafana",  # case-insensitive
        "grafana.localhost": "grafana",  # no port
        "grafana.localhost:8443": "grafana",  # another port
        f"wiki.localhost:{port}": "wiki",
        f"team.docs.localhost:{port}": "wiki",  # *.docs.localhost
        f"a.b.docs.localhost:{port}": "wiki",  # any subdomain
        f"API.docs.localhost:{port}": "notes",  # notes' exact entry beats wiki's earlier wildcard
        f"notes.localhost:{port}": "notes",
        f"docs.localhost:{port}": None,  # a wildcard is not the bare domain
        f"xgrafana.localhost:{port}": None,
        f"grafana.localhost.example:{port}": None,
        f"other.localhost:{port}": None,
        f"127.0.0.1:{port}": None,
    }
    got = {}
    for authority in expected:
        response = gw.get(authority, "/page")
        if response.status_code == 302:
            got[authority] = gw.login_redirect(response)["client_id"].removesuffix("-client")
        else:
            got[authority] = None if (response.status_code, response.text) == (401, JWT_MISSING) else (
                f"{response.status_code} {response.text[:80]!r}")
    assert got == expected


def test_unmatched_hosts_get_the_top_level(gw):
    """The top level has no oidc: bearer tokens only, even for a browser, even on the
    apps' login paths; its public path; no app policy."""
    other = gw.authority("other.localhost")
    for path in ("/", "/oauth2/callback?code=x&state=y", "/oauth2/logout"):
        response = gw.get(other, path)
        assert (response.status_code, response.text) == (401, JWT_MISSING), path
    assert upstream(gw.get(other, "/admin/x", token=gw.token(groups=["users"])))["path"] == "/admin/x"
    assert upstream(gw.get(other, "/status"))["path"] == "/status"


# ----- policies and public paths per app -----
def test_each_app_judges_by_its_own_policies(gw, people):
    grafana, wiki = gw.url("grafana.localhost"), gw.url("wiki.localhost")
    alice, bob = people["alice"], people["bob"]
    # grafana denies /admin*, wiki does not.
    response = alice.get(f"{grafana}/admin/users", allow_redirects=False)
    assert_refused_page(response, "alice@example.test")
    assert upstream(alice.get(f"{wiki}/admin/users", allow_redirects=False))["path"] == "/admin/users"
    # wiki allows editors only, grafana anyone.
    assert upstream(bob.get(f"{grafana}/", allow_redirects=False))["headers"]["x-user-email"] == "bob@example.test"
    response = bob.get(f"{wiki}/", allow_redirects=False)
    assert_refused_page(response, "bob@example.test")
    # Bearer tokens (the shared jwtRules) meet the same per-app policies.
    users, editors = gw.token(groups=["users"]), gw.token(groups=["editors"])
    wiki_host, grafana_host = gw.authority("wiki.localhost"), gw.authority("grafana.localhost")
    assert (gw.get(wiki_host, "/", token=users).status_code, gw.get(wiki_host, "/", token=editors).status_code) == (403, 200)
    assert (gw.get(grafana_host, "/", token=users).status_code, gw.get(grafana_host, "/admin", token=editors).status_code) == (200, 403)


def test_public_paths_are_per_app(gw):
    grafana, wiki, notes = (gw.authority(f"{app}.localhost") for app in ("grafana", "wiki", "notes"))
    # grafana's own public path.
    assert upstream(gw.get(grafana, "/healthz"))["path"] == "/healthz"
    # Not public on wiki: a login there (or a 401 for an API client).
    assert gw.login_redirect(gw.get(wiki, "/healthz"))["client_id"] == client_id("wiki")
    assert gw.get(wiki, "/healthz", html=False).status_code == 401
    # The top level's /status: grafana replaced publicPaths, wiki and notes did not set them.
    assert gw.login_redirect(gw.get(grafana, "/status"))["client_id"] == client_id("grafana")
    assert upstream(gw.get(wiki, "/status"))["path"] == "/status"
    assert upstream(gw.get(notes, "/status"))["path"] == "/status"


# ----- counters -----
def app_counters(gw, apps=("grafana", "wiki", "notes")) -> dict[str, int]:
    current = stats.custom(gw.envoy.admin_url)
    return {f"{app}.{kind}": current.get(f"app.{app}.requests_{kind}", 0) for app in apps for kind in ("allowed", "denied")}


def test_counters_per_app(gw, people):
    time.sleep(COUNTER_FLUSH)  # earlier tests' requests reach /stats first
    before = app_counters(gw)
    grafana, wiki = gw.url("grafana.localhost"), gw.url("wiki.localhost")
    alice, bob = people["alice"], people["bob"]
    # grafana: 3 allowed (2 on the session, 1 public), 1 login redirect (neither).
    upstream(alice.get(f"{grafana}/one", allow_redirects=False))
    upstream(alice.get(f"{grafana}/two", allow_redirects=False))
    upstream(gw.get(gw.authority("grafana.localhost"), "/healthz"))
    gw.login_redirect(gw.get(gw.authority("grafana.localhost"), "/"))
    # wiki: 3 denied (an API request without session, a session and a token the policy refuses),
    # 1 login redirect (neither).
    assert gw.get(gw.authority("wiki.localhost"), "/api", html=False).status_code == 401
    assert bob.get(f"{wiki}/", allow_redirects=False).status_code == 403
    assert gw.get(gw.authority("wiki.localhost"), "/", token=gw.token(groups=["users"])).status_code == 403
    gw.login_redirect(gw.get(gw.authority("wiki.localhost"), "/"))
    # An unmatched host counts for no app.
    assert gw.get(gw.authority("other.localhost"), "/").status_code == 401

    expected = {
        "app.grafana.requests_allowed": before["grafana.allowed"] + 3,
        "app.wiki.requests_denied": before["wiki.denied"] + 3,
    }
    stats.wait_for(gw.envoy.admin_url, expected, timeout=15)
    time.sleep(COUNTER_FLUSH)  # every VM's share has arrived
    after = app_counters(gw)
    moved = {name: after[name] - before[name] for name in after}
    assert moved == {
        "grafana.allowed": 3, "grafana.denied": 0,
        "wiki.allowed": 0, "wiki.denied": 3,
        "notes.allowed": 0, "notes.denied": 0,
    }, f"before {before}, after {after}"
    exported = stats.stats(gw.envoy.admin_url, r"^wasmcustom\.oidc_filter\.app\.")
    assert "wasmcustom.oidc_filter.app.grafana.requests_allowed" in exported, sorted(exported)


def test_discovery_and_keys_fetched_once_per_issuer(gw, people):
    """Three apps and a token rule share one issuer: one discovery, one JWKS fetch."""
    assert gw.get(gw.authority("wiki.localhost"), "/", token=gw.token(groups=["editors"])).status_code == 200
    time.sleep(COUNTER_FLUSH)
    current = stats.custom(gw.envoy.admin_url)
    fetches = {name: current.get(name, 0) for name in
               ("discovery_fetch.succeeded", "discovery_fetch.failed", "jwks_fetch.succeeded", "jwks_fetch.failed")}
    # jwks: the IdP's and the token issuer's.
    assert fetches == {"discovery_fetch.succeeded": 1, "discovery_fetch.failed": 0,
                       "jwks_fetch.succeeded": 2, "jwks_fetch.failed": 0}


# ----- secrets stay secret -----
def key_spellings(key: str) -> set[str]:
    raw = base64.b64decode(key)
    return {key, key.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()}


def test_host_env_secrets_never_show(gw):
    """With host_env_keys, neither grafana's client secret nor a cookie key is in
    /config_dump, /stats, /server_info or Envoy's debug log (after a login).

    One exception, Envoy's and not the filter's: at `-l debug` Envoy's router dumps
    the headers of every request it sends, the filter's token requests included,
    so the `Authorization: Basic` of client_secret_basic shows there, base64 of
    `client_id:secret`. That line is allowed; the filter's own lines never hold it."""
    user = html_session()
    upstream(login(user, f"{gw.url('grafana.localhost')}/", "erin").response)
    admin = gw.envoy.admin_url
    dump = requests.get(f"{admin}/config_dump", params={"include_eds": ""}, timeout=REQUEST_TIMEOUT).text
    texts = {
        "/config_dump": dump,
        "/stats": requests.get(f"{admin}/stats", timeout=REQUEST_TIMEOUT).text,
        "/stats/prometheus": stats.prometheus_text(admin),
        "/server_info": requests.get(f"{admin}/server_info", timeout=REQUEST_TIMEOUT).text,
    }
    time.sleep(0.3)  # the log is flushed every 100 ms
    texts["envoy log"] = gw.envoy.log_text()
    # The search would find a value: key_values are configuration, shown as such; the
    # log is at debug level.
    assert WIKI_SECRET in dump and "GATEWAY_GRAFANA_CLIENT_SECRET" in dump
    assert "[debug]" in texts["envoy log"]
    hidden = {"grafana client secret": {GRAFANA_SECRET}}
    hidden |= {f"cookie key {i + 1}": key_spellings(key) for i, key in enumerate(SHARED_KEYS)}
    leaks = [f"{what} in {where}" for where, text in texts.items() for what, values in hidden.items()
             if any(value in text for value in values)]
    assert not leaks, leaks
    basic = base64.b64encode(f"{client_id('grafana')}:{GRAFANA_SECRET}".encode()).decode()
    header_dump = f"'authorization', 'Basic {basic}'"
    elsewhere = [line[:160] for line in texts["envoy log"].splitlines() if basic in line and line.strip() != header_dump]
    assert not elsewhere, elsewhere
    assert all(basic not in text for where, text in texts.items() if where != "envoy log")


# ----- defaults next to a top-level login -----
def test_top_level_login_and_app_logins_side_by_side(stack, gw):
    """With an `oidc` at the top level: an app without its own uses it, an app with
    its own has its own client and cookies; the default cookie names coexist."""
    top_oidc = app_oidc(gw.idp, "portal", clientSecret="portal-secret", cookieSecrets=[new_cookie_secret()])
    config = {
        "oidc": top_oidc,
        "clusters": {gw.idp.authority: "idp"},
        "apps": [
            {"name": "grafana", "hosts": ["grafana.localhost"],
             "oidc": app_oidc(gw.idp, "grafana", clientSecret="x", cookieSecrets=[new_cookie_secret()])},
            {"name": "plain", "hosts": ["plain.localhost"], "publicPaths": ["/open"]},
        ],
    }
    listener = Listener("side", config)
    envoy = stack.envoy(listener, clusters={"idp": gw.idp.port})
    side = Gateway(envoy=envoy, idp=gw.idp, port=listener.port, key=gw.key)
    cases = {"grafana.localhost": ("grafana", session_cookie("grafana")),
             "plain.localhost": ("portal", "oidc_session"),
             "other.localhost": ("portal", "oidc_session")}
    for host, (client, cookie) in cases.items():
        response = side.get(side.authority(host), "/x")
        start = side.login_redirect(response)
        assert (start["client_id"], start["redirect_uri"]) == (client_id(client), f"{side.url(host)}/oauth2/callback"), host
        login_cookies = response.raw.headers.getlist("set-cookie")
        assert any(c.startswith(f"{cookie}_login=") for c in login_cookies), (host, login_cookies)
    assert upstream(side.get(side.authority("plain.localhost"), "/open"))["path"] == "/open"


# ----- configurations refused at load -----
def good_key() -> str:
    return new_cookie_secret()


def refusal_oidc(**fields) -> dict:
    block = {"issuer": "http://127.0.0.1:1", "clientId": "c", "cookieSecure": False}
    block |= {"clientSecretFromEnv": "REFUSAL_SECRET", "cookieSecretsFromEnv": "REFUSAL_KEYS"}
    block |= fields
    return {k: v for k, v in block.items() if v is not None}


def refusal_config(top: dict | None = None, apps: list[dict] | None = None) -> dict:
    config = {"jwtRules": [{"issuer": "https://issuer-a.test", "jwksUri": "http://127.0.0.1:1/jwks.json"}]}
    if top is not None:
        config["oidc"] = top
    if apps is not None:
        config["apps"] = apps
    return config


def two_apps(first: dict, second: dict) -> list[dict]:
    return [{"name": "one", "hosts": ["one.localhost"], "oidc": first},
            {"name": "two", "hosts": ["two.localhost"], "oidc": second}]


GOOD_VALUES = {"REFUSAL_SECRET": "s3cret-" + secrets.token_hex(8), "REFUSAL_KEYS": good_key()}
SHORT_KEY = base64.b64encode(b"sixteen-byte-key").decode()
NOT_BASE64 = "%%not*base64%%"

# id -> (plugin config, key_values, Envoy process env (None removes), host_env_keys,
#        substrings one "invalid plugin configuration" line must hold, values the log must not hold)
REFUSALS = {
    "secret-unset": (
        refusal_config(refusal_oidc()), {"REFUSAL_KEYS": GOOD_VALUES["REFUSAL_KEYS"]},
        {"REFUSAL_SECRET": None}, ["REFUSAL_SECRET"],
        ["oidc.clientSecretFromEnv: environment variable `REFUSAL_SECRET` is not set"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "app-secret-not-passed-to-vm": (
        # In Envoy's environment, but not in host_env_keys: the VM does not see it.
        refusal_config(apps=two_apps(refusal_oidc(clientSecretFromEnv="ONE_SECRET", cookieName="one"),
                                     refusal_oidc(clientSecretFromEnv="TWO_SECRET", cookieName="two"))),
        {"REFUSAL_KEYS": GOOD_VALUES["REFUSAL_KEYS"], "ONE_SECRET": "one-secret-value"},
        {"TWO_SECRET": "two-secret-value-in-envoy-only"}, [],
        ["apps[1].oidc.clientSecretFromEnv: environment variable `TWO_SECRET` is not set"],
        ["two-secret-value-in-envoy-only", "one-secret-value"],
    ),
    "keys-empty": (
        refusal_config(refusal_oidc()), {"REFUSAL_SECRET": GOOD_VALUES["REFUSAL_SECRET"]},
        {"REFUSAL_KEYS": ""}, ["REFUSAL_KEYS"],
        ["oidc.cookieSecretsFromEnv: environment variable `REFUSAL_KEYS` is empty"], [GOOD_VALUES["REFUSAL_SECRET"]],
    ),
    "second-key-not-base64": (
        refusal_config(refusal_oidc()), {"REFUSAL_SECRET": GOOD_VALUES["REFUSAL_SECRET"],
                                         "REFUSAL_KEYS": f"{GOOD_VALUES['REFUSAL_KEYS']},{NOT_BASE64}"},
        {}, [],
        ["oidc.cookieSecretsFromEnv: key 2 in environment variable `REFUSAL_KEYS` is not base64"],
        [NOT_BASE64, GOOD_VALUES["REFUSAL_KEYS"], GOOD_VALUES["REFUSAL_SECRET"]],
    ),
    "app-key-too-short": (
        refusal_config(apps=[{"name": "one", "hosts": ["one.localhost"], "oidc": refusal_oidc()}]),
        {"REFUSAL_SECRET": GOOD_VALUES["REFUSAL_SECRET"], "REFUSAL_KEYS": SHORT_KEY},
        {}, [],
        ["apps[0].oidc.cookieSecretsFromEnv: key 1 in environment variable `REFUSAL_KEYS` must be base64 of 32 random bytes, not 16"],
        [SHORT_KEY],
    ),
    "secret-and-secret-from-env": (
        refusal_config(refusal_oidc(clientSecret="inline")), GOOD_VALUES, {}, [],
        ["oidc", "`clientSecret`", "`clientSecretFromEnv`"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "keys-and-keys-from-env": (
        refusal_config(refusal_oidc(cookieSecrets=[good_key()])), GOOD_VALUES, {}, [],
        ["oidc", "`cookieSecrets`", "`cookieSecretsFromEnv`"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "same-cookie-name-and-domain": (
        refusal_config(apps=two_apps(refusal_oidc(cookieName="sid", cookieDomain="example.test"),
                                     refusal_oidc(cookieName="sid", cookieDomain="example.test"))),
        GOOD_VALUES, {}, [],
        ["apps[1].oidc", "cookieName"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "app-name-not-a-dns-label": (
        refusal_config(apps=[{"name": "Grafana", "hosts": ["one.localhost"], "oidc": refusal_oidc()}]),
        GOOD_VALUES, {}, [], ["apps[0].name", "Grafana"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "app-without-hosts": (
        refusal_config(apps=[{"name": "one", "oidc": refusal_oidc()}]),
        GOOD_VALUES, {}, [], ["apps[0].hosts"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
    "app-cookie-name-equals-top-level": (
        refusal_config(refusal_oidc(), [{"name": "one", "hosts": ["one.localhost"],
                                         "oidc": refusal_oidc(cookieName="oidc_session")}]),
        GOOD_VALUES, {}, [],
        ["cookieName"], [GOOD_VALUES["REFUSAL_KEYS"]],
    ),
}


@pytest.mark.parametrize("config, key_values, env, host_env_keys, expected, hidden", REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_at_load(stack, config, key_values, env, host_env_keys, expected, hidden):
    listener = Listener("main", config, vm_environment={"host_env_keys": host_env_keys, "key_values": key_values})
    outcome = stack.envoy_expecting_failure(listener, env=env, timeout=20, concurrency=1)
    assert not outcome.became_ready, "envoy served with a refused configuration"
    assert outcome.exit_code not in (None, 0), f"envoy still running or exited 0: {outcome.exit_code}"
    lines = [line for line in outcome.log.splitlines() if MARKER in line]
    assert any(all(s in line for s in expected) for line in lines), (
        f"no '{MARKER}' line holds all of {expected}:\n" + "\n".join(lines or [outcome.log[-3000:]])
    )
    shown = [value for value in hidden if value in outcome.log]
    assert not shown, f"the log shows secret values: {shown}"


def test_refusal_control_starts(stack):
    """The refused configurations above differ from this one by their fault only."""
    config = refusal_config(refusal_oidc(), [
        {"name": "one", "hosts": ["one.localhost"], "oidc": refusal_oidc(clientSecretFromEnv="ONE_SECRET", cookieName="one")},
    ])
    listener = Listener("main", config, vm_environment={
        "host_env_keys": ["REFUSAL_SECRET"],
        "key_values": {"REFUSAL_KEYS": f"{GOOD_VALUES['REFUSAL_KEYS']} {good_key()}", "ONE_SECRET": "one"},
    })
    envoy = stack.envoy(listener, env={"REFUSAL_SECRET": GOOD_VALUES["REFUSAL_SECRET"]},
                        clusters={"outbound|1||127.0.0.1": 1})
    assert envoy.exit_code() is None
    assert MARKER not in envoy.log_text()
