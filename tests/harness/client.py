"""HTTP requests through Envoy, and checks on its deny responses."""

import json
from urllib.parse import urlsplit

import requests

REQUEST_TIMEOUT = 15.0  # above every rule timeout used in the tests


def get(base_url: str, path: str = "/", token: str | None = None, headers: dict | None = None) -> requests.Response:
    """GET base_url+path (path kept verbatim); `token` goes in 'Authorization: Bearer'."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    # A fresh connection per request spreads requests over Envoy's workers.
    all_headers.setdefault("Connection", "close")
    return requests.get(base_url + path, headers=all_headers, timeout=REQUEST_TIMEOUT, allow_redirects=False)


def upstream_view(response: requests.Response) -> dict:
    """What the echo upstream saw; fails if the request did not reach it."""
    assert response.status_code == 200, f"expected upstream 200, got {response.status_code}: {response.text!r}"
    return json.loads(response.text)


def expected_realm(response: requests.Response) -> str:
    """Bearer realm as jwt_authn builds it: http://<host>/<path without query>."""
    url = urlsplit(response.request.url)
    return f"http://{url.netloc}{url.path}"


def assert_denied(response: requests.Response, status: int, body: str) -> None:
    """The filter answered itself with `status` and exactly `body`, with
    WWW-Authenticate as jwt_authn sends it (on its 403 too): error=invalid_token
    unless the token was missing."""
    assert (response.status_code, response.text) == (status, body), (
        f"expected {status} {body!r}, got {response.status_code} {response.text!r}"
    )
    assert_www_authenticate(response, invalid_token=(body != "Jwt is missing"))


def assert_www_authenticate(response: requests.Response, invalid_token: bool) -> None:
    expected = f'Bearer realm="{expected_realm(response)}"'
    if invalid_token:
        expected += ', error="invalid_token"'
    assert response.headers.get("www-authenticate") == expected


def assert_rejected_token(response: requests.Response) -> None:
    """A 401 for a bad token whatever the exact reason text: never reached the upstream."""
    assert response.status_code == 401, f"expected 401, got {response.status_code}: {response.text!r}"
    assert_www_authenticate(response, invalid_token=True)
