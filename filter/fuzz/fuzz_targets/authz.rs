//! Authorization: policies built from structured fuzz input, compiled through
//! `Config::parse` (so invalid ones are refused, not mis-compiled), then
//! `authz::authorize` with arbitrary claims and request attributes; plus the path
//! normalization invariants rules rely on.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oidc_filter::authz::pattern::Pattern;
use oidc_filter::authz::policy::parse_key;
use oidc_filter::authz::{authorize, Identity};
use oidc_filter::config::Config;
use oidc_filter::path;
use oidc_filter::request::Headers;
use serde_json::{json, Map, Value};

/// Words drawn from a small vocabulary match each other often; free text covers the rest.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Free(String),
}

const WORDS: [&str; 24] = [
    "*",
    "/admin*",
    "/api/*",
    "*.json",
    "/",
    "GET",
    "POST",
    "app.test",
    "*.test",
    "APP.TEST:8080",
    "https://idp.test/alice",
    "https://idp.test/*",
    "*/alice",
    "dev",
    "ops",
    "read",
    "api",
    "request.auth.claims[groups]",
    "request.auth.claims[org][team]",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.headers[x-tenant]",
    "payments",
];

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
            Word::Free(text) => text.clone(),
        }
    }
}

fn texts(words: &[Word]) -> Vec<String> {
    words.iter().map(Word::text).collect()
}

#[derive(Arbitrary, Debug)]
struct Operation {
    paths: Vec<Word>,
    not_paths: Vec<Word>,
    methods: Vec<Word>,
    not_methods: Vec<Word>,
    hosts: Vec<Word>,
    not_hosts: Vec<Word>,
}

#[derive(Arbitrary, Debug)]
struct Condition {
    key: Word,
    values: Vec<Word>,
    not_values: Vec<Word>,
}

#[derive(Arbitrary, Debug)]
struct Rule {
    principals: Vec<Vec<Word>>,
    not_principals: Vec<Word>,
    to: Vec<Operation>,
    when: Vec<Condition>,
}

#[derive(Arbitrary, Debug)]
struct Policy {
    deny: bool,
    rules: Option<Vec<Rule>>,
}

#[derive(Arbitrary, Debug)]
enum Claim {
    Text(Word),
    Number(i64),
    Flag(bool),
    List(Vec<Word>),
    Object(Vec<(Word, Word)>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    policies: Vec<Policy>,
    space_delimited: Vec<Word>,
    claims: Vec<(Word, Claim)>,
    method: Word,
    path: String,
    host: Word,
    headers: Vec<(Word, Word)>,
}

fn policy_json(policy: &Policy) -> Value {
    let mut object = Map::new();
    object.insert(
        "action".into(),
        json!(if policy.deny { "DENY" } else { "ALLOW" }),
    );
    if let Some(rules) = &policy.rules {
        let rules: Vec<Value> = rules
            .iter()
            .map(|rule| {
                let mut from: Vec<Value> = rule
                    .principals
                    .iter()
                    .map(|p| json!({"source": {"requestPrincipals": texts(p)}}))
                    .collect();
                if !rule.not_principals.is_empty() {
                    from.push(json!({"source": {"notRequestPrincipals": texts(&rule.not_principals)}}));
                }
                let to: Vec<Value> = rule
                    .to
                    .iter()
                    .map(|o| {
                        json!({"operation": {
                            "paths": texts(&o.paths), "notPaths": texts(&o.not_paths),
                            "methods": texts(&o.methods), "notMethods": texts(&o.not_methods),
                            "hosts": texts(&o.hosts), "notHosts": texts(&o.not_hosts)}})
                    })
                    .collect();
                let when: Vec<Value> = rule
                    .when
                    .iter()
                    .map(|c| json!({"key": c.key.text(), "values": texts(&c.values), "notValues": texts(&c.not_values)}))
                    .collect();
                json!({"from": from, "to": to, "when": when})
            })
            .collect();
        object.insert("rules".into(), Value::Array(rules));
    }
    Value::Object(object)
}

fn claim_json(claim: &Claim) -> Value {
    match claim {
        Claim::Text(word) => json!(word.text()),
        Claim::Number(n) => json!(n),
        Claim::Flag(flag) => json!(flag),
        Claim::List(words) => json!(texts(words)),
        Claim::Object(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.text(), json!(v.text())))
                .collect(),
        ),
    }
}

fn check_path(raw: &str) {
    let normal = path::normalized(raw);
    assert!(normal.starts_with('/'), "{raw:?} -> {normal:?}");
    assert!(!normal.contains("//"), "{raw:?} -> {normal:?}");
    assert!(!normal.contains(['?', '#']), "{raw:?} -> {normal:?}");
    assert!(
        normal
            .split('/')
            .all(|segment| segment != "." && segment != ".."),
        "{raw:?} -> {normal:?}"
    );
    assert_eq!(
        path::normalized(&normal),
        normal,
        "not idempotent for {raw:?}"
    );
    if path::is_clean(raw) {
        assert_eq!(
            path::without_query(raw),
            normal,
            "clean but not normal: {raw:?}"
        );
        assert!(path::is_clean(&normal));
    }
}

fn request(method: &str, path: &str, host: &str, extra: &[(String, String)]) -> Headers {
    let mut pairs = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), host.to_string()),
    ];
    pairs.extend(extra.iter().cloned());
    Headers::new(pairs)
}

fuzz_target!(|input: Input| {
    check_path(&input.path);
    for word in input.headers.iter().flat_map(|(a, b)| [a, b]) {
        let text = word.text();
        let _ = parse_key(&text);
        if let Ok(pattern) = Pattern::parse(&text) {
            assert!(!pattern.matches("") || !matches!(pattern, Pattern::Present));
            let _ = pattern.lowercased();
        }
    }

    let policies: Vec<Value> = input.policies.iter().map(policy_json).collect();
    let space_delimited = texts(&input.space_delimited);
    let config = json!({
        "jwtRules": [{"issuer": "https://idp.test", "jwksUri": "https://idp.test/jwks",
                      "spaceDelimitedClaims": space_delimited}],
        "authorizationPolicies": policies,
    });
    let Ok(config) = Config::parse(config.to_string().as_bytes()) else {
        return;
    };
    let mut claims: Map<String, Value> = input
        .claims
        .iter()
        .map(|(k, v)| (k.text(), claim_json(v)))
        .collect();
    claims.entry("iss").or_insert(json!("https://idp.test"));
    let identity = Identity {
        claims: &claims,
        space_delimited: &config.space_delimited_claims,
    };
    let extra: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.text().to_ascii_lowercase(), v.text()))
        .filter(|(k, _)| !k.starts_with(':'))
        .collect();
    let method = input.method.text();
    let host = input.host.text();
    let decision = authorize(
        &config.policies,
        &identity,
        &request(&method, &input.path, &host, &extra),
    );
    if config.policies.is_empty() {
        assert!(decision.is_ok());
    }
    // Rules see the normalized path: the raw and the normalized path decide alike.
    let normal = path::normalized(&input.path);
    let again = authorize(
        &config.policies,
        &identity,
        &request(&method, &normal, &host, &extra),
    );
    assert_eq!(
        decision.is_ok(),
        again.is_ok(),
        "{:?} vs {normal:?}",
        input.path
    );
    // No identity at all: still no panic.
    let empty = Map::new();
    let anonymous = Identity {
        claims: &empty,
        space_delimited: &[],
    };
    let _ = authorize(
        &config.policies,
        &anonymous,
        &request(&method, &input.path, &host, &extra),
    );
});
