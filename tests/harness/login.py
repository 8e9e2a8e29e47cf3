"""A cookie-keeping, non-browser user agent for the IdP's pages.

`login()` starts at a URL (an app URL behind Envoy that redirects to the
IdP, or an authorization URL), follows redirects one hop at a time with the
`requests.Session`'s cookie jar, fills oidc-provider's dev login form (any
username, any password), submits its consent form when shown, and stops at
the first response that is neither a redirect nor one of those pages. Every
hop is recorded so a test can read `state`, `code`, `Set-Cookie`, etc.

`logout()` does the same for RP-initiated logout: it follows redirects and
confirms the IdP's "Do you want to sign-out?" form.

The pages are parsed (form action, method and fields are read from the HTML,
buttons tied to a form with form="id" included), so nothing depends on
oidc-provider's paths. Bounded: at most `max_hops` requests, each with a
timeout, and an overall deadline.
"""

import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import DefaultCookiePolicy
from typing import Callable
from urllib.parse import urljoin

import requests

from .oidc import query_params

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# What a browser sends when the user follows a link on the app's own pages: the
# filter logs out only on same-origin requests.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
REQUEST_TIMEOUT = 10.0


class LoginError(AssertionError):
    pass


_LOOPBACK_POLICY = DefaultCookiePolicy(secure_protocols=("https", "wss", "http"))


class LoopbackSession(requests.Session):
    """A requests.Session that sends `Secure` cookies over plain http, as
    Chromium does for 127.0.0.1 and localhost (potentially trustworthy
    origins). Python's cookie jar never returns a Secure cookie to http."""

    def __init__(self):
        super().__init__()
        self.cookies.set_policy(_LOOPBACK_POLICY)

    def prepare_request(self, request):
        prepared = super().prepare_request(request)
        # requests rebuilds the Cookie header from a jar with the default
        # policy; build it again with ours.
        jar = requests.cookies.RequestsCookieJar(_LOOPBACK_POLICY)
        jar.update(self.cookies)
        if isinstance(request.cookies, dict):
            jar.update(requests.cookies.cookiejar_from_dict(request.cookies))
        elif request.cookies:
            jar.update(request.cookies)
        prepared.headers.pop("Cookie", None)
        prepared.prepare_cookies(jar)
        return prepared


def loopback_session() -> requests.Session:
    """A LoopbackSession: use it where the app under test sets Secure cookies."""
    return LoopbackSession()


# ----- HTML forms -----
@dataclass
class Form:
    action: str  # absolute
    method: str  # GET or POST
    id: str | None
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, value) of inputs
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of named submit buttons
    auto_submit: bool = False  # submitted by the page's own script (form_post)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.fields}

    def value(self, name: str) -> str | None:
        return next((v for n, _, v in self.fields if n == name), None)

    @property
    def kind(self) -> str:
        """login | consent | logout | autopost | other (oidc-provider's pages)."""
        names = self.names()
        if "login" in names and "password" in names:
            return "login"
        if self.value("prompt") == "consent":
            return "consent"
        if "xsrf" in names and not self.auto_submit:
            return "logout"
        if self.auto_submit:
            return "autopost"
        return "other"

    def data(self, **overrides) -> dict[str, str]:
        values = {name: value for name, _, value in self.fields}
        values.update(overrides)
        return values


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._open: dict | None = None
        self._orphans: list[tuple[str, dict]] = []  # inputs/buttons with form="id" outside the form
        self.scripts: list[str] = []
        self._in_script = False
        self.body_onload = ""

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._open = {"attrs": a, "items": []}
            self.forms.append(self._open)
        elif tag in ("input", "button", "textarea", "select"):
            owner = a.get("form")
            if owner:
                self._orphans.append((owner, {"tag": tag, **a}))
            elif self._open is not None:
                self._open["items"].append({"tag": tag, **a})
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "body":
            self.body_onload = a.get("onload", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and self.scripts:
            self.scripts[-1] += data

    def attach_orphans(self):
        by_id = {f["attrs"].get("id"): f for f in self.forms if f["attrs"].get("id")}
        for owner, item in self._orphans:
            if owner in by_id:
                by_id[owner]["items"].append(item)


def parse_forms(html: str, page_url: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    parser.attach_orphans()
    page_script = " ".join(parser.scripts) + " " + parser.body_onload
    forms = []
    for raw in parser.forms:
        attrs = raw["attrs"]
        form = Form(
            action=urljoin(page_url, attrs.get("action") or page_url),
            method=(attrs.get("method") or "GET").upper(),
            id=attrs.get("id"),
        )
        for item in raw["items"]:
            kind = (item.get("type") or ("submit" if item["tag"] == "button" else "text")).lower()
            name = item.get("name")
            if item["tag"] == "button" or kind == "submit":
                if name:
                    form.buttons.append((name, item.get("value", "")))
            elif name and kind not in ("checkbox", "radio") or (name and "checked" in item):
                form.fields.append((name, kind, item.get("value", "")))
        visible = [f for f in form.fields if f[1] != "hidden"]
        form.auto_submit = not visible and not form.buttons and ".submit()" in page_script
        forms.append(form)
    return forms


# ----- the walk -----
@dataclass
class Hop:
    method: str
    url: str
    status: int
    location: str | None  # absolute, for a redirect
    set_cookies: list[str]  # the Set-Cookie headers of this response
    page: str | None = None  # which IdP page was handled: login/consent/logout/autopost

    @property
    def query(self) -> dict[str, str]:
        return query_params(self.url)


@dataclass
class FlowResult:
    response: requests.Response  # where the walk stopped
    hops: list[Hop]

    @property
    def url(self) -> str:
        return self.response.url

    @property
    def status(self) -> int:
        return self.response.status_code

    def pages(self) -> list[str]:
        """The IdP pages submitted on the way, in order (e.g. ['login', 'consent'])."""
        return [h.page for h in self.hops if h.page]

    def first_hop(self, url_prefix: str) -> Hop:
        """The first request made to a URL starting with `url_prefix`."""
        for hop in self.hops:
            if hop.url.startswith(url_prefix):
                return hop
        raise LoginError(f"no hop to {url_prefix}; hops: {self.describe()}")

    def redirect_to(self, url_prefix: str) -> Hop:
        """The first hop that redirected to a URL starting with `url_prefix`."""
        for hop in self.hops:
            if hop.location and hop.location.startswith(url_prefix):
                return hop
        raise LoginError(f"no redirect to {url_prefix}; hops: {self.describe()}")

    def callback_params(self, redirect_uri: str) -> dict[str, str]:
        """The query the IdP sent to `redirect_uri` (code, state, iss or error)."""
        return query_params(self.redirect_to(redirect_uri).location)

    def describe(self) -> str:
        return "\n".join(
            f"  {h.method} {_short(h.url)} -> {h.status} {_short(h.location or '')} {h.page or ''}" for h in self.hops
        )


StopRule = str | Callable[[str], bool] | None


def _matches(rule: StopRule, url: str) -> bool:
    if rule is None:
        return False
    return url.startswith(rule) if isinstance(rule, str) else bool(rule(url))


def follow(
    session: requests.Session,
    start_url: str,
    *,
    username: str = "alice",
    password: str = "any-password",
    consent: bool = True,
    logout_everywhere: bool = True,
    stop_before: StopRule = None,
    max_hops: int = 20,
    timeout: float = 30.0,
    request_timeout: float = REQUEST_TIMEOUT,
    headers: dict | None = None,
) -> FlowResult:
    """Walk from `start_url` like a browser without JavaScript, handling the
    IdP's login, consent, logout-confirmation and auto-posting pages.

    stop_before: a URL prefix or predicate; the walk stops before requesting a
        matching redirect target (the last hop is then that redirect), e.g.
        a redirect_uri whose code must stay unused.
    consent: False stops at the consent page instead of accepting it.
    logout_everywhere: on the logout page, True answers "Yes, sign me out"
        (ends the IdP session), False "No, stay signed in" (only the client).
    """
    deadline = time.monotonic() + timeout
    hops: list[Hop] = []
    method, url, data = "GET", start_url, None
    response = None
    while True:
        if len(hops) >= max_hops:
            raise LoginError(f"more than {max_hops} hops:\n{_describe(hops)}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise LoginError(f"flow not finished within {timeout}s:\n{_describe(hops)}")
        response = session.request(
            method, url, data=data, headers=headers, allow_redirects=False, timeout=min(request_timeout, left)
        )
        hop = Hop(
            method=method,
            url=url,
            status=response.status_code,
            location=None,
            set_cookies=response.raw.headers.getlist("Set-Cookie") if response.raw is not None else [],
        )
        hops.append(hop)
        if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
            hop.location = urljoin(url, response.headers["location"])
            if _matches(stop_before, hop.location):
                break
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, data = "GET", None
            url = hop.location
            continue
        if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
            break
        action = _next_form(response, username, password, consent, logout_everywhere)
        if action is None:
            break
        hop.page, form_method, url, data = action
        if _matches(stop_before, url):
            break
        method = form_method
        if method == "GET":
            url = url.split("?", 1)[0] + "?" + requests.compat.urlencode(data)
            data = None
    return FlowResult(response=response, hops=hops)


def _next_form(response, username, password, consent, logout_everywhere):
    """(page kind, method, action, data) of the form to submit, or None to stop."""
    for form in parse_forms(response.text, response.url):
        kind = form.kind
        if kind == "login":
            return kind, form.method, form.action, form.data(login=username, password=password)
        if kind == "consent":
            return (kind, form.method, form.action, form.data()) if consent else None
        if kind == "logout":
            extra = dict(form.buttons[:1]) if logout_everywhere and form.buttons else {}
            return kind, form.method, form.action, form.data(**extra)
        if kind == "autopost":
            return kind, form.method, form.action, form.data()
    return None


def _short(url: str, limit: int = 160) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."


def _describe(hops: list[Hop]) -> str:
    return FlowResult(response=None, hops=hops).describe()  # type: ignore[arg-type]


def login(
    session: requests.Session,
    start_url: str,
    username: str = "alice",
    password: str = "any-password",
    **kwargs,
) -> FlowResult:
    """Log in through the IdP's dev login form; see `follow` for the options.
    Fails unless the login form was actually submitted (unless the IdP
    session already existed and no login page was shown: pass
    require_login_page=False then)."""
    require_login_page = kwargs.pop("require_login_page", True)
    result = follow(session, start_url, username=username, password=password, **kwargs)
    if require_login_page and "login" not in result.pages():
        raise LoginError(f"no login form was submitted; stopped at {result.status} {result.url}\n{result.describe()}")
    return result


def logout(session: requests.Session, end_session_url: str, everywhere: bool = True, **kwargs) -> FlowResult:
    """RP-initiated logout: follow `end_session_url` (an app logout URL or the
    IdP's end_session endpoint) and confirm the IdP's sign-out form."""
    return follow(session, end_session_url, logout_everywhere=everywhere, **kwargs)
