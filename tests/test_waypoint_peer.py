"""The peer on an Istio ambient-mode waypoint: no peer certificate, but the filter
state `io.istio.peer_principal` (the HBONE peer's SPIFFE ID, set by Istio before
the HTTP filters), which Istio's own RBAC reads for `principals`, `namespaces`
and `source.principal`. Here Envoy's `set_filter_state` filter plays the
waypoint's part, with the value taken from a test header so one listener serves
every identity."""

import pytest
import requests

from harness.client import REQUEST_TIMEOUT
from harness.envoy import Listener
from harness.oidc_app import upstream
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "testing@secure.istio.io"
RBAC = "RBAC: access denied"
GOOD = "spiffe://cluster.local/ns/good/sa/x"
EVIL = "spiffe://cluster.local/ns/evil/sa/y"
PEER_HEADER = "x-test-peer-principal"


def waypoint_filter_state(factory_key: str = "envoy.string") -> dict:
    """What an Istio waypoint sets before the HTTP filters (Istio's
    `pilot/pkg/xds/filters/filters.go`), from a header instead of the HBONE peer.
    A request without the header has no filter state at all."""
    return {
        "name": "envoy.filters.http.set_filter_state",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
            "on_request_headers": [
                {
                    "object_key": "io.istio.peer_principal",
                    "factory_key": factory_key,
                    "format_string": {
                        "text_format_source": {"inline_string": f"%REQ({PEER_HEADER})%"},
                        # A missing header is "" (not Envoy's "-"), then skipped.
                        "omit_empty_values": True,
                    },
                    "skip_if_empty": True,
                }
            ],
        },
    }


def deny(source: dict) -> list:
    return [{"action": "DENY", "rules": [{"from": [{"source": source}]}]}]


def allow(source: dict) -> list:
    return [{"rules": [{"from": [{"source": source}]}]}]


POLICIES = {
    "allow_principal": allow({"principals": ["cluster.local/ns/good/sa/x"]}),
    "allow_prefix": allow({"principals": ["cluster.local/ns/good/*"]}),
    "allow_any": allow({"principals": ["*"]}),
    "allow_namespace": allow({"namespaces": ["good"]}),
    "allow_condition": [{"rules": [{"when": [{"key": "source.principal", "values": ["cluster.local/ns/good/sa/x"]}]}]}],
    "deny_principal": deny({"principals": ["cluster.local/ns/evil/sa/y"]}),
    "deny_namespace": deny({"namespaces": ["evil"]}),
    "deny_namespace_condition": [
        {"action": "DENY", "rules": [{"when": [{"key": "source.namespace", "values": ["evil"]}]}]}
    ],
    "deny_not_principal": deny({"notPrincipals": ["cluster.local/ns/good/sa/x"]}),
}

# (policy, peer principal or None for no filter state, allowed?) as Istio's
# RBAC on a waypoint decides: exact `spiffe://<value>`, prefix `spiffe://<value>`,
# `.+` for `*`, `.*/ns/<ns>/.*` for namespaces, all on the filter state string.
CASES = [
    ("allow_principal", GOOD, True),
    ("allow_principal", EVIL, False),
    ("allow_principal", None, False),
    ("allow_prefix", GOOD, True),
    ("allow_prefix", EVIL, False),
    ("allow_any", EVIL, True),
    ("allow_any", None, False),
    # Not a SPIFFE ID: only Istio's `*` (`.+`) matches it.
    ("allow_any", "workload.example.test", True),
    ("allow_principal", "cluster.local/ns/good/sa/x", False),
    ("allow_namespace", GOOD, True),
    ("allow_namespace", EVIL, False),
    ("allow_condition", GOOD, True),
    ("allow_condition", EVIL, False),
    ("deny_principal", EVIL, False),
    ("deny_principal", GOOD, True),
    ("deny_principal", None, True),
    ("deny_namespace", EVIL, False),
    ("deny_namespace", GOOD, True),
    ("deny_namespace_condition", EVIL, False),
    ("deny_namespace_condition", GOOD, True),
    ("deny_not_principal", GOOD, True),
    ("deny_not_principal", EVIL, False),
    ("deny_not_principal", None, False),
]


@pytest.fixture(scope="module")
def waypoint(module_stack):
    stack = module_stack
    key = cached_key("ES256", "istio")
    server = stack.jwks_server({"keys": [key.jwk()]})

    def listener(name):
        config = plugin_config(
            rule(ISSUER, server), servers=(server,), allowMissing=True, authorizationPolicies=POLICIES[name]
        )
        return Listener(name, config, filters_before=[waypoint_filter_state()])

    envoy = stack.envoy(*(listener(name) for name in POLICIES), servers=(server,))
    # With a valid token, a policy's refusal is a 403 (an anonymous one is a 401).
    token = sign({}, claims(ISSUER, sub=ISSUER), key)
    return envoy, token


def call(envoy, token, name, principal):
    headers = {"Authorization": f"Bearer {token}"}
    if principal is not None:
        headers[PEER_HEADER] = principal
    return requests.get(envoy.url(name) + "/", headers=headers, timeout=REQUEST_TIMEOUT)


@pytest.mark.parametrize(("name", "principal", "allowed"), CASES)
def test_the_waypoint_peer_principal_decides_as_istio(waypoint, name, principal, allowed):
    envoy, token = waypoint
    response = call(envoy, token, name, principal)
    if allowed:
        upstream(response)
    else:
        assert (response.status_code, response.text) == (403, RBAC), f"{name}: {principal}"
