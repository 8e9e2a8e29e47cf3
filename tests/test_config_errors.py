"""A bad plugin configuration stops Envoy from starting, and says where.

Envoy 1.40 with a static bootstrap and fail_open: false exits with status 1
("Unable to create Wasm plugin oidc_filter") when the plugin's on_configure
fails; the filter's own log line names the faulty field.
"""

import json

import pytest

from harness.envoy import Listener

MARKER = "invalid plugin configuration"
ISSUER = "https://issuer-a.test"
JWKS_URI = "http://127.0.0.1:1/jwks.json"


def good_rule(**changes):
    fields = {"issuer": ISSUER, "jwksUri": JWKS_URI}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


COOKIE_KEY = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="


def domain_sign_in(apps=None, **changes):
    """A top-level login for example.com with one callback host (docs/one-sign-in.md)."""
    oidc = {"issuer": ISSUER, "clientId": "c", "clientSecret": "s", "cookieSecrets": [COOKIE_KEY],
            "cookieDomain": "example.com", "redirectUri": "https://auth.example.com/oauth2/callback"}
    oidc.update(changes)
    config = {"oidc": {k: v for k, v in oidc.items() if v is not None}}
    return config | ({"apps": apps} if apps else {})


# id -> (plugin config, substrings that one "invalid plugin configuration" line must hold)
BAD_CONFIGS = {
    "missing-issuer": ({"jwtRules": [good_rule(issuer=None)]}, ["jwtRules[0].issuer"]),
    "second-rule-missing-issuer": ({"jwtRules": [good_rule(), good_rule(issuer=None)]}, ["jwtRules[1].issuer"]),
    "misspelled-header-field": (
        {"jwtRules": [good_rule(fromHeaders=[{"nam": "x-jwt"}])]},
        ["jwtRules[0].fromHeaders[0]", "nam"],
    ),
    "jwks-uri-not-a-url": ({"jwtRules": [good_rule(jwksUri="not a url")]}, ["jwtRules[0].jwksUri"]),
    "jwks-and-jwks-uri": ({"jwtRules": [good_rule(jwks='{"keys": []}')]}, ["jwtRules[0]", "jwks"]),
    "bad-timeout": ({"jwtRules": [good_rule(timeout="5 parsecs")]}, ["jwtRules[0].timeout"]),
    "bad-cache-duration": ({"jwtRules": [good_rule()], "jwksCacheDuration": "soon"}, ["jwksCacheDuration"]),
    "unknown-top-level-field": ({"jwtRules": [good_rule()], "jwtRulez": []}, ["jwtRulez"]),
    "invalid-json": ('{"jwtRules": [', []),
    "redirect-uri-without-cookie-domain": (domain_sign_in(cookieDomain=None), ["oidc.redirectUri", "cookieDomain"]),
    "redirect-uri-outside-cookie-domain": (
        domain_sign_in(redirectUri="https://auth.example.org/oauth2/callback"), ["oidc.redirectUri", "not within"],
    ),
    "redirect-uri-over-http": (
        domain_sign_in(redirectUri="http://auth.example.com/oauth2/callback"), ["oidc.redirectUri", "https"],
    ),
    "redirect-uri-and-callback-path": (domain_sign_in(callbackPath="/cb"), ["oidc.callbackPath", "redirectUri"]),
    "bad-cookie-domain": (domain_sign_in(cookieDomain="example.com; Secure"), ["oidc.cookieDomain"]),
    "bad-allowed-redirect-domain": (
        domain_sign_in(allowedRedirectDomains=["*.example.com"]), ["oidc.allowedRedirectDomains[0]"],
    ),
    "allowed-redirect-domains-without-redirect-uri": (
        domain_sign_in(redirectUri=None, allowedRedirectDomains=[".example.com"]),
        ["oidc.allowedRedirectDomains", "redirectUri"],
    ),
    "app-host-outside-cookie-domain": (
        domain_sign_in(apps=[{"name": "a", "hosts": ["a.example.com", "a.example.org"]}]),
        ["apps[0].hosts[1]", "cookieDomain"],
    ),
}


def marker_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if MARKER in line]


@pytest.mark.parametrize("config, expected", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_prevents_start(stack, config, expected):
    outcome = stack.envoy_expecting_failure(Listener("main", config), timeout=20)
    assert not outcome.became_ready, "envoy served with a bad plugin configuration"
    assert outcome.exit_code not in (None, 0), f"envoy still running or exited 0: {outcome.exit_code}"
    lines = marker_lines(outcome.log)
    assert lines, f"no '{MARKER}' line in the log:\n{outcome.log[-3000:]}"
    assert any(all(s in line for s in expected) for line in lines), (
        f"no '{MARKER}' line holds all of {expected}:\n" + "\n".join(lines)
    )


def test_good_config_starts(stack):
    """Control: the configurations above differ from this one by their fault only."""
    config = {"jwtRules": [good_rule(fromHeaders=[{"name": "x-jwt", "prefix": "Bearer "}], timeout="5s")]}
    config["jwksCacheDuration"] = "600s"
    envoy = stack.envoy(Listener("main", json.dumps(config)), clusters={"outbound|1||127.0.0.1": 1})
    assert envoy.exit_code() is None
    assert not marker_lines(envoy.log_text())
