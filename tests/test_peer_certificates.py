"""Every URI SAN of the downstream peer's certificate counts, as in Envoy's RBAC
(what Istio's `principals` and `namespaces` become): a client certificate naming
an allowed identity first and a denied one second is denied.

Envoy's `connection.uri_san_peer_certificate` attribute holds only the first URI
SAN; the filter reads the whole certificate (`connection.peer_certificate`)."""

import requests

from harness.certs import Authority
from harness.client import REQUEST_TIMEOUT
from harness.envoy import WORK_DIR, Listener
from harness.oidc_app import upstream
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "testing@secure.istio.io"
RBAC = "RBAC: access denied"
GOOD = "spiffe://cluster.local/ns/good/sa/x"
EVIL = "spiffe://cluster.local/ns/evil/sa/y"


def deny(source: dict) -> list:
    return [{"action": "DENY", "rules": [{"from": [{"source": source}]}]}]


POLICIES = {
    "deny_principal": deny({"principals": ["cluster.local/ns/evil/sa/y"]}),
    "deny_namespace": deny({"namespaces": ["evil"]}),
    "deny_namespace_condition": [
        {"action": "DENY", "rules": [{"when": [{"key": "source.namespace", "values": ["evil"]}]}]}
    ],
    "allow_principal": [{"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/evil/sa/y"]}}]}]}],
}


def test_every_uri_san_counts(stack, tmp_path):
    key = cached_key("ES256", "istio")
    server = stack.jwks_server({"keys": [key.jwk()]})
    authority = Authority(WORK_DIR / tmp_path.name)
    tls = authority.downstream_tls(authority.issue("envoy", ip="127.0.0.1"))
    good_then_evil = authority.issue("good-then-evil", uri=[GOOD, EVIL])
    good_only = authority.issue("good-only", uri=GOOD)
    evil_then_good = authority.issue("evil-then-good", uri=[EVIL, GOOD])
    # Past the filter's bound of 64 names: who it is, is unknown.
    crowded = authority.issue("crowded", uri=[GOOD, *(f"{GOOD}{n}" for n in range(64))])

    def listener(name):
        config = plugin_config(
            rule(ISSUER, server), servers=(server,), allowMissing=True, authorizationPolicies=POLICIES[name]
        )
        return Listener(name, config, downstream_tls=tls)

    envoy = stack.envoy(*(listener(name) for name in POLICIES), servers=(server,))
    # With a valid token, a policy's refusal is a 403 (an anonymous one is a 401).
    token = sign({}, claims(ISSUER, sub=ISSUER), key)

    def call(name, client):
        url = envoy.url(name).replace("http://", "https://")
        return requests.get(
            url + "/",
            headers={"Authorization": f"Bearer {token}"},
            cert=(str(client.cert), str(client.key)),
            verify=str(authority.ca),
            timeout=REQUEST_TIMEOUT,
        )

    for name in ("deny_principal", "deny_namespace", "deny_namespace_condition"):
        for client in (good_then_evil, evil_then_good):
            denied = call(name, client)
            assert (denied.status_code, denied.text) == (403, RBAC), f"{name}: {client.cert.name}"
        upstream(call(name, good_only))

    upstream(call("allow_principal", good_then_evil))
    upstream(call("allow_principal", evil_then_good))
    refused = call("allow_principal", good_only)
    assert (refused.status_code, refused.text) == (403, RBAC)

    # A certificate the filter cannot read fails closed: every rule that reads
    # the principals matches in DENY and not in ALLOW.
    for name in POLICIES:
        refused = call(name, crowded)
        assert (refused.status_code, refused.text) == (403, RBAC), name


# Envoy's RBAC matches a principal against every URI SAN, every DNS SAN and the
# subject; Istio writes `principals: [P]` as `spiffe://P` and `*` as `.+`, and
# `namespaces: [N]` as the regex `.*/ns/N/.*`, over each of those names.
NAME_POLICIES = {
    "allow_any": [{"rules": [{"from": [{"source": {"principals": ["*"]}}]}]}],
    "allow_dns_name": [{"rules": [{"from": [{"source": {"principals": ["web.example.test"]}}]}]}],
    "allow_subject": [{"rules": [{"from": [{"source": {"principals": ["CN=subject-only"]}}]}]}],
    "deny_namespace": deny({"namespaces": ["evil"]}),
    "deny_any": deny({"principals": ["*"]}),
}


def test_dns_sans_and_the_subject_are_names_as_in_envoy_rbac(stack, tmp_path):
    key = cached_key("ES256", "istio")
    server = stack.jwks_server({"keys": [key.jwk()]})
    authority = Authority(WORK_DIR / tmp_path.name)
    tls = authority.downstream_tls(authority.issue("envoy", ip="127.0.0.1"))
    dns_only = authority.issue("dns-only", dns=["web.example.test"])
    subject_only = authority.issue("subject-only")
    # A subject naming a namespace: Istio's regex finds it there too.
    evil_subject = authority.issue("evil-subject", dns=["web.example.test"], common_name="x/ns/evil/y")

    def listener(name):
        config = plugin_config(
            rule(ISSUER, server), servers=(server,), allowMissing=True, authorizationPolicies=NAME_POLICIES[name]
        )
        return Listener(name, config, downstream_tls=tls)

    envoy = stack.envoy(*(listener(name) for name in NAME_POLICIES), servers=(server,))
    token = sign({}, claims(ISSUER, sub=ISSUER), key)

    def call(name, client):
        return requests.get(
            envoy.url(name).replace("http://", "https://") + "/",
            headers={"Authorization": f"Bearer {token}"},
            cert=(str(client.cert), str(client.key)),
            verify=str(authority.ca),
            timeout=REQUEST_TIMEOUT,
        )

    def denied(response, what):
        assert (response.status_code, response.text) == (403, RBAC), what

    for client in (dns_only, subject_only, evil_subject):
        upstream(call("allow_any", client))
        denied(call("deny_any", client), client.cert.name)
        # Not a SPIFFE ID: no pattern but `*` matches it, not even itself.
        denied(call("allow_dns_name", client), client.cert.name)
        denied(call("allow_subject", client), client.cert.name)
    upstream(call("deny_namespace", dns_only))
    upstream(call("deny_namespace", subject_only))
    denied(call("deny_namespace", evil_subject), "evil subject")
