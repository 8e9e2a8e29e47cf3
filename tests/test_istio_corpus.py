"""Istio's own authorization builder test data (tests/data/istio-authz-builder,
copied from istio/istio) through the filter:

- every input policy loads, pasted as the resources they are, except `CUSTOM`
  ones, which are refused with a clear message (an external authorizer is what
  this filter replaces);
- for each HTTP case that needs no mesh-wide setting (trust-domain aliases are
  one), a listener runs Envoy's RBAC filters exactly as Istio's test expects
  istiod to generate them (the `-out` files, verbatim), after `jwt_authn` as
  Istio configures it; another runs the filter with the input resources (and the
  token rules as a pasted `RequestAuthentication`). Both get
  the same requests, which probe every field the corpus uses (methods, hosts,
  paths and templates, headers, tokens, SPIFFE peers, forwarded addresses,
  dynamic metadata), and every decision must agree.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness import istio_rbac
from harness.certs import Authority
from harness.differential import ISTIO_GATEWAY_HCM, Client, Request, decision, req, send
from harness.envoy import WORK_DIR, Listener
from harness.tokens import cached_key, claims, sign

CORPUS = Path(__file__).parent / "data" / "istio-authz-builder"
HTTP = CORPUS / "http"

# Istio's builder test cases (builder_test.go): input -> the RBAC filters istiod
# generates, in filter order. Cases with a trust-domain bundle (aliases, a
# mesh-wide setting) or an external authorizer (CUSTOM) are not here.
DIFFERENTIAL_CASES = {
    "allow-empty-rule": ["allow-empty-rule-out.yaml"],
    "allow-full-rule": ["allow-full-rule-out.yaml"],
    "allow-host-before-111": ["allow-host-before-111-out.yaml"],
    "allow-nil-rule": ["allow-nil-rule-out.yaml"],
    "allow-path": ["allow-path-out.yaml"],
    "audit-full-rule": ["audit-full-rule-out.yaml"],
    "deny-and-allow": ["deny-and-allow-out1.yaml", "deny-and-allow-out2.yaml"],
    "deny-empty-rule": ["deny-empty-rule-out.yaml"],
    "dry-run-allow-and-deny": ["dry-run-allow-and-deny-out1.yaml", "dry-run-allow-and-deny-out2.yaml"],
    "dry-run-allow": ["dry-run-allow-out.yaml"],
    "dry-run-mix": ["dry-run-mix-out.yaml"],
    "multiple-policies": ["multiple-policies-out.yaml"],
    "single-policy": ["single-policy-out.yaml"],
    "trust-domains": ["trust-domains-out.yaml"],
}
# Inputs whose Istio output depends on a mesh-wide trust-domain bundle: they load,
# and the filter judges them as Istio does without aliases.
TRUST_DOMAIN_ALIAS_INPUTS = [
    "simple-policy-td-aliases-in.yaml",
    "simple-policy-multiple-td-aliases-in.yaml",
    "simple-policy-principal-with-wildcard-in.yaml",
    "td-aliases-source-principal-in.yaml",
]

ISSUER = "https://example.com"
# Istio reads `requestPrincipals1` (no `/`) as this issuer with an empty subject.
BARE_ISSUER = "requestPrincipals1"


def resources(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def every_input() -> list[Path]:
    return sorted([*HTTP.glob("*-in.yaml"), *(CORPUS / "tcp").glob("*-in.yaml")])


def is_custom(path: Path) -> bool:
    return any(doc["spec"].get("action") == "CUSTOM" for doc in resources(path))


# ----- what the requests carry -----
SPIFFE_PEERS = {
    # allow-full-rule: serviceAccounts my-ns/my-sa (any trust domain), sa-only in
    # the policy's namespace foo, but not my-ns/my-sa-not
    "my-sa": "spiffe://cluster.local/ns/my-ns/sa/my-sa",
    "sa-only": "spiffe://other.td/ns/foo/sa/sa-only",
    "my-sa-not": "spiffe://cluster.local/ns/my-ns/sa/my-sa-not",
    "sleep": "spiffe://cluster.local/ns/foo/sa/sleep",
    # deny-and-allow: principals ["deny"] / ["allow"]
    "deny": "spiffe://deny",
    "allow": "spiffe://allow",
    # multiple-policies: principals / namespaces
    "principals1": "spiffe://principals1",
    "ns1": "spiffe://cluster.local/ns/namespaces1/sa/x",
    # trust-domains: trustDomains [cluster.local, another.local], notTrustDomains [bad*, untrusted]
    "another-td": "spiffe://another.local/ns/x/sa/y",
    "bad-td": "spiffe://bad.example/ns/x/sa/y",
    "untrusted": "spiffe://untrusted/ns/x/sa/y",
}
TOKENS = {
    "alice": claims(ISSUER, sub="alice", aud="audiences", azp="presenter", nested1={"nested2": "nested"}),
    "rp1": claims(BARE_ISSUER, sub=""),
    "rp1-sub": claims(BARE_ISSUER, sub="someone"),
}


def requests_for_the_corpus() -> list[Request]:
    """Requests that tell apart what the corpus's policies match, each field in
    both directions; most cases deny most of them."""
    found = [req("anon"), req("alice", token="alice"), req("rp1", token="rp1"), req("rp1-sub", token="rp1-sub")]
    for path in ["/exact", "/prefix/x", "/a/suffix", "/path/template/x", "/path/template/x/y", "/a/b/path/template",
                 "/not-exact", "/not-prefix/x", "/not-path/template/x", "/allow", "/deny", "/another", "/v1", "/v3",
                 "/exact?x=1", "//exact"]:  # fmt: skip
        found.append(req(path, path))
    for method in ["POST", "PUT", "DELETE"]:
        found.append(req(f"method={method}", method=method))
    for host in ["exact.com", "a.suffix.com", "prefix.x", "google.com", "httpbin.org", "example.com:8080", "not-exact.com",
                 "x.example.com", "prefix.example.org"]:  # fmt: skip
        found.append(req(f"host={host}", host=host))
    for name, value in [("x-header", "header"), ("X-header", "x-suffix-header"), ("x-abc", "abc1"), ("x-abc", "other")]:
        found.append(req(f"{name}={value}", headers={name: value}))
    for address in ["1.2.3.4", "5.6.7.8", "9.0.0.1", "172.16.10.10"]:
        found.append(req(f"xff={address}", headers={"x-forwarded-for": address}))
    for name in ["no-cert", *SPIFFE_PEERS]:
        found.append(req(f"cert={name}", cert=None if name == "no-cert" else name))
    # multiple-policies allows any GET or POST; with PUT, each of its other
    # policies (paths, hosts, principals, request principals, namespaces, a
    # header) decides alone.
    found += [
        req("put/v1", "/v1", method="PUT"), req("put/v3", "/v3", method="PUT"),
        req("put-host=google.com", method="PUT", host="google.com"),
        req("put-cert=principals1", method="PUT", cert="principals1"),
        req("put-cert=ns1", method="PUT", cert="ns1"),
        req("put-rp1", method="PUT", token="rp1"), req("put-rp1-sub", method="PUT", token="rp1-sub"),
        req("put-x-abc=abc2", method="PUT", headers={"x-abc": "abc2"}),
    ]  # fmt: skip
    found.append(req("cert=my-sa+alice", cert="my-sa", token="alice"))
    found.append(req("cert=sleep+sni", cert="sleep", sni="exact.com"))
    return found


REQUESTS = requests_for_the_corpus()


# ----- the listeners -----
def jwt_rules(key) -> list[dict]:
    jwks = json.dumps({"keys": [key.jwk()]})
    return [{"issuer": issuer, "jwks": jwks} for issuer in (ISSUER, BARE_ISSUER)]


def request_authentication(rules: list[dict]) -> dict:
    """The rules as the `RequestAuthentication` resource Istio reads them from."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "foo"},
        "spec": {"selector": {"matchLabels": {"app": "httpbin"}}, "jwtRules": rules},
    }


def istio_output(name: str) -> dict:
    (stanza,) = resources(HTTP / name)
    return stanza


@dataclass
class Setup:
    envoy: object
    client: Client


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "istiocorpus")


@pytest.fixture(scope="module")
def setup(module_stack, key) -> Setup:
    authority = Authority(WORK_DIR / "istio-corpus-certs")
    tls = authority.downstream_tls(authority.issue("envoy", ip="127.0.0.1"), require_client_certificate=False)
    certs = {name: authority.issue(name, uri=uri) for name, uri in SPIFFE_PEERS.items()}
    rules = jwt_rules(key)
    listeners = []
    for case, outputs in DIFFERENTIAL_CASES.items():
        native_filters = [istio_rbac.jwt_authn_filter(rules), *(istio_output(name) for name in outputs)]
        listeners.append(
            Listener(f"native-{case}", None, downstream_tls=tls, hcm_extra=ISTIO_GATEWAY_HCM, filters_before=native_filters)
        )
        # Both kinds of resource pasted whole, as a user moves them from Istio.
        config = {
            "jwtRules": [request_authentication(rules)],
            "allowMissing": True,
            "authorizationPolicies": resources(HTTP / f"{case}-in.yaml"),
        }
        listeners.append(Listener(f"ours-{case}", config, downstream_tls=tls, hcm_extra=ISTIO_GATEWAY_HCM))
    # Every other input that is not CUSTOM: loaded (a configuration that fails to
    # load stops Envoy from starting, and with it this fixture).
    for path in every_input():
        in_differential = path.parent == HTTP and path.name.removesuffix("-in.yaml") in DIFFERENTIAL_CASES
        if not is_custom(path) and not in_differential:
            config = {"jwtRules": rules, "allowMissing": True, "authorizationPolicies": resources(path)}
            listeners.append(Listener(f"load-{path.parent.name}-{path.stem}", config))
    envoy = module_stack.envoy(*listeners)
    tokens = {name: sign({}, payload, key) for name, payload in TOKENS.items()}
    return Setup(envoy, Client(tokens, str(authority.ca), certs))


def status_of(setup: Setup, listener: str, request: Request, tls: bool = True) -> int:
    return send(setup.client, setup.envoy.listeners[listener].port, request, tls)


@pytest.mark.parametrize("case", sorted(DIFFERENTIAL_CASES))
def test_same_decisions_as_istios_own_rbac_output(setup, case):
    disagreements = []
    for request in REQUESTS:
        native = status_of(setup, f"native-{case}", request)
        ours = status_of(setup, f"ours-{case}", request)
        assert decision(native) in ("allowed", "denied"), f"{request.name}: Envoy's RBAC answered {native}"
        if decision(ours) != decision(native):
            disagreements.append(f"{request.name}: Istio's RBAC {native}, our filter {ours}")
    assert not disagreements, "\n".join(disagreements)


def test_the_differential_is_not_all_one_answer(setup):
    """Across the corpus, requests are both allowed and denied, so agreement means
    something; and cases where only some requests pass exist."""
    mixed = 0
    for case in DIFFERENTIAL_CASES:
        answers = {decision(status_of(setup, f"native-{case}", request)) for request in REQUESTS}
        mixed += answers == {"allowed", "denied"}
    assert mixed >= 5, mixed


def test_every_other_input_loads(setup):
    """The inputs outside the differential (trust-domain alias cases, the TCP
    builder's inputs) load: a request gets a decision, not the 5xx of a plugin
    whose configuration failed."""
    loaded = [name for name in setup.envoy.listeners if name.startswith("load-")]
    assert len(loaded) >= len(TRUST_DOMAIN_ALIAS_INPUTS) + 4, loaded
    for name in loaded:
        status = status_of(setup, name, req("anon"), tls=False)
        assert decision(status) in ("allowed", "denied"), f"{name}: {status}"


@pytest.mark.parametrize("path", [path for path in every_input() if is_custom(path)], ids=lambda path: path.stem)
def test_custom_policies_are_refused_with_a_reason(stack, key, path):
    """CUSTOM hands the decision to an external authorizer; this filter is that
    authorizer's replacement, so it refuses the policy at load and says why."""
    config = {"jwtRules": jwt_rules(key), "authorizationPolicies": resources(path)}
    outcome = stack.envoy_expecting_failure(Listener("main", config), timeout=20)
    assert not outcome.became_ready
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any("spec.action" in line and "CUSTOM needs an external authorizer" in line for line in lines), lines
