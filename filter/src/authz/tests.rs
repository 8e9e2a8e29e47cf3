//! Decisions for Istio's documented AuthorizationPolicy examples, as a table.

use super::*;
use crate::config::Config;
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
    let identity = Identity {
        claims,
        space_delimited: &config.space_delimited_claims,
    };
    authorize(&config.policies, &identity, headers).is_ok()
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
    // hosts: case-insensitive, with or without the port.
    (
        r#"[{"rules":[{"to":[{"operation":{"hosts":["Grafana.Example.com"]}}]}]}]"#,
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
    // Beyond Istio: booleans and numbers match their JSON text.
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[email_verified]","values":["true"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
    ),
    (
        r#"[{"rules":[{"when":[{"key":"request.auth.claims[level]","values":["3"]}]}]}]"#,
        "GET",
        "/",
        "app",
        true,
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
        let headers = request(method, path, host, &[("x-tenant", "acme")]);
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
            r#"[{"action":"AUDIT","rules":[]}]"#,
            "authorizationPolicies[0].action",
        ),
        (r#"[{"rules":[{}]}]"#, "authorizationPolicies[0].rules[0]"),
        (
            r#"[{"rules":[{"to":[{"operation":{"paths":["/a*b"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.paths[0]",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"paths":["/api/{*}"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.paths",
        ),
        (
            r#"[{"rules":[{"when":[{"key":"source.ip","values":["1.2.3.4"]}]}]}]"#,
            "authorizationPolicies[0].rules[0].when[0].key",
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
            r#"[{"rules":[{"from":[{"source":{"principals":["x"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].from[0].source.principals",
        ),
        (
            r#"[{"rules":[{"to":[{"operation":{"ports":["80"]}}]}]}]"#,
            "authorizationPolicies[0].rules[0].to[0].operation.ports",
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
