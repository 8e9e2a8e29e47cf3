"""Envoy's native filters as Istio configures them: `envoy.filters.http.rbac`
from AuthorizationPolicy specs, and `envoy.filters.http.jwt_authn` from
jwtRules, so a test can run the same policy natively and through the filter.

Written after Istio's pilot/pkg/security/authz (model.go, generator.go,
matcher/*.go, builder.go) and pilot/pkg/security/authn/policy_applier.go, one
small function per field as Istio's model has one generator per attribute.
The output is Envoy's proto JSON (snake_case) for a plain HTTP listener:
`authenticated.principal_name` for peer identities (Istio's
`useAuthenticated`), and claims read from the metadata `jwt_authn` writes
(filter `envoy.filters.http.jwt_authn`, key `payload`), which is where current
Istio's RBAC reads `request.auth.*`.
"""

import ipaddress
import json
import re

JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"
# Istio always adds these to a JWTRule's spaceDelimitedClaims.
DEFAULT_SPACE_DELIMITED_CLAIMS = ["permission", "scope"]
SPIFFE_PREFIX = "spiffe://"
MATCH_ANY = {"safe_regex": {"regex": ".+"}}


# ----- string matchers (matcher/string.go, matcher/header.go) -----
def exact(value: str, ignore_case: bool = False) -> dict:
    return {"exact": value, **({"ignore_case": True} if ignore_case else {})}


def prefix(value: str, ignore_case: bool = False) -> dict:
    return {"prefix": value, **({"ignore_case": True} if ignore_case else {})}


def suffix(value: str, ignore_case: bool = False) -> dict:
    return {"suffix": value, **({"ignore_case": True} if ignore_case else {})}


def regex(pattern: str) -> dict:
    return {"safe_regex": {"regex": pattern}}


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta, which Istio uses (Python's re.escape escapes more)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def string_matcher(value: str, extra_prefix: str = "") -> dict:
    """Istio's StringMatcherWithPrefix: `*` is any non-empty value, `*x` a
    suffix, `x*` a prefix, else exact; `extra_prefix` goes in front (spiffe://)."""
    if value == "*":
        return regex(".+")
    if value.startswith("*"):
        if not extra_prefix:
            return suffix(value[1:])
        return regex(extra_prefix + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return prefix(extra_prefix + value[:-1])
    return exact(extra_prefix + value)


def header_matcher(name: str, value: str, ignore_case: bool = False) -> dict:
    """Istio's HeaderMatcher (ignore_case=False) and HostMatcher (True)."""
    if value == "*":
        return {"name": name, "present_match": True}
    if value.startswith("*"):
        return {"name": name, "string_match": suffix(value[1:], ignore_case)}
    if value.endswith("*"):
        return {"name": name, "string_match": prefix(value[:-1], ignore_case)}
    return {"name": name, "string_match": exact(value, ignore_case)}


def or_value_matcher(values: list[str]) -> dict:
    """Istio's StringOrMatcher: one value matcher, or an or_match of several."""
    matchers = [{"string_match": string_matcher(value)} for value in values]
    return matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}


def jwt_claim_matcher(claim_path: list[str], value: dict) -> dict:
    """Istio's MetadataListValueMatcher with useExtendedJwt: the claim matches
    when it is a list with one matching element, or is itself a match."""
    return {
        "filter": JWT_FILTER,
        "path": [{"key": key} for key in [JWT_PAYLOAD, *claim_path]],
        "value": {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}},
    }


def jwt_claim_string_matcher(claim: str, matcher: dict) -> dict:
    """Istio's MetadataStringMatcherForJWTClaim: a top-level string claim."""
    return {"filter": JWT_FILTER, "path": [{"key": JWT_PAYLOAD}, {"key": claim}], "value": {"string_match": matcher}}


def cidr_range(value: str) -> dict:
    """Istio's AddrStrToCidrRange: an address is a /32 (or /128)."""
    network = ipaddress.ip_network(value, strict=False)
    address = value.split("/", 1)[0]
    return {"address_prefix": address, "prefix_len": network.prefixlen}


# ----- combinators (permission.go, principal.go) -----
def permission_and(rules: list[dict]) -> dict:
    return {"and_rules": {"rules": rules}}


def permission_or(rules: list[dict]) -> dict:
    return {"or_rules": {"rules": rules}}


def principal_and(ids: list[dict]) -> dict:
    return {"and_ids": {"ids": ids}}


def principal_or(ids: list[dict]) -> dict:
    return {"or_ids": {"ids": ids}}


def authenticated(matcher: dict) -> dict:
    return {"authenticated": {"principal_name": matcher}}


# ----- one generator per attribute (generator.go) -----
# A per-value generator turns one value into one matcher; Istio ORs them.
def path_permission(value: str) -> dict:
    if "{*}" in value or "{**}" in value:
        # matcher/template.go: `{**}` -> `**`, `{*}` -> `*`, Envoy's uri_template.
        template = value.replace("{**}", "**").replace("{*}", "*")
        return {
            "uri_template": {
                "name": "uri-template",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                    "path_template": template,
                },
            }
        }
    return {"url_path": {"path": string_matcher(value)}}


def method_permission(value: str) -> dict:
    return {"header": header_matcher(":method", value)}


def host_permission(value: str) -> dict:
    # The whole :authority, port included, case-insensitively.
    return {"header": header_matcher(":authority", value, ignore_case=True)}


def port_permission(value: str) -> dict:
    return {"destination_port": int(value)}


def destination_ip_permission(value: str) -> dict:
    return {"destination_ip": cidr_range(value)}


def sni_permission(value: str) -> dict:
    return {"requested_server_name": string_matcher(value)}


def source_ip_principal(value: str) -> dict:
    return {"direct_remote_ip": cidr_range(value)}


def remote_ip_principal(value: str) -> dict:
    return {"remote_ip": cidr_range(value)}


def namespace_principal(value: str) -> dict:
    namespace = ".*".join(quote_meta(part) for part in value.split("*"))
    return authenticated(regex(f".*/ns/{namespace}/.*"))


def service_account_principal(value: str, policy_namespace: str) -> dict:
    namespace, slash, account = value.partition("/")
    if not slash:
        namespace, account = policy_namespace, value
    return authenticated(regex(f"spiffe://.+/ns/{quote_meta(namespace)}/(.+/|)sa/{quote_meta(account)}(/.+)?"))


def trust_domain_principal(value: str) -> dict:
    if value == "*":
        return authenticated(prefix(SPIFFE_PREFIX))
    if "*" not in value:
        return authenticated(prefix(f"{SPIFFE_PREFIX}{value}/"))
    before, after = value.split("*", 1)
    return authenticated(regex(f"spiffe://{quote_meta(before)}[^/]*{quote_meta(after)}/.*"))


def source_principal(value: str) -> dict:
    return authenticated(string_matcher(value, SPIFFE_PREFIX))


def request_header_principal(key: str, value: str) -> dict:
    return {"header": header_matcher(bracketed_names(key.removeprefix("request.headers"))[0], value)}


# An extended generator turns the whole value list into one matcher.
def request_principals_principal(values: list[str]) -> dict:
    """`iss/sub`, split at the last `/`, matched as two claims: `*` is any
    issuer and subject, `*x/s` an issuer suffix, `i/x*` a subject prefix, and a
    value without `/` is an issuer with an empty subject."""
    alternatives = []
    for value in values:
        issuer, slash, subject = value.rpartition("/")
        if not slash:
            issuer, subject = value, ""
        if value == "*":
            match_iss, match_sub = MATCH_ANY, MATCH_ANY
        elif value.startswith("*"):
            if slash:
                match_iss = MATCH_ANY if issuer == "*" else suffix(issuer[1:])
                match_sub = exact(subject)
            else:
                match_iss, match_sub = MATCH_ANY, suffix(value[1:])
        elif value.endswith("*"):
            if slash:
                match_iss = exact(issuer)
                match_sub = MATCH_ANY if subject == "*" else prefix(subject[:-1])
            else:
                match_iss, match_sub = prefix(value[:-1]), MATCH_ANY
        else:
            match_iss, match_sub = exact(issuer), exact(subject)
        alternatives.append(
            principal_and(
                [
                    {"metadata": jwt_claim_string_matcher("iss", match_iss)},
                    {"metadata": jwt_claim_string_matcher("sub", match_sub)},
                ]
            )
        )
    return alternatives[0] if len(alternatives) == 1 else principal_or(alternatives)


def audiences_principal(values: list[str]) -> dict:
    return {"metadata": jwt_claim_matcher(["aud"], or_value_matcher(values))}


def presenter_principal(values: list[str]) -> dict:
    return {"metadata": jwt_claim_matcher(["azp"], or_value_matcher(values))}


def claims_principal(key: str, values: list[str]) -> dict:
    return {"metadata": jwt_claim_matcher(bracketed_names(key.removeprefix("request.auth.claims")), or_value_matcher(values))}


def envoy_filter_permission(key: str, values: list[str]) -> dict:
    """envoyFilterGenerator.extendedPermission: `experimental.envoy.filters.a.b[c]`
    reads the dynamic metadata namespace `envoy.filters.a.b`, key `c`; a value
    `[v]` is a list match, `v` a string match, ORed."""
    namespace, key = key.removeprefix("experimental.").removesuffix("]").split("[", 1)
    matchers = []
    for value in values:
        if value.startswith("[") and value.endswith("]"):
            matchers.append({"list_match": {"one_of": {"string_match": string_matcher(value.strip("[]"))}}})
        else:
            matchers.append({"string_match": string_matcher(value)})
    value_matcher = matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}
    return {"metadata": {"filter": namespace, "path": [{"key": key}], "value": value_matcher}}


def bracketed_names(text: str) -> list[str]:
    """`[a][b]` -> ['a', 'b']; `[a.b]` -> ['a.b'] (Istio's extractNameInNestedBrackets)."""
    names = re.findall(r"\[([^\[\]]*)\]", text)
    if not names or "".join(f"[{name}]" for name in names) != text:
        raise ValueError(f"expecting [<NAME>], found {text!r}")
    return names


# ----- one rule of a policy (model.go) -----
# (field in source/operation, its not-field, Istio's attribute key) in the
# order Istio inserts them; each is inserted at the front, so the generated
# order is the reverse, as in Istio's output.
SOURCE_FIELDS = [
    ("ipBlocks", "notIpBlocks", "source.ip"),
    ("remoteIpBlocks", "notRemoteIpBlocks", "remote.ip"),
    ("namespaces", "notNamespaces", "source.namespace"),
    ("trustDomains", "notTrustDomains", "source.trustDomain"),
    ("serviceAccounts", "notServiceAccounts", "source.serviceAccount"),
    ("requestPrincipals", "notRequestPrincipals", "request.auth.principal"),
    ("principals", "notPrincipals", "source.principal"),
]
OPERATION_FIELDS = [
    ("ports", "notPorts", "destination.port"),
    ("paths", "notPaths", "path"),
    ("methods", "notMethods", ":method"),
    ("hosts", "notHosts", ":authority"),
]
PERMISSION_KEYS = {
    "destination.ip": destination_ip_permission,
    "destination.port": port_permission,
    "connection.sni": sni_permission,
    "path": path_permission,
    ":method": method_permission,
    ":authority": host_permission,
}


def principal_generator(key: str, policy_namespace: str):
    """(per-value generator, None) or (None, extended generator) for a principal key."""
    per_value = {
        "source.ip": source_ip_principal,
        "remote.ip": remote_ip_principal,
        "source.namespace": namespace_principal,
        "source.trustDomain": trust_domain_principal,
        "source.serviceAccount": lambda value: service_account_principal(value, policy_namespace),
        "source.principal": source_principal,
    }
    extended = {
        "request.auth.principal": request_principals_principal,
        "request.auth.audiences": audiences_principal,
        "request.auth.presenter": presenter_principal,
    }
    if key in per_value:
        return per_value[key], None
    if key in extended:
        return None, extended[key]
    if key.startswith("request.headers"):
        return (lambda value: request_header_principal(key, value)), None
    if key.startswith("request.auth.claims"):
        return None, (lambda values: claims_principal(key, values))
    raise ValueError(f"unsupported attribute {key}")


def condition_matchers(values, not_values, per_value, extended, any_of, negate) -> list[dict]:
    """Istio's rule.principal/permission: values ORed, not-values ORed and negated."""
    matchers = []
    for chosen, negated in ((values, False), (not_values, True)):
        if not chosen:
            continue
        matcher = extended(chosen) if extended else any_of([per_value(value) for value in chosen])
        matchers.append(negate(matcher) if negated else matcher)
    return matchers


def principal(conditions: list[tuple[str, list, list]], policy_namespace: str) -> dict:
    ids = []
    for key, values, not_values in conditions:
        per_value, extended = principal_generator(key, policy_namespace)
        ids += condition_matchers(values, not_values, per_value, extended, principal_or, lambda p: {"not_id": p})
    return principal_and(ids or [{"any": True}])


def permission(conditions: list[tuple[str, list, list]]) -> dict:
    rules = []
    for key, values, not_values in conditions:
        if key.startswith("experimental."):
            per_value, extended = None, (lambda chosen, key=key: envoy_filter_permission(key, chosen))
        else:
            per_value, extended = PERMISSION_KEYS[key], None
        rules += condition_matchers(values, not_values, per_value, extended, permission_or, lambda p: {"not_rule": p})
    return permission_and(rules or [{"any": True}])


def is_permission_key(key: str) -> bool:
    return key in PERMISSION_KEYS or key.startswith("experimental.")


def fields_of(spec: dict, fields) -> list[tuple[str, list, list]]:
    present = [(key, spec.get(name) or [], spec.get(not_name) or []) for name, not_name, key in fields]
    return [condition for condition in reversed(present) if condition[1] or condition[2]]


def rule_policy(rule: dict, policy_namespace: str) -> dict:
    """The RBAC policy of one rule: any `from` and any `to`, each ANDed with the `when`s."""
    when_principal, when_permission = [], []
    for condition in rule.get("when") or []:
        entry = (condition["key"], condition.get("values") or [], condition.get("notValues") or [])
        (when_permission if is_permission_key(condition["key"]) else when_principal).append(entry)
    sources = [entry.get("source") or {} for entry in rule.get("from") or []] or [None]
    operations = [entry.get("operation") or {} for entry in rule.get("to") or []] or [None]
    principals = [
        principal((fields_of(source, SOURCE_FIELDS) if source is not None else []) + when_principal, policy_namespace)
        for source in sources
    ]
    permissions = [
        permission((fields_of(operation, OPERATION_FIELDS) if operation is not None else []) + when_permission)
        for operation in operations
    ]
    return {"permissions": permissions, "principals": principals}


# A policy without rules: Istio's explicit never-matching policy (allow-nothing).
MATCH_NEVER = {"permissions": [{"not_rule": {"any": True}}], "principals": [{"not_id": {"any": True}}]}


def policy_name(namespace: str, name: str, rule_index: int) -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{rule_index}]"


def rbac_filters(specs: list[dict], namespace: str = "default") -> list[dict]:
    """The RBAC filters Istio puts before the router: one for the DENY policies,
    then one for the ALLOW policies, each only if such a policy exists. The
    specs are named `policy-0`, `policy-1`... in list order."""
    by_action = {"DENY": {}, "ALLOW": {}}
    for index, spec in enumerate(specs):
        action = spec.get("action", "ALLOW")
        policies = by_action[action]
        name = f"policy-{index}"
        rules = spec.get("rules") or []
        for rule_index, rule in enumerate(rules):
            policies[policy_name(namespace, name, rule_index)] = rule_policy(rule, namespace)
        if not rules:
            policies[policy_name(namespace, name, 0)] = MATCH_NEVER
    return [rbac_filter(action, policies) for action, policies in by_action.items() if policies]


def rbac_filter(action: str, policies: dict) -> dict:
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": action, "policies": policies},
        },
    }


# ----- RequestAuthentication (authn/policy_applier.go) -----
def jwt_provider(jwt_rule: dict) -> dict:
    """One jwtRules entry with an inline `jwks`, as Istio configures its provider."""
    provider = {
        "issuer": jwt_rule["issuer"],
        "local_jwks": {"inline_string": jwt_rule["jwks"]},
        "payload_in_metadata": JWT_PAYLOAD,
        "normalize_payload_in_metadata": {
            "space_delimited_claims": sorted(set(jwt_rule.get("spaceDelimitedClaims", [])) | set(DEFAULT_SPACE_DELIMITED_CLAIMS))
        },
    }
    if jwt_rule.get("audiences"):
        provider["audiences"] = jwt_rule["audiences"]
    return provider


def jwt_authn_filter(jwt_rules: list[dict]) -> dict:
    """Every provider optional (`allow_missing`): a request without a token
    passes on to RBAC, one with an invalid token gets 401."""
    providers = {f"origins-{index}": jwt_provider(jwt_rule) for index, jwt_rule in enumerate(jwt_rules)}
    optional = [
        {"requires_any": {"requirements": [{"provider_name": name}, {"allow_missing": {}}]}} for name in providers
    ]
    if len(optional) == 1:
        requires = optional[0]
    else:
        # Istio's outer OR: any one provider, or each of them optional.
        requires = {
            "requires_any": {
                "requirements": [{"provider_name": name} for name in providers] + [{"requires_all": {"requirements": optional}}]
            }
        }
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": providers,
            "rules": [{"match": {"prefix": "/"}, "requires": requires}],
            "bypass_cors_preflight": True,
        },
    }


def native_filters(jwt_rules: list[dict], specs: list[dict]) -> list[dict]:
    """The HTTP filters before the router of a listener Istio configured with
    this RequestAuthentication and these AuthorizationPolicies."""
    return [jwt_authn_filter(jwt_rules), *rbac_filters(specs)]


def inline_jwks(jwks: dict) -> str:
    return json.dumps(jwks)
