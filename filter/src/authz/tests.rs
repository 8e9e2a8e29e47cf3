//! Decisions for Istio's documented AuthorizationPolicy examples, as a table.

use super::*;
use crate::config::Config;
use crate::peer::Peer;
use crate::request::{Edits, Headers};
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

fn policies(json_policies: &str) -> Config {
    let text = format!(
        r#"{{"jwtRules":[{{"issuer":"https://idp.test","jwksUri":"https://idp.test/jwks","spaceDelimitedClaims":["roles"]}}],
            "authorizationPolicies":{json_policies}}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

fn alice() -> Map<String, Value> {
    json!({
        "iss": "https://idp.test", "sub": "alice", "aud": ["grafana", "api"], "azp": "grafana",
        "email": "alice@example.test", "email_verified": true, "groups": ["dev", "ops"],
        "scope": "read write", "roles": "viewer editor", "level": 3,
        "org": {"team": "payments", "region": {"name": "eu"}}
    })
    .as_object()
    .unwrap()
    .clone()
}

fn request(method: &str, path: &str, host: &str, extra: &[(&str, &str)]) -> Headers {
    let mut pairs = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), host.to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Headers::new(pairs)
}

fn decide(config: &Config, claims: &Map<String, Value>, headers: &Headers) -> bool {
    decide_with(config, claims, headers, &Edits::default(), &Peer::default())
}

fn decide_with(
    config: &Config,
    claims: &Map<String, Value>,
    headers: &Headers,
    edits: &Edits,
    peer: &Peer,
) -> bool {
    let identity = Identity {
        claims,
        space_delimited: &config.space_delimited_claims,
    };
    let request = Forwarded { headers, edits };
    authorize(&config.top_level.policies, &identity, request, peer).is_ok()
}

/// An anonymous `GET /` from `peer`: allowed?
fn anonymous_get_allowed(config: &Config, peer: &Peer) -> bool {
    let headers = request("GET", "/", "app", &[]);
    decide_with(config, &Map::new(), &headers, &Edits::default(), peer)
}

/// (policies JSON, method, path, host, expected allow)
const CASES: &[(&str, &str, &str, &str, bool)] = &[
    // No policy: allow.
    ("[]", "GET", "/", "app", true),
    // Istio's allow-nothing: an ALLOW policy without rules denies everything.
    (r#"[{"action":"ALLOW"}]"#, "GET", "/", "app", false),
    // requestPrincipals: <iss>/<sub>, exact, prefix, suffix, any.
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["https://idp.test/alice"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["https://idp.test/bob"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["https://idp.test/*"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["*/alice"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"notRequestPrincipals":["*/alice"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // to.operation: methods and paths, OR within a list, AND across fields.
    (
        r#"[{"rules":[{"to":[{"operation":{"methods":["GET","HEAD"],"paths":["/info*"]}}]}]}]"#,
        "GET",
        "/info/x",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"methods":["GET","HEAD"],"paths":["/info*"]}}]}]}]"#,
        "POST",
        "/info/x",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"methods":["GET","HEAD"],"paths":["/info*"]}}]}]}]"#,
        "GET",
        "/data",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"paths":["*.js"]}}]}]}]"#,
        "GET",
        "/static/app.js?v=2",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"notPaths":["/admin*"]}}]}]}]"#,
        "GET",
        "/admin/users",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"notMethods":["DELETE"]}}]}]}]"#,
        "DELETE",
        "/x",
        "app",
        false,
    ),
    // hosts: case-insensitive, the whole authority (Istio: `host:*` for any port).
    (
        r#"[{"rules":[{"to":[{"operation":{"hosts":["Grafana.Example.com"]}}]}]}]"#,
        "GET",
        "/",
        "grafana.example.com",
        true,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"hosts":["Grafana.Example.com"]}}]}]}]"#,
        "GET",
        "/",
        "grafana.example.com:8080",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"hosts":["Grafana.Example.com:*"]}}]}]}]"#,
        "GET",
        "/",
        "grafana.example.com:8080",
        true,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"hosts":["*.example.com"]}}]}]}]"#,
        "GET",
        "/",
        "other.test",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"notHosts":["internal.example.com"]}}]}]}]"#,
        "GET",
        "/",
        "internal.example.com",
        false,
    ),
    // when: audiences, presenter, principal.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.audiences","values":["grafana"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.audiences","values":["billing"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.presenter","values":["grafana"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.principal","values":["https://idp.test/alice"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    // when: claims, list claims match any element, nested claims, notValues.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email]","values":["alice@example.test"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email]","values":["bob@example.test"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[groups]","values":["ops"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[groups]","notValues":["dev"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[org][team]","values":["pay*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[org][region][name]","values":["us"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[missing]","notValues":["x"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[missing]","values":["*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // As Envoy's string matcher (Istio's RBAC): booleans and numbers are not
    // strings, so they match no value and pass every `notValues`.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email_verified]","values":["true"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[level]","values":["3"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email_verified]","notValues":["true"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[level]","values":["*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // Space-delimited claims: `scope` by default, `roles` configured.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[scope]","values":["write"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[roles]","values":["editor"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    // Headers.
    (
        r#"[{"rules":[{"when":[{"key":"request.headers[x-tenant]","values":["acme"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.headers[x-tenant]","values":["other"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // Conditions are ANDed.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email]","values":["alice@example.test"]},{"key":"request.auth.claims[groups]","values":["admins"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // DENY wins over ALLOW.
    (
        r#"[{"action":"DENY","rules":[{"when":[{"key":"request.auth.claims[groups]","values":["ops"]}]}]},{"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // A DENY that does not match leaves the decision to the ALLOWs (none here: allow).
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]"#,
        "GET",
        "/home",
        "app",
        true,
    ),
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]"#,
        "GET",
        "/admin",
        "app",
        false,
    ),
    // Paths are normalized before matching, so tricks cannot dodge a DENY.
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]"#,
        "GET",
        "//admin",
        "app",
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]"#,
        "GET",
        "/static/../admin/x",
        "app",
        false,
    ),
    // Path templates (Istio 1.22+): `{*}` one segment, `{**}` any number.
    (
        r#"[{"rules":[{"to":[{"operation":{"paths":["/api/{*}/items"]}}]}]}]"#,
        "GET",
        "/api/v1/items?page=2",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"paths":["/api/{*}/items"]}}]}]}]"#,
        "GET",
        "/api/v1/v2/items",
        "app",
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/{**}/secret"]}}]}]}]"#,
        "GET",
        "/a/b/secret",
        "app",
        false,
    ),
    // Judged normalized too: `/a/./secret` is `/a/secret`.
    (
        r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/{**}/secret"]}}]}]}]"#,
        "GET",
        "/a/./secret",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"to":[{"operation":{"notPaths":["/admin/{**}"]}}]}]}]"#,
        "GET",
        "/admin",
        "app",
        true,
    ),
    // An empty rule matches every request: Istio's allow-all and deny-all.
    (r#"[{"rules":[{}]}]"#, "DELETE", "/anything", "app", true),
    (
        r#"[{"action":"DENY","rules":[{}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // `*` on a header is Envoy's present_match: an empty value is present.
    (
        r#"[{"rules":[{"when":[{"key":"request.headers[x-empty]","values":["*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.headers[x-absent]","values":["*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.headers[x-empty]","notValues":["*"]}]}]}]"#,
        "GET",
        "/",
        "app",
        false,
    ),
    // Several ALLOW policies: any one suffices.
    (
        r#"[{"rules":[{"to":[{"operation":{"paths":["/a"]}}]}]},{"rules":[{"to":[{"operation":{"paths":["/b"]}}]}]}]"#,
        "GET",
        "/b",
        "app",
        true,
    ),
    // Rules of one policy are ORed.
    (
        r#"[{"rules":[{"to":[{"operation":{"paths":["/a"]}}]},{"to":[{"operation":{"paths":["/c"]}}]}]}]"#,
        "GET",
        "/c",
        "app",
        true,
    ),
];

#[wasm_bindgen_test(unsupported = test)]
fn istio_examples_decide_as_istio_does() {
    let claims = alice();
    for (json_policies, method, path, host, expected) in CASES {
        let config = policies(json_policies);
        let headers = request(method, path, host, &[("x-tenant", "acme"), ("x-empty", "")]);
        assert_eq!(
            decide(&config, &claims, &headers),
            *expected,
            "{json_policies} {method} {path} {host}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn rules_are_validated_at_load_with_the_field_named() {
    let cases = [
        (
            r#"[{"action":"CUSTOM","rules":[]}]"#,
            "authorizationPolicies[0].action",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"paths":["/a*b"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.paths[0]",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"notPaths":["/a","/api/{*}.json"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.notPaths[1]",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"destination.ipx","values":["1.2.3.4"]}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0].key",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"source.ip","values":["1.2.3.x"]}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0].values[0]",
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"ipBlocks":["10.0.0.0/40"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].from[0].source.ipBlocks[0]",
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"notRemoteIpBlocks":["10.0.0.0/8","x"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].from[0].source.notRemoteIpBlocks[1]",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"request.auth.claims[]","values":["x"]}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0].key",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"request.auth.claims[email]"}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0]",
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"principals":["a*b"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].from[0].source.principals[0]",
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"serviceAccounts":["x"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].from[0].source.serviceAccounts[0]",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"ports":["80x"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.ports[0]",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"notPorts":["65536"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.notPorts[0]",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"destination.port","values":["-1"]}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0].values[0]",
        ),
    ];
    for (json_policies, path) in cases {
        let text = format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwksUri":"https://i/j"}}],"authorizationPolicies":{json_policies}}}"#
        );
        let error = Config::parse(text.as_bytes()).unwrap_err();
        assert_eq!(error.path, path, "{json_policies}: {error}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn public_paths_are_validated() {
    for bad in [r#"["healthz"]"#, r#"["/a*b"]"#, r#"[""]"#] {
        let text = format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwksUri":"https://i/j"}}],"publicPaths":{bad}}}"#
        );
        assert_eq!(
            Config::parse(text.as_bytes()).unwrap_err().path,
            "publicPaths[0]",
            "{bad}"
        );
    }
}

fn sleep_in_foo() -> Peer {
    Peer {
        principals: vec!["cluster.local/ns/foo/sa/sleep".into()],
        principals_unknown: false,
        direct_ip: crate::peer::Ip::parse("10.1.2.3"),
        remote_ip: crate::peer::Ip::parse("203.0.113.9"),
        ..Peer::default()
    }
}

/// (policies JSON, expected allow) for the peer `sleep_in_foo`, then for a
/// plain-text peer whose address came from X-Forwarded-For (direct peer unknown).
const PEER_CASES: &[(&str, bool, bool)] = &[
    (
        r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/foo/sa/sleep"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/bar/sa/sleep"]}}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"principals":["*"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"notPrincipals":["*/sa/sleep"]}}]}]}]"#,
        false,
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"namespaces":["foo"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"notNamespaces":["foo"]}}]}]}]"#,
        false,
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"ipBlocks":["10.0.0.0/8"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"ipBlocks":["192.168.0.0/16"]}}]}]}]"#,
        false,
        false,
    ),
    // Unknown direct peer: an ALLOW that needs it fails closed...
    (
        r#"[{"rules":[{"from":[{"source":{"notIpBlocks":["192.168.0.0/16"]}}]}]}]"#,
        true,
        false,
    ),
    // ...and a DENY that needs it matches.
    (
        r#"[{"action":"DENY","rules":[{"from":[{"source":{"ipBlocks":["192.168.0.0/16"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"remoteIpBlocks":["203.0.113.0/24"]}}]}]}]"#,
        true,
        true,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"notRemoteIpBlocks":["203.0.113.0/24"]}}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"source.ip","values":["10.1.2.3"]}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"remote.ip","notValues":["198.51.100.0/24"]}]}]}]"#,
        true,
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"source.namespace","values":["foo"]}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"source.principal","values":["*/ns/bar/sa/sleep"]}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"source.principal","values":["cluster.local/ns/foo/*"]}]}]}]"#,
        true,
        false,
    ),
    // Mesh identity and end-user identity in one rule (Istio's authentication task).
    (
        r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/foo/sa/sleep"],"requestPrincipals":["https://idp.test/alice"]}}]}]}]"#,
        true,
        false,
    ),
];

#[wasm_bindgen_test(unsupported = test)]
fn peer_identity_and_addresses_decide_as_istio_does() {
    let claims = alice();
    let headers = request("GET", "/", "app", &[]);
    let edits = Edits::default();
    let forwarded_plain_text = Peer {
        principals: Vec::new(),
        principals_unknown: false,
        direct_ip: None,
        remote_ip: crate::peer::Ip::parse("203.0.113.9"),
        ..Peer::default()
    };
    for (json_policies, mtls, plain) in PEER_CASES {
        let config = policies(json_policies);
        assert_eq!(
            decide_with(&config, &claims, &headers, &edits, &sleep_in_foo()),
            *mtls,
            "mTLS peer: {json_policies}"
        );
        assert_eq!(
            decide_with(&config, &claims, &headers, &edits, &forwarded_plain_text),
            *plain,
            "plain-text peer: {json_policies}"
        );
    }
}

/// (policies JSON, expected allow) for a peer whose certificate names
/// `good/sa/x` first and `evil/sa/y` second, then for a peer whose certificate
/// could not be read. Envoy's RBAC matches any URI SAN: the second one counts.
const TWO_SAN_CASES: &[(&str, bool, bool)] = &[
    (
        r#"[{"action":"DENY","rules":[{"from":[{"source":{"principals":["cluster.local/ns/evil/sa/y"]}}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"from":[{"source":{"namespaces":["evil"]}}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"when":[{"key":"source.namespace","values":["evil"]}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"when":[{"key":"source.principal","values":["*/sa/y"]}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/evil/sa/y"]}}]}]}]"#,
        true,
        false,
    ),
    (
        r#"[{"rules":[{"from":[{"source":{"namespaces":["good"]}}]}]}]"#,
        true,
        false,
    ),
    // Some value names `evil`: not admitted by `notNamespaces`.
    (
        r#"[{"rules":[{"from":[{"source":{"notNamespaces":["evil"]}}]}]}]"#,
        false,
        false,
    ),
    (
        r#"[{"action":"DENY","rules":[{"from":[{"source":{"namespaces":["other"]}}]}]}]"#,
        true,
        false,
    ),
    // A rule that does not read the principals ignores an unreadable certificate.
    (
        r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["https://idp.test/alice"]}}]}]}]"#,
        true,
        true,
    ),
];

#[wasm_bindgen_test(unsupported = test)]
fn any_principal_of_the_certificate_matches_as_in_envoy_rbac() {
    let claims = alice();
    let headers = request("GET", "/", "app", &[]);
    let edits = Edits::default();
    let two_sans =
        Peer::default().with_certificate(include_bytes!("../../testdata/peer-two-spiffe.pem"), b"");
    let unreadable = Peer::default().with_certificate(b"-----BEGIN CERTIFICATE-----", b"");
    assert!(unreadable.principals_unknown);
    for (json_policies, two, unknown) in TWO_SAN_CASES {
        let config = policies(json_policies);
        assert_eq!(
            decide_with(&config, &claims, &headers, &edits, &two_sans),
            *two,
            "two URI SANs: {json_policies}"
        );
        assert_eq!(
            decide_with(&config, &claims, &headers, &edits, &unreadable),
            *unknown,
            "unreadable certificate: {json_policies}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn policies_say_which_peer_attributes_they_read() {
    let needs = |json: &str| policies(json).peer_needs;
    assert!(!needs(r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}]"#).any());
    let principal = needs(r#"[{"rules":[{"from":[{"source":{"namespaces":["foo"]}}]}]}]"#);
    assert!(principal.principal && !principal.direct_ip && !principal.remote_ip);
    let remote = needs(r#"[{"rules":[{"when":[{"key":"remote.ip","values":["1.2.3.4"]}]}]}]"#);
    assert!(remote.remote_ip && !remote.direct_ip);
}

#[wasm_bindgen_test(unsupported = test)]
fn header_conditions_read_the_request_as_forwarded() {
    let config = policies(
        r#"[{"rules":[{"when":[{"key":"request.headers[x-group]","values":["admin"]}]}]}]"#,
    );
    let claims = alice();
    let headers = request("GET", "/", "app", &[("x-group", "admin")]);
    let peer = Peer::default();
    assert!(decide_with(
        &config,
        &claims,
        &headers,
        &Edits::default(),
        &peer
    ));
    // The filter removes the client's copy and writes the token's value.
    let mut edits = Edits::default();
    edits.remove("x-group");
    assert!(!decide_with(&config, &claims, &headers, &edits, &peer));
    edits.set("x-group", "users".into());
    assert!(!decide_with(&config, &claims, &headers, &edits, &peer));
    edits.set("x-group", "admin".into());
    assert!(decide_with(&config, &claims, &headers, &edits, &peer));
}

/// Which anonymous requests a credential could get allowed: identity tests are
/// taken at their most favourable, everything else as it is.
#[wasm_bindgen_test(unsupported = test)]
fn a_credential_helps_only_where_identity_decides() {
    let peer_10 = Peer {
        direct_ip: Ip::parse("10.0.0.1"),
        remote_ip: Ip::parse("10.0.0.1"),
        ..Peer::default()
    };
    let mtls = Peer {
        principals: vec!["cluster.local/ns/a/sa/b".into()],
        ..peer_10.clone()
    };
    let cases: &[(&str, &str, &Peer, bool)] = &[
        // Identity decides.
        (
            r#"[{"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        (
            r#"[{"action":"DENY","rules":[{"from":[{"source":{"notRequestPrincipals":["*"]}}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"request.auth.claims[groups]","values":["admin"]}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"request.headers[x-group]","values":["admin"]}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        // The request's own facts decide, whoever the user is.
        (
            r#"[{"action":"DENY","rules":[{"when":[{"key":"source.ip","values":["10.0.0.0/8"]}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"source.principal","values":["cluster.local/ns/a/sa/b"]}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/x*"]}}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/x*"]}}]}]}]"#,
            "/y",
            &peer_10,
            true,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"ipBlocks":["192.168.0.0/16"]}}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/a/sa/b"]}}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"principals":["cluster.local/ns/a/sa/b"]}}]}]}]"#,
            "/x",
            &mtls,
            true,
        ),
        // Both: the peer must fit and then an identity may help.
        (
            r#"[{"rules":[{"from":[{"source":{"namespaces":["a"],"requestPrincipals":["*"]}}]}]}]"#,
            "/x",
            &peer_10,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"namespaces":["a"],"requestPrincipals":["*"]}}]}]}]"#,
            "/x",
            &mtls,
            true,
        ),
        // A DENY that needs an identity to match does not make it hopeless...
        (
            r#"[{"action":"DENY","rules":[{"from":[{"source":{"requestPrincipals":["*"]}}],"to":[{"operation":{"paths":["/x"]}}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        // ... nor does one whose identity test a user could fail.
        (
            r#"[{"action":"DENY","rules":[{"when":[{"key":"request.auth.claims[banned]","values":["true"]}]}]}]"#,
            "/x",
            &peer_10,
            true,
        ),
        // Every reading of the path counts.
        (
            r#"[{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]"#,
            "/admin/..;/x",
            &peer_10,
            false,
        ),
    ];
    for (json_policies, path, peer, expected) in cases {
        let config = policies(json_policies);
        let headers = request("GET", path, "app", &[]);
        let edits = Edits::default();
        let forwarded = Forwarded {
            headers: &headers,
            edits: &edits,
        };
        assert_eq!(
            could_allow_with_a_credential(&config.top_level.policies, forwarded, peer),
            *expected,
            "{json_policies} {path}"
        );
    }
}

/// `serviceAccounts`/`trustDomains` (Istio 1.25+/1.30) and their `when` keys,
/// matched on any SPIFFE identity of the peer.
#[wasm_bindgen_test(unsupported = test)]
fn service_accounts_and_trust_domains_decide_as_istio_does() {
    let peer = |principals: &[&str]| Peer {
        principals: principals.iter().map(|p| p.to_string()).collect(),
        ..Peer::default()
    };
    let sleep = peer(&["cluster.local/ns/foo/sa/sleep"]);
    let other_td = peer(&["prod.example/ns/foo/sa/sleep"]);
    let both = peer(&["cluster.local/ns/bar/sa/x", "prod.example/ns/foo/sa/sleep"]);
    let none = Peer::default();
    let cases: &[(&str, &Peer, bool)] = &[
        (
            r#"[{"rules":[{"from":[{"source":{"serviceAccounts":["foo/sleep"]}}]}]}]"#,
            &sleep,
            true,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"serviceAccounts":["foo/sleep"]}}]}]}]"#,
            &other_td,
            true,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"serviceAccounts":["bar/sleep"]}}]}]}]"#,
            &sleep,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"serviceAccounts":["foo/sleep"]}}]}]}]"#,
            &none,
            false,
        ),
        (
            r#"[{"action":"DENY","rules":[{"from":[{"source":{"serviceAccounts":["foo/sleep"]}}]}]}]"#,
            &both,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"notServiceAccounts":["foo/sleep"]}}]}]}]"#,
            &sleep,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"trustDomains":["cluster.local"]}}]}]}]"#,
            &sleep,
            true,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"trustDomains":["cluster.local"]}}]}]}]"#,
            &other_td,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"trustDomains":["*.example"]}}]}]}]"#,
            &other_td,
            true,
        ),
        (
            r#"[{"action":"DENY","rules":[{"from":[{"source":{"trustDomains":["prod.example"]}}]}]}]"#,
            &both,
            false,
        ),
        (
            r#"[{"rules":[{"from":[{"source":{"notTrustDomains":["prod.example"]}}]}]}]"#,
            &sleep,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"source.serviceAccount","values":["foo/sleep"]}]}]}]"#,
            &sleep,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"source.trustDomain","notValues":["cluster.local"]}]}]}]"#,
            &sleep,
            false,
        ),
    ];
    for (json_policies, peer, expected) in cases {
        let config = policies(json_policies);
        assert!(config.peer_needs.principal, "{json_policies}");
        assert_eq!(
            anonymous_get_allowed(&config, peer),
            *expected,
            "{json_policies} {:?}",
            peer.principals
        );
    }
}

/// Whole `AuthorizationPolicy` resources as `kubectl get -o yaml` prints them (in
/// JSON), AUDIT policies and dry-run policies: only ALLOW and DENY decide.
#[wasm_bindgen_test(unsupported = test)]
fn resources_audit_and_dry_run_policies() {
    let config = policies(
        r#"[
        {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
         "metadata":{"name":"audit-admin","namespace":"shop","uid":"x","labels":{"a":"b"}},
         "spec":{"action":"AUDIT","selector":{"matchLabels":{"app":"x"}},
                 "rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}},
        {"apiVersion":"security.istio.io/v1beta1","kind":"AuthorizationPolicy",
         "metadata":{"name":"try-deny","namespace":"shop","annotations":{"istio.io/dry-run":"true"}},
         "spec":{"action":"DENY","rules":[{"to":[{"operation":{"methods":["DELETE"]}}]}]}},
        {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
         "metadata":{"name":"sa","namespace":"shop"},
         "spec":{"targetRefs":[{"kind":"Gateway","name":"gw"}],
                 "rules":[{"from":[{"source":{"serviceAccounts":["frontend"]}}]},
                          {"to":[{"operation":{"paths":["/public*"]}}]}]}}
    ]"#,
    );
    let policies = &config.top_level.policies;
    assert_eq!(policies[0].action, Action::Audit);
    assert!(policies[1].dry_run && policies[1].name == "shop/try-deny");
    let frontend = Peer {
        principals: vec!["cluster.local/ns/shop/sa/frontend".into()],
        ..Peer::default()
    };
    let no_claims = Map::new();
    let identity = Identity {
        claims: &no_claims,
        space_delimited: &[],
    };
    let judge = |method: &str, path: &str, peer: &Peer| {
        let headers = request(method, path, "app", &[]);
        let edits = Edits::default();
        let forwarded = Forwarded {
            headers: &headers,
            edits: &edits,
        };
        (
            authorize(policies, &identity, forwarded, peer).is_ok(),
            observe(policies, &identity, forwarded, peer),
        )
    };
    // The short service account is the policy's namespace's.
    let (allowed, seen) = judge("GET", "/admin/x", &frontend);
    assert!(allowed, "AUDIT changes nothing");
    assert_eq!(seen.audited, ["shop/audit-admin"]);
    assert_eq!(seen.dry_run, Some(Ok(())));
    let (allowed, seen) = judge("DELETE", "/public/x", &Peer::default());
    assert!(allowed, "the dry-run DENY is not enforced");
    assert!(seen.audited.is_empty());
    assert!(matches!(&seen.dry_run, Some(Err(why)) if why.contains("shop/try-deny")));
    let (allowed, seen) = judge("GET", "/x", &Peer::default());
    assert!(!allowed, "the enforced ALLOW still decides");
    assert_eq!(
        seen.dry_run,
        Some(Ok(())),
        "the dry-run verdict is the dry-run policies' alone"
    );
    // Without AUDIT or dry-run policies there is nothing to observe.
    let plain = self::policies(r#"[{"rules":[{"to":[{"operation":{"paths":["/x"]}}]}]}]"#);
    let headers = request("GET", "/x", "app", &[]);
    let edits = Edits::default();
    let forwarded = Forwarded {
        headers: &headers,
        edits: &edits,
    };
    assert_eq!(
        observe(&plain.top_level.policies, &identity, forwarded, &frontend),
        Observation::default()
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn resources_are_checked_and_name_their_fields() {
    let error = |text: &str| {
        let full = format!(
            r#"{{"jwtRules":[{{"issuer":"https://idp.test","jwksUri":"https://idp.test/jwks"}}],"authorizationPolicies":[{text}]}}"#
        );
        Config::parse(full.as_bytes()).unwrap_err().to_string()
    };
    assert!(
        error(r#"{"apiVersion":"v1","kind":"AuthorizationPolicy","spec":{}}"#)
            .starts_with("authorizationPolicies[0].apiVersion: `v1`")
    );
    assert!(error(
        r#"{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication","spec":{}}"#
    )
    .starts_with("authorizationPolicies[0].kind: "));
    assert!(error(
        r#"{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","spec":{"rules":[{"to":[{"operation":{"ports":["x"]}}]}]}}"#
    )
    .starts_with("authorizationPolicies[0].spec.rules[0].to[0].operation.ports[0]: "));
    assert!(error(
        r#"{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
            "metadata":{"annotations":{"istio.io/dry-run":"yes"}},"spec":{}}"#
    )
    .contains("istio.io/dry-run: yes"));
    assert!(
        error(r#"{"kind":"AuthorizationPolicy","apiVersion":"security.istio.io/v1"}"#)
            .contains("spec")
    );
}

/// `ports`, `destination.port`, `destination.ip` and `connection.sni`: the
/// connection's local address and SNI, as Envoy's RBAC reads them.
#[wasm_bindgen_test(unsupported = test)]
fn destination_and_sni_decide_as_istio_does() {
    let at = |ip: &str, port: u16, sni: Option<&str>| Peer {
        destination: Ip::parse(ip).map(|ip| (ip, port)),
        sni: sni.map(str::to_string),
        ..Peer::default()
    };
    let on_8080 = at("10.0.0.5", 8080, Some("api.example.com"));
    let on_9090 = at("192.168.1.9", 9090, None);
    let unknown = Peer::default();
    let cases: &[(&str, &Peer, bool)] = &[
        (
            r#"[{"rules":[{"to":[{"operation":{"ports":["8080"]}}]}]}]"#,
            &on_8080,
            true,
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"ports":["8080"]}}]}]}]"#,
            &on_9090,
            false,
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"notPorts":["8080"]}}]}]}]"#,
            &on_9090,
            true,
        ),
        // Where Envoy could not tell the local address, fail closed.
        (
            r#"[{"rules":[{"to":[{"operation":{"ports":["8080"]}}]}]}]"#,
            &unknown,
            false,
        ),
        (
            r#"[{"action":"DENY","rules":[{"to":[{"operation":{"ports":["9"]}}]}]}]"#,
            &unknown,
            false,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"destination.port","values":["9090"]}]}]}]"#,
            &on_9090,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"destination.ip","values":["10.0.0.0/8"]}]}]}]"#,
            &on_8080,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"destination.ip","values":["10.0.0.0/8"]}]}]}]"#,
            &on_9090,
            false,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"connection.sni","values":["*.example.com"]}]}]}]"#,
            &on_8080,
            true,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"connection.sni","values":["*.example.com"]}]}]}]"#,
            &on_9090,
            false,
        ),
        (
            r#"[{"rules":[{"when":[{"key":"connection.sni","notValues":["api.example.com"]}]}]}]"#,
            &on_9090,
            true,
        ),
    ];
    for (json_policies, peer, expected) in cases {
        let config = policies(json_policies);
        assert_eq!(
            anonymous_get_allowed(&config, peer),
            *expected,
            "{json_policies} {peer:?}"
        );
    }
    let needs = policies(r#"[{"rules":[{"to":[{"operation":{"ports":["1"]}}],"when":[{"key":"connection.sni","values":["x"]}]}]}]"#).peer_needs;
    assert!(needs.destination && needs.sni && !needs.principal);
}

/// `experimental.envoy.filters.<namespace>[<key>]`: the dynamic metadata other
/// filters wrote, `v` against a string value, `[v]` against a list's elements,
/// as Istio's translation into Envoy's metadata matchers.
#[wasm_bindgen_test(unsupported = test)]
fn dynamic_metadata_decides_as_istio_does() {
    let with = |value: Option<MetadataValue>, unknown: bool| Peer {
        metadata: value
            .map(|value| (("envoy.filters.a.b".to_string(), "c".to_string()), value))
            .into_iter()
            .collect(),
        metadata_unknown: unknown,
        ..Peer::default()
    };
    let text = with(Some(MetadataValue::Text("prefix-x".into())), false);
    let list = with(
        Some(MetadataValue::List(vec!["a".into(), "prefix-y".into()])),
        false,
    );
    let other = with(Some(MetadataValue::Other), false);
    let absent = with(None, false);
    let unknown = with(None, true);
    let key = "experimental.envoy.filters.a.b[c]";
    let allow = |values: &str| {
        format!(r#"[{{"rules":[{{"when":[{{"key":"{key}","values":{values}}}]}}]}}]"#)
    };
    let allow_not = |values: &str| {
        format!(r#"[{{"rules":[{{"when":[{{"key":"{key}","notValues":{values}}}]}}]}}]"#)
    };
    let deny = |values: &str| {
        format!(
            r#"[{{"action":"DENY","rules":[{{"when":[{{"key":"{key}","values":{values}}}]}}]}}]"#
        )
    };
    let cases: Vec<(String, &Peer, bool)> = vec![
        (allow(r#"["prefix-*"]"#), &text, true),
        (allow(r#"["prefix-*"]"#), &list, false),
        (allow(r#"["[prefix-*]"]"#), &list, true),
        (allow(r#"["[prefix-*]"]"#), &text, false),
        (allow(r#"["[a]", "nope"]"#), &list, true),
        (allow(r#"["*"]"#), &other, false),
        (allow(r#"["*"]"#), &absent, false),
        (allow_not(r#"["prefix-x"]"#), &text, false),
        (allow_not(r#"["prefix-x"]"#), &absent, true),
        (allow_not(r#"["[a]"]"#), &list, false),
        // Metadata Envoy would not give, or bytes that are no Struct: fail closed.
        (allow(r#"["*"]"#), &unknown, false),
        (allow_not(r#"["x"]"#), &unknown, false),
        (deny(r#"["x"]"#), &unknown, false),
        (deny(r#"["x"]"#), &absent, true),
    ];
    for (json_policies, peer, expected) in cases {
        let config = policies(&json_policies);
        assert_eq!(
            anonymous_get_allowed(&config, peer),
            expected,
            "{json_policies} {peer:?}"
        );
    }
    let config = policies(&format!(
        r#"[{{"rules":[{{"when":[{{"key":"{key}","values":["x"]}},{{"key":"experimental.envoy.filters.a.b[d]","values":["y"]}}]}}]}}]"#
    ));
    assert!(config.peer_needs.metadata && !config.peer_needs.principal);
    assert_eq!(
        config.metadata_keys,
        [
            ("envoy.filters.a.b".to_string(), "c".to_string()),
            ("envoy.filters.a.b".to_string(), "d".to_string())
        ]
    );
    for bad in [
        "experimental.envoy.filters.a.b",
        "experimental.envoy.filters.a.b[]",
        "experimental.envoy.filters.[c]",
        "experimental.envoy.filters.a.b[c][d]",
        "experimental.other.a[c]",
        "experimental.envoy.filters.a.b[c\u{0}]",
    ] {
        assert!(policy::parse_key(bad).is_err(), "{bad}");
    }
}

/// Which values a key reads, where a slip would read a neighbour's: `remote.ip`
/// is not the direct peer; a metadata key is its own, not its namespace's first;
/// only top-level space-delimited claims are split.
#[wasm_bindgen_test(unsupported = test)]
fn each_key_reads_its_own_values() {
    let claims = json!({
        "iss": "https://idp.test", "sub": "alice",
        "name": "Alice Smith", "scope": {"inner": "a b"}, "roles": "viewer editor",
    });
    let claims = claims.as_object().unwrap();
    let peer = Peer {
        direct_ip: Ip::parse("10.0.0.1"),
        remote_ip: Ip::parse("203.0.113.7"),
        metadata: vec![
            (
                ("envoy.filters.a".to_string(), "c".to_string()),
                MetadataValue::Text("x".into()),
            ),
            (
                ("envoy.filters.a".to_string(), "d".to_string()),
                MetadataValue::Text("y".into()),
            ),
        ],
        ..Peer::default()
    };
    let cases = [
        (r#"{"key":"remote.ip","values":["203.0.113.0/24"]}"#, true),
        (r#"{"key":"remote.ip","values":["10.0.0.1"]}"#, false),
        (r#"{"key":"source.ip","values":["10.0.0.1"]}"#, true),
        (
            r#"{"key":"experimental.envoy.filters.a[d]","values":["y"]}"#,
            true,
        ),
        (
            r#"{"key":"experimental.envoy.filters.a[d]","values":["x"]}"#,
            false,
        ),
        // Not space-delimited: one value, spaces and all.
        (
            r#"{"key":"request.auth.claims[name]","values":["Alice"]}"#,
            false,
        ),
        (
            r#"{"key":"request.auth.claims[name]","values":["Alice Smith"]}"#,
            true,
        ),
        // `scope` is split at the top level only, as Envoy's jwt_authn does.
        (
            r#"{"key":"request.auth.claims[scope][inner]","values":["a"]}"#,
            false,
        ),
        (
            r#"{"key":"request.auth.claims[scope][inner]","values":["a b"]}"#,
            true,
        ),
        // `roles` is configured space-delimited.
        (
            r#"{"key":"request.auth.claims[roles]","values":["editor"]}"#,
            true,
        ),
    ];
    for (condition, expected) in cases {
        let config = policies(&format!(r#"[{{"rules":[{{"when":[{condition}]}}]}}]"#));
        let headers = request("GET", "/", "app", &[]);
        assert_eq!(
            decide_with(&config, claims, &headers, &Edits::default(), &peer),
            expected,
            "{condition}"
        );
    }
}

/// A pasted resource's namespace qualifies every short service account: in
/// `notServiceAccounts` and in a `source.serviceAccount` condition too; a
/// resource with a name and no namespace is called by its name.
#[wasm_bindgen_test(unsupported = test)]
fn short_service_accounts_are_the_policys_namespaces_everywhere() {
    let config = policies(
        r#"[
        {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
         "metadata":{"name":"not-frontend","namespace":"shop"},
         "spec":{"rules":[{"from":[{"source":{"notServiceAccounts":["frontend"]}}]}]}},
        {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
         "metadata":{"name":"no-namespace"},
         "spec":{"action":"DENY","rules":[{"when":[{"key":"source.serviceAccount","values":["shop/batch"]}]}]}}
    ]"#,
    );
    assert_eq!(config.top_level.policies[1].name, "no-namespace");
    let peer = |account: &str| Peer {
        principals: vec![format!("cluster.local/ns/shop/sa/{account}")],
        ..Peer::default()
    };
    assert!(!anonymous_get_allowed(&config, &peer("frontend")));
    assert!(anonymous_get_allowed(&config, &peer("other")));
    assert!(!anonymous_get_allowed(&config, &peer("batch")));
    let condition = policies(
        r#"[{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
             "metadata":{"name":"sa","namespace":"shop"},
             "spec":{"rules":[{"when":[{"key":"source.serviceAccount","values":["frontend"]}]}]}}]"#,
    );
    assert!(anonymous_get_allowed(&condition, &peer("frontend")));
    assert!(!anonymous_get_allowed(&condition, &peer("other")));
}
