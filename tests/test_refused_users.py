"""What a user who is refused gets (issue #26): a signed-in browser user whom a
policy denies sees who they are signed in as and can sign out from that page;
API clients keep Istio's plain `403 RBAC: access denied`."""

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests

from harness.login import login
from harness.oidc_app import App, html_session, set_cookies, upstream

RBAC = "RBAC: access denied"
# Only the `staff` group may in; of the IdP's users only alice is in it.
STAFF_ONLY = [{"rules": [{"when": [{"key": "request.auth.claims[groups]", "values": ["staff"]}]}]}]


class Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        if tag == "form":
            self.forms.append(dict(attrs))


@pytest.fixture(scope="module")
def app(module_stack):
    return App(
        module_stack,
        top_level={"authorizationPolicies": STAFF_ONLY},
        idp_options={"users": {"alice": {"groups": ["staff"]}}},
    )


def test_a_refused_browser_user_sees_who_they_are_and_can_sign_out(app):
    session = html_session()
    result = login(session, f"{app.url}/reports", "mallory")
    page = result.response
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "mallory@example.test" in page.text
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    forms = Forms()
    forms.feed(page.text)
    (form,) = forms.forms
    assert form["method"] == "post" and form["action"] == "/oauth2/logout"
    # The button posts from the page's own origin: the session ends.
    signed_out = session.post(urljoin(page.url, form["action"]), headers={"Origin": app.url},
                              allow_redirects=False, timeout=10)
    assert signed_out.status_code == 302
    cleared = [c for c in set_cookies(signed_out) if c.startswith("oidc_session=")]
    assert cleared and re.search(r"max-age=0", cleared[0], re.I), set_cookies(signed_out)
    # Signed out: the next navigation goes to the IdP again.
    again = html_session().get(f"{app.url}/reports", allow_redirects=False, timeout=10)
    assert again.status_code == 302


def test_api_clients_and_xhr_keep_the_plain_answer(app):
    session = html_session()
    result = login(session, f"{app.url}/x", "trent")
    assert result.response.status_code == 403
    for headers in ({"Accept": "application/json"}, {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}):
        api = session.get(f"{app.url}/api", headers=headers, allow_redirects=False, timeout=10)
        assert (api.status_code, api.text) == (403, RBAC), headers


def test_an_allowed_user_is_let_in(app):
    session = html_session()
    seen = upstream(login(session, f"{app.url}/reports", "alice").response)
    assert seen["headers"]["x-user-email"] == "alice@example.test"


# ----- 401 only where a credential could help -----
ISSUER = "https://issuer-refused.test"
# Only from 10.0.0.0/8, and only with a token; /metrics for the mesh's own peers.
FROM_THE_OFFICE = [
    {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"], "requestPrincipals": ["*"]}}]},
               {"from": [{"source": {"requestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/open*"]}}]}]},
    {"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["monitoring"]}}],
                                  "to": [{"operation": {"paths": ["/metrics"]}}]}]},
]


@pytest.fixture(scope="module")
def office(module_stack):
    from harness.envoy import Listener
    from harness.plugin import plugin_config, rule
    from harness.tokens import cached_key, claims, sign

    key = cached_key("ES256", "refused")
    server = module_stack.jwks_server({"keys": [key.jwk()]})
    listeners = [
        Listener(name, plugin_config(rule(ISSUER, server), servers=(server,), authorizationPolicies=FROM_THE_OFFICE,
                                     **extra))
        for name, extra in (("strict", {}), ("anonymous", {"allowMissing": True}))
    ]
    envoy = module_stack.envoy(*listeners, servers=(server,))
    return envoy, sign({}, claims(ISSUER, sub="u"), key)


@pytest.mark.parametrize("listener", ["strict", "anonymous"])
def test_a_request_no_credential_could_help_gets_403_not_401(office, listener):
    envoy, token = office
    url = envoy.url(listener)
    # From 127.0.0.1, outside the office, and without a client certificate: no token
    # can help, so none is asked for.
    for path in ("/reports", "/metrics"):
        response = requests.get(url + path, timeout=10)
        assert (response.status_code, response.text) == (403, RBAC), path
        assert "www-authenticate" not in response.headers
        with_token = requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert (with_token.status_code, with_token.text) == (403, RBAC), path
    # Where a token would do, it is asked for.
    response = requests.get(url + "/open/x", timeout=10)
    assert (response.status_code, response.text) == (401, "Jwt is missing")
    assert response.headers["www-authenticate"].startswith("Bearer realm=")
    assert requests.get(url + "/open/x", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
