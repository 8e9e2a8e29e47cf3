"""The filter's authorization against Envoy's own RBAC filter as Istio
configures it (issue #27): for each policy of a corpus, one listener runs
Envoy's `jwt_authn` + `rbac` filters translated from the policy by
`harness/istio_rbac.py` (what istiod would send), another runs our filter with
`allowMissing: true` and the same policy; both get the same requests, and the
decisions must agree: allowed (the echo upstream's 200) or denied (401 or 403,
whichever: Istio answers 403 where our filter asks for a token with 401).

Every request is one test, `<case>-<request>`. Known disagreements are strict
xfails in `DISAGREEMENTS`, each naming the difference: "stricter" where our
filter denies what Istio allows, "LOOSER" where it allows what Istio denies.

Both listeners of a case share the connection manager settings of an Istio
gateway behind one trusted proxy (`use_remote_address`, one trusted
X-Forwarded-For hop, `normalize_path` as Istio's default `BASE` path
normalization), so the filter and RBAC see the same path and addresses.

To cover a new policy field: add a `Case` (and the requests that tell its
matches apart) to `CASES`; the translator needs a generator if Istio's has one.
"""

import json
from dataclasses import dataclass

import pytest

from harness import istio_rbac
from harness.certs import Authority
from harness.differential import ISTIO_GATEWAY_HCM, Client, Request, decision, req
from harness.differential import send as send_request
from harness.envoy import WORK_DIR, Listener
from harness.tokens import cached_key, claims, flip_signature_bit, sign

ISSUER = "https://idp.rbacdiff.test"
# A second issuer whose name extends the first one's: `ISSUER/*` must not reach it.
TENANT = "https://idp.rbacdiff.test/tenant"
# An issuer without `/`, as in Istio's examples: `requestPrincipals: [ISTIO_ISSUER]` is
# Istio's "issuer with an empty subject".
ISTIO_ISSUER = "testing@secure.istio.io"

SLEEP = "spiffe://cluster.local/ns/foo/sa/sleep"
OTHER = "spiffe://cluster.local/ns/bar/sa/other"
# A SPIFFE ID whose path names a namespace twice: Istio's regex `.*/ns/foo/.*` sees foo.
TWO_NAMESPACES = "spiffe://cluster.local/ns/bar/sa/x/ns/foo/y"
NOT_SPIFFE = "https://example.com/not-spiffe"


# ----- tokens -----
def token_payloads() -> dict[str, dict]:
    alice = {
        "aud": ["api", "web"],
        "azp": "web-app",
        "groups": ["admins", "dev"],
        "org": {"team": "red", "roles": ["lead"]},
        "scope": "read write",
        "email_verified": True,
        "level": 3,
    }
    return {
        "alice": claims(ISSUER, sub="alice", **alice),
        "bob": claims(ISSUER, sub="bob", aud="other", azp="cli", groups="dev", org={"team": "blue"}, scope="read"),
        "tenant_alice": claims(TENANT, sub="alice"),
        "slash_sub": claims(ISSUER, sub="team/alice"),
        "empty_sub": claims(ISSUER, sub=""),
        "expired": claims(ISSUER, lifetime=-600, sub="alice"),
        "istio_user": claims(ISTIO_ISSUER, sub=ISTIO_ISSUER),
        "istio_empty_sub": claims(ISTIO_ISSUER, sub=""),
    }


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "rbacdiff")


@pytest.fixture(scope="module")
def tokens(key) -> dict[str, str]:
    signed = {name: sign({}, payload, key) for name, payload in token_payloads().items()}
    signed["forged"] = flip_signature_bit(signed["alice"])
    return signed


# ----- requests -----
ANON = req("anon")
ALICE = req("alice", token="alice")
BOB = req("bob", token="bob")
PEOPLE = [ANON, ALICE, BOB]


def tokens_on(path: str, *names: str) -> list[Request]:
    return [req(f"{name or 'anon'}{path}", path, token=name) for name in names]


def paths(*values: str) -> list[Request]:
    return [req(value, value) for value in values]


def hosts(*values: str) -> list[Request]:
    return [req(value, host=value) for value in values]


def xff(*values: str | None) -> list[Request]:
    return [
        req(f"xff={value}" if value else "no-xff", headers={"x-forwarded-for": value} if value else None)
        for value in values
    ]


def certs(*names: str | None) -> list[Request]:
    return [req(name or "no-cert", cert=name) for name in names]


# ----- the corpus -----
@dataclass
class Case:
    name: str
    policies: list[dict]
    requests: list[Request]
    tls: bool = False  # TLS listeners, clients with the certificates of `certs()`
    # HTTP filters before both sides (Envoy JSON stanzas): what writes the dynamic
    # metadata `experimental.envoy.filters.*` keys read.
    pre_filters: list[dict] | None = None


def allow(*rules: dict) -> dict:
    return {"action": "ALLOW", "rules": list(rules)}


def deny(*rules: dict) -> dict:
    return {"action": "DENY", "rules": list(rules)}


def to(**operation) -> dict:
    return {"to": [{"operation": operation}]}


def source(**fields) -> dict:
    return {"from": [{"source": fields}]}


def when(key: str, values: list[str] | None = None, not_values: list[str] | None = None) -> dict:
    condition = {"key": key}
    if values is not None:
        condition["values"] = values
    if not_values is not None:
        condition["notValues"] = not_values
    return {"when": [condition]}


def sni(*names: str | None) -> list[Request]:
    return [req(f"sni={name}" if name else "no-sni", sni=name) for name in names]


# `{port}` in a policy stands for the listener's own port (each side has its own).
OWN_PORT = "{port}"

# Dynamic metadata for the `experimental.envoy.filters.*` cases: the request
# header `x-meta-c` copied to namespace `envoy.filters.a.b`, key `c` (a string),
# and a fixed namespace `envoy.filters.lists` with a list, a number and a string.
HEADER_TO_METADATA = {
    "name": "envoy.filters.http.header_to_metadata",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
        "request_rules": [
            {"header": "x-meta-c", "on_header_present": {"metadata_namespace": "envoy.filters.a.b", "key": "c", "type": "STRING"}}
        ],
    },
}
SET_METADATA = {
    "name": "envoy.filters.http.set_metadata",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config",
        "metadata": [{"metadata_namespace": "envoy.filters.lists", "value": {"roles": ["a", "prefix-y", 7], "n": 3, "s": "one"}}],
    },
}
METADATA_FILTERS = [HEADER_TO_METADATA, SET_METADATA]


def meta(*values: str | None) -> list[Request]:
    return [req(f"meta={value}" if value is not None else "no-meta", headers={"x-meta-c": value} if value is not None else None)
            for value in values]


PREFLIGHT = {"origin": "https://spa.example.test", "access-control-request-method": "POST"}

ADMIN_PATHS = paths(
    "/admin", "/admin/x", "/ADMIN", "//admin", "/x/../admin", "/x/./admin", "/admin;x=1", "/%61dmin",
    "/public/..;/admin", "/admin%2fx", "/%2e%2e/admin", "/public",
)  # fmt: skip

CASES = [
    # methods
    Case("methods", [allow(to(methods=["GET", "HEAD"]))], [ANON, req("post", method="POST"), req("delete", method="DELETE")]),
    Case("not-methods-deny", [deny(to(notMethods=["GET"]))], [ANON, req("post", method="POST"), req("put", method="PUT")]),
    # hosts: Istio matches the whole :authority, port included, ignoring case
    Case("hosts-exact", [allow(to(hosts=["example.com"]))],
         hosts("example.com", "EXAMPLE.com", "example.com:8080", "other.com", "example.com.")),
    Case("hosts-suffix", [allow(to(hosts=["*.example.com"]))],
         hosts("api.example.com", "API.Example.COM", "api.example.com:8080", "example.com", "evil-example.com")),
    Case("hosts-prefix", [allow(to(hosts=["example.*"]))], hosts("example.org", "example.com:8080", "www.example.org")),
    Case("hosts-any", [allow(to(hosts=["*"]))], hosts("example.com", "x:1")),
    Case("hosts-deny", [deny(to(hosts=["example.com"]))], hosts("example.com", "Example.Com", "example.com:8080", "other.com")),
    Case("not-hosts", [allow(to(notHosts=["admin.example.com"]))],
         hosts("admin.example.com", "admin.example.com:443", "example.com")),
    # paths: exact, prefix*, *suffix, *, and spellings of one path
    Case("paths-exact", [allow(to(paths=["/api"]))],
         paths("/api", "/api/", "/api?x=1", "/API", "/api;x=1", "//api", "/x/../api", "/%61pi", "/api%3Bx")),
    Case("paths-prefix", [allow(to(paths=["/api/*"]))],
         paths("/api/x", "/api", "/api/", "/api/../admin", "/api/%2e%2e/admin", "/api//x", "/api/x?y=1")),
    Case("paths-suffix", [allow(to(paths=["*.png"]))],
         paths("/a/b.png", "/a.png?x=1", "/a.PNG", "/a.png;x=1", "/a.png/../secret", "/png")),
    Case("paths-any", [allow(to(paths=["*"]))], paths("/", "/x", "/x?y")),
    Case("paths-deny-prefix", [deny(to(paths=["/admin*"]))], ADMIN_PATHS),
    Case("not-paths", [allow(to(notPaths=["/private*"]))], paths("/private", "/private/x", "/public", "//private", "/private;x")),
    # request headers
    Case("header-exact", [allow(when("request.headers[x-env]", ["prod"]))], [
        ANON, req("prod", headers={"x-env": "prod"}), req("PROD", headers={"x-env": "PROD"}),
        req("prod-twice", headers={"x-env": "prod", "X-Env": "prod"}),
    ]),
    Case("header-prefix-suffix", [allow(when("request.headers[x-env]", ["pro*", "*-staging"]))], [
        ANON, req("prod", headers={"x-env": "prod"}), req("eu-staging", headers={"x-env": "eu-staging"}),
        req("dev", headers={"x-env": "dev"}),
    ]),
    Case("header-present", [allow(when("request.headers[x-env]", ["*"]))], [
        ANON, req("any", headers={"x-env": "x"}), req("empty", headers={"x-env": ""}),
    ]),
    Case("header-not-values-deny", [deny(when("request.headers[x-env]", not_values=["prod"]))], [
        ANON, req("prod", headers={"x-env": "prod"}), req("dev", headers={"x-env": "dev"}),
    ]),
    # request principals: `iss/sub`
    Case("principal-exact", [allow(source(requestPrincipals=[f"{ISSUER}/alice"]))],
         [*PEOPLE, *tokens_on("/", "tenant_alice", "expired", "forged")]),
    Case("principal-any", [allow(source(requestPrincipals=["*"]))], [*PEOPLE, *tokens_on("/", "empty_sub", "expired")]),
    Case("principal-issuer-prefix", [allow(source(requestPrincipals=[f"{ISSUER}/*"]))],
         [*PEOPLE, *tokens_on("/", "tenant_alice", "slash_sub")]),
    Case("principal-subject-suffix", [allow(source(requestPrincipals=["*/alice"]))],
         [*PEOPLE, *tokens_on("/", "tenant_alice", "slash_sub")]),
    # Istio splits at the last `/`: an issuer URL alone is issuer `https:/`, subject the host.
    Case("principal-issuer-url-only", [allow(source(requestPrincipals=[ISSUER]))], [*PEOPLE, *tokens_on("/", "empty_sub")]),
    Case("principal-no-slash", [allow(source(requestPrincipals=[ISTIO_ISSUER]))],
         [ANON, *tokens_on("/", "istio_user", "istio_empty_sub")]),
    Case("principal-from-query", [allow(source(requestPrincipals=[f"{ISSUER}/alice"]))], [
        req("alice-query", "/?access_token={alice}"), req("bob-query", "/?access_token={bob}"),
    ]),
    Case("principal-condition", [allow(when("request.auth.principal", [f"{ISSUER}/bob"]))], PEOPLE),
    Case("not-principal-deny", [deny(source(notRequestPrincipals=["*"]))], [*PEOPLE, *tokens_on("/", "empty_sub")]),
    # claims
    Case("claim-list", [allow(when("request.auth.claims[groups]", ["admins"]))], PEOPLE),
    Case("claim-string-or-list", [allow(when("request.auth.claims[groups]", ["dev"]))], PEOPLE),
    Case("claim-prefix", [allow(when("request.auth.claims[groups]", ["adm*"]))], PEOPLE),
    Case("claim-nested", [allow(when("request.auth.claims[org][team]", ["red"]))], PEOPLE),
    Case("claim-nested-list", [allow(when("request.auth.claims[org][roles]", ["lead"]))], PEOPLE),
    Case("claim-space-delimited-scope", [allow(when("request.auth.claims[scope]", ["write"]))], PEOPLE),
    Case("claim-boolean", [allow(when("request.auth.claims[email_verified]", ["true"]))], PEOPLE),
    Case("claim-number", [allow(when("request.auth.claims[level]", ["3"]))], PEOPLE),
    Case("claim-not-values-deny", [deny(when("request.auth.claims[groups]", not_values=["admins"]))], PEOPLE),
    Case("audiences", [allow(when("request.auth.audiences", ["api"]))], PEOPLE),
    Case("presenter", [allow(when("request.auth.presenter", ["web-app"]))], PEOPLE),
    # the downstream peer's SPIFFE identity
    Case("principals", [allow(source(principals=["cluster.local/ns/foo/sa/sleep"]))],
         certs(None, "sleep", "other", "two_namespaces"), tls=True),
    Case("principals-suffix", [allow(source(principals=["*/sa/sleep"]))], certs(None, "sleep", "other"), tls=True),
    Case("principals-prefix", [allow(source(principals=["cluster.local/ns/foo/*"]))], certs(None, "sleep", "other"), tls=True),
    Case("principals-any", [allow(source(principals=["*"]))], certs(None, "sleep", "not_spiffe"), tls=True),
    Case("not-principals", [allow(source(notPrincipals=["cluster.local/ns/foo/sa/sleep"]))],
         certs(None, "sleep", "other"), tls=True),
    Case("namespaces", [allow(source(namespaces=["foo"]))], certs(None, "sleep", "other", "two_namespaces"), tls=True),
    Case("namespaces-wildcard", [allow(source(namespaces=["f*"]))], certs(None, "sleep", "other"), tls=True),
    Case("namespaces-deny", [deny(source(namespaces=["foo"]))], certs(None, "sleep", "other", "two_namespaces"), tls=True),
    Case("service-accounts", [allow(source(serviceAccounts=["foo/sleep"]))],
         certs(None, "sleep", "other", "two_namespaces"), tls=True),
    Case("service-accounts-deny", [deny(source(serviceAccounts=["bar/other"]))], certs(None, "sleep", "other"), tls=True),
    Case("not-service-accounts", [allow(source(notServiceAccounts=["foo/sleep"]))], certs(None, "sleep", "other"), tls=True),
    Case("trust-domains", [allow(source(trustDomains=["cluster.local"]))], certs(None, "sleep", "not_spiffe"), tls=True),
    Case("trust-domains-wildcard", [allow(source(trustDomains=["*.local"]))], certs(None, "sleep", "other"), tls=True),
    Case("trust-domain-condition", [allow(when("source.trustDomain", not_values=["cluster.local"]))],
         certs(None, "sleep"), tls=True),
    Case("not-namespaces-deny", [deny(source(notNamespaces=["foo"]))], certs(None, "sleep", "other"), tls=True),
    Case("source-principal-condition", [allow(when("source.principal", [SLEEP.removeprefix("spiffe://")]))],
         certs(None, "sleep", "other"), tls=True),
    Case("source-namespace-condition", [allow(when("source.namespace", ["bar"]))], certs(None, "sleep", "other"), tls=True),
    # addresses: the direct peer is loopback, the remote address comes from X-Forwarded-For
    Case("ip-blocks", [allow(source(ipBlocks=["127.0.0.1"]))], xff(None, "203.0.113.7")),
    Case("ip-blocks-deny", [deny(source(ipBlocks=["127.0.0.0/8"]))], xff(None, "203.0.113.7")),
    Case("not-ip-blocks-deny", [deny(source(notIpBlocks=["127.0.0.0/8"]))], xff(None, "203.0.113.7")),
    Case("remote-ip-blocks", [allow(source(remoteIpBlocks=["203.0.113.0/24"]))],
         xff(None, "203.0.113.7", "198.51.100.1", "203.0.113.7, 198.51.100.1", "198.51.100.1, 203.0.113.7")),
    Case("not-remote-ip-blocks-deny", [deny(source(notRemoteIpBlocks=["203.0.113.0/24"]))],
         xff(None, "203.0.113.7", "198.51.100.1")),
    Case("remote-ip-condition", [allow(when("remote.ip", ["198.51.100.1"]))], xff(None, "203.0.113.7", "198.51.100.1")),
    Case("source-ip-condition", [allow(when("source.ip", ["127.0.0.1/32"]))], xff(None, "203.0.113.7")),
    # path templates (Istio 1.22+): Envoy's uri_template
    Case("path-templates", [allow(to(paths=["/api/{*}/items", "/files/{**}", "/{**}/raw"]))],
         paths("/api/v1/items", "/api/v1/v2/items", "/api//items", "/api/v1/items?page=2", "/api/a%20b/items",
               "/api/a=b/items", "/api/a*b/items", "/api/a%3Fb/items", "/API/v1/items", "/files/", "/files/a/b.txt", "/files", "/x/y/raw", "/raw",
               "/api/v1/../v2/items", "/api/./v1/items")),
    Case("not-path-templates-deny", [deny(to(paths=["/{*}/admin/{**}"]))],
         paths("/t/admin/", "/t/admin/x/y", "/t/admin", "/admin/x", "/t/u/admin/x", "/t/./admin/x", "/t/x/../admin/y")),
    # ports, destination.port and destination.ip: the listener's own address
    Case("ports", [allow(to(ports=[OWN_PORT]))], [ANON]),
    Case("ports-other", [allow(to(ports=["1"]))], [ANON]),
    Case("not-ports-deny", [deny(to(notPorts=[OWN_PORT]))], [ANON]),
    Case("not-ports-other-deny", [deny(to(notPorts=["1"]))], [ANON]),
    Case("destination-port-condition", [allow(when("destination.port", [OWN_PORT, "2"]))], [ANON]),
    Case("destination-ip-condition", [allow(when("destination.ip", ["127.0.0.0/8"]))], [ANON]),
    Case("destination-ip-other", [allow(when("destination.ip", ["10.0.0.0/8"]))], [ANON]),
    # connection.sni
    Case("sni", [allow(when("connection.sni", ["*.example.com"]))], sni(None, "api.example.com", "example.org"), tls=True),
    Case("sni-not-values-deny", [deny(when("connection.sni", not_values=["api.example.com"]))],
         sni(None, "api.example.com", "other.example.com"), tls=True),
    # experimental.envoy.filters.*: dynamic metadata other filters wrote
    Case("metadata-string", [allow(when("experimental.envoy.filters.a.b[c]", ["prefix-*", "exact"]))],
         meta(None, "prefix-1", "exact", "other", ""), pre_filters=METADATA_FILTERS),
    Case("metadata-not-values", [allow(when("experimental.envoy.filters.a.b[c]", not_values=["bad*"]))],
         meta(None, "bad-1", "good"), pre_filters=METADATA_FILTERS),
    Case("metadata-list", [allow(when("experimental.envoy.filters.lists[roles]", ["[prefix-*]"]))], [ANON],
         pre_filters=METADATA_FILTERS),
    Case("metadata-list-as-string", [allow(when("experimental.envoy.filters.lists[roles]", ["prefix-*"]))], [ANON],
         pre_filters=METADATA_FILTERS),
    Case("metadata-number", [allow(when("experimental.envoy.filters.lists[n]", ["3", "*"]))], [ANON],
         pre_filters=METADATA_FILTERS),
    Case("metadata-string-as-list", [allow(when("experimental.envoy.filters.lists[s]", ["[one]"]))], [ANON],
         pre_filters=METADATA_FILTERS),
    Case("metadata-deny", [deny(when("experimental.envoy.filters.lists[s]", ["one"]))], [ANON],
         pre_filters=METADATA_FILTERS),
    # combinations
    Case("deny-and-allow", [deny(to(paths=["/admin*"])), allow(source(requestPrincipals=["*"]))],
         [*PEOPLE, *tokens_on("/admin", None, "alice")]),
    Case("token-on-ip-only", [allow(to(notPaths=["/ip"]), {**source(requestPrincipals=["*"]), **to(paths=["/ip"])})],
         [*tokens_on("/headers", None, "alice"), *tokens_on("/ip", None, "alice", "forged")]),
    Case("rule-fields-anded", [allow({**source(requestPrincipals=[f"{ISSUER}/alice"]), **to(methods=["GET"], paths=["/api/*"]),
                                      **when("request.auth.audiences", ["api"])})],
         [*tokens_on("/api/x", None, "alice", "bob"), req("alice-post", "/api/x", method="POST", token="alice"),
          *tokens_on("/other", "alice")]),
    Case("sources-ored", [allow({"from": [{"source": {"requestPrincipals": [f"{ISSUER}/bob"]}},
                                          {"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]})],
         [*PEOPLE, req("anon-xff", headers={"x-forwarded-for": "203.0.113.7"})]),
    Case("audiences-not-values", [allow(when("request.auth.audiences", not_values=["api"]))], PEOPLE),
    Case("cors-preflight", [allow(to(notPaths=["/ip"]), {**source(requestPrincipals=["*"]), **to(paths=["/ip"])})], [
        req("preflight/ip", "/ip", method="OPTIONS", headers=PREFLIGHT),
        req("preflight/headers", "/headers", method="OPTIONS", headers=PREFLIGHT),
        req("alice-preflight/ip", "/ip", method="OPTIONS", headers=PREFLIGHT, token="alice"),
    ]),
    Case("two-allow-policies", [allow(to(paths=["/a"])), allow(to(paths=["/b"]))], paths("/a", "/b", "/c")),
    Case("deny-wins", [allow(to(paths=["*"])), deny(when("request.auth.claims[groups]", ["dev"]))], PEOPLE),
    Case("allow-nothing", [{"action": "ALLOW"}], [*PEOPLE, *paths("/x")]),
    Case("deny-nothing", [{"action": "DENY"}], [*PEOPLE, *paths("/x")]),
    Case("no-policies", [], [*PEOPLE, *tokens_on("/", "expired", "forged")]),
]

# (case, request) -> why the decisions differ. "stricter": our filter denies
# what Istio allows; "LOOSER": our filter allows what Istio denies.
MERGED_SLASHES = (
    "paths: our filter merges `//` (Istio's MERGE_SLASHES normalization); Istio's default BASE"
    " normalization keeps it, so RBAC sees `//...`"
)
XFF_DIRECT_PEER = (
    "ipBlocks behind X-Forwarded-For: Envoy's RBAC knows the direct peer (loopback); the Wasm filter does not"
    " (source.address is the XFF client, port 0) and fails closed"
)
DISAGREEMENTS: dict[tuple[str, str], str] = {
    # ----- stricter: our filter denies what Istio allows -----
    ("paths-deny-prefix", "//admin"): f"stricter: {MERGED_SLASHES} (documented)",
    ("not-paths", "//private"): f"stricter: {MERGED_SLASHES} (documented)",
    ("ip-blocks", "xff=203.0.113.7"): f"stricter: {XFF_DIRECT_PEER} (documented)",
    ("not-ip-blocks-deny", "xff=203.0.113.7"): f"stricter: {XFF_DIRECT_PEER} (documented)",
    ("source-ip-condition", "xff=203.0.113.7"): f"stricter: {XFF_DIRECT_PEER} (documented)",
}


# ----- the listeners -----
def jwt_rules(key) -> list[dict]:
    jwks = json.dumps({"keys": [key.jwk()]})
    return [{"issuer": issuer, "jwks": jwks} for issuer in (ISSUER, TENANT, ISTIO_ISSUER)]


def with_port(policies: list[dict], port: int) -> list[dict]:
    return json.loads(json.dumps(policies).replace(OWN_PORT, str(port)))


def listeners_for(case: Case, key, tls: dict | None) -> tuple[Listener, Listener]:
    rules = jwt_rules(key)
    pre = case.pre_filters or []
    native = Listener(f"native-{case.name}", None, downstream_tls=tls, hcm_extra=ISTIO_GATEWAY_HCM)
    native.filters_before = pre + istio_rbac.native_filters(rules, with_port(case.policies, native.port))
    ours = Listener(f"ours-{case.name}", None, downstream_tls=tls, hcm_extra=ISTIO_GATEWAY_HCM, filters_before=pre or None)
    ours.plugin_config = {"jwtRules": rules, "allowMissing": True, "authorizationPolicies": with_port(case.policies, ours.port)}
    return native, ours


@dataclass
class Setup:
    envoy: object
    authority: Authority
    client_certs: dict
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def setup(module_stack, key, tokens) -> Setup:
    authority = Authority(WORK_DIR / "rbacdiff-certs")
    # The listeners ask for a client certificate but do not require one: "no
    # certificate" is a request of its own.
    tls = authority.downstream_tls(authority.issue("envoy", ip="127.0.0.1"), require_client_certificate=False)
    client_certs = {
        "sleep": authority.issue("sleep", uri=SLEEP),
        "other": authority.issue("other", uri=OTHER),
        "two_namespaces": authority.issue("two-namespaces", uri=TWO_NAMESPACES),
        "not_spiffe": authority.issue("not-spiffe", uri=NOT_SPIFFE),
    }
    listeners = []
    for case in CASES:
        listeners += listeners_for(case, key, tls if case.tls else None)
    envoy = module_stack.envoy(*listeners)
    return Setup(envoy, authority, client_certs, tokens)


# ----- sending -----
def send(setup: Setup, listener: str, request: Request, tls: bool) -> int:
    client = Client(setup.tokens, str(setup.authority.ca), setup.client_certs)
    return send_request(client, setup.envoy.listeners[listener].port, request, tls)


def matrix():
    for case in CASES:
        for request in case.requests:
            reason = DISAGREEMENTS.get((case.name, request.name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(case, request, id=f"{case.name}-{request.name}", marks=marks)


@pytest.mark.parametrize(("case", "request_"), matrix())
def test_same_decision_as_istio_rbac(setup, case, request_):
    native_status = send(setup, f"native-{case.name}", request_, case.tls)
    our_status = send(setup, f"ours-{case.name}", request_, case.tls)
    assert decision(native_status) in ("allowed", "denied"), f"Envoy's RBAC answered {native_status}"
    assert decision(our_status) == decision(native_status), (
        f"Istio's RBAC: {native_status} ({decision(native_status)}), our filter: {our_status} ({decision(our_status)})"
    )


def test_every_case_has_its_own_request_names():
    for case in CASES:
        names = [request.name for request in case.requests]
        assert len(names) == len(set(names)), case.name
    assert len({case.name for case in CASES}) == len(CASES)
    for case_name, request_name in DISAGREEMENTS:
        case = next(case for case in CASES if case.name == case_name)
        assert request_name in [request.name for request in case.requests], (case_name, request_name)
