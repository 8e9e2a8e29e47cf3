//! Authorization: policies built from structured fuzz input, compiled through
//! `Config::parse` (so invalid ones are refused, not mis-compiled), then
//! `authz::authorize` with arbitrary claims, request attributes, header edits and
//! downstream peer; plus the path normalization invariants rules rely on, and our
//! IP parser against `std::net`'s.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oidc_filter::authority;
use oidc_filter::authz::pattern::Pattern;
use oidc_filter::authz::policy::parse_key;
use oidc_filter::authz::{authorize, Identity};
use oidc_filter::config::Config;
use oidc_filter::path;
use oidc_filter::peer::{self, Ip, Peer};
use oidc_filter::request::{Edits, Forwarded, Headers};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// Words drawn from a small vocabulary match each other often; free text covers the rest.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Free(String),
}

const WORDS: [&str; 36] = [
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
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "cluster.local/ns/foo/sa/sleep",
    "cluster.local/ns/*",
    "foo",
    "10.0.0.0/8",
    "10.1.2.3",
    "::ffff:10.1.2.3",
    "2001:db8::/32",
    "x-tenant",
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
struct PeerSource {
    principals: Vec<Word>,
    not_principals: Vec<Word>,
    namespaces: Vec<Word>,
    ip_blocks: Vec<Word>,
    not_ip_blocks: Vec<Word>,
    remote_ip_blocks: Vec<Word>,
}

#[derive(Arbitrary, Debug)]
struct Rule {
    principals: Vec<Vec<Word>>,
    not_principals: Vec<Word>,
    peers: Vec<PeerSource>,
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
    /// Header edits the filter would make: a removal, or a set.
    edits: Vec<(Word, Option<Word>)>,
    /// The SPIFFE IDs of the peer certificate (every URI SAN counts).
    peer_principals: Vec<Word>,
    source_address: Option<(Word, u16)>,
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
                from.extend(rule.peers.iter().map(|p| {
                    json!({"source": {
                        "principals": texts(&p.principals), "notPrincipals": texts(&p.not_principals),
                        "namespaces": texts(&p.namespaces), "ipBlocks": texts(&p.ip_blocks),
                        "notIpBlocks": texts(&p.not_ip_blocks), "remoteIpBlocks": texts(&p.remote_ip_blocks)}})
                }));
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
    // Path parameters are cut from every segment, as servlet containers do.
    assert!(!normal.contains(';'), "{raw:?} -> {normal:?}");
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

/// Our IP parser accepts exactly what `std::net` accepts, as the same address.
fn check_ip(text: &str) {
    let ours = Ip::parse(text);
    let reference = text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    assert_eq!(ours.is_some(), reference.is_some(), "{text:?}");
    if let (Some(ours), Some(reference)) = (ours, reference) {
        assert_eq!(Some(ours), Ip::parse(&reference.to_string()), "{text:?}");
    }
}

fn peer_of(input: &Input) -> Peer {
    let mut peer = Peer {
        principals: input
            .peer_principals
            .iter()
            .filter_map(|uri| peer::principal_from_uri_san(&format!("spiffe://{}", uri.text())))
            .collect(),
        ..Peer::default()
    };
    if let Some((ip, port)) = &input.source_address {
        let text = ip.text();
        check_ip(&text);
        let address = if text.contains(':') {
            format!("[{text}]:{port}")
        } else {
            format!("{text}:{port}")
        };
        (peer.direct_ip, peer.remote_ip) = peer::addresses(&address);
        if *port == 0 {
            assert!(peer.direct_ip.is_none(), "{address}");
        }
    }
    peer
}

fuzz_target!(|input: Input| {
    check_path(&input.path);
    for word in input.headers.iter().flat_map(|(a, b)| [a, b]) {
        let text = word.text();
        check_ip(&text);
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
    let peer = peer_of(&input);
    let mut edits = Edits::default();
    for (name, value) in &input.edits {
        let name = name.text().to_ascii_lowercase();
        match value {
            Some(value) => edits.set(&name, value.text()),
            None => edits.remove(&name),
        }
    }
    let judge = |identity: &Identity, headers: &Headers| {
        let forwarded = Forwarded {
            headers,
            edits: &edits,
        };
        authorize(&config.top_level.policies, identity, forwarded, &peer)
    };
    let decision = judge(&identity, &request(&method, &input.path, &host, &extra));
    if config.top_level.policies.is_empty() {
        assert!(decision.is_ok());
    }
    // Rules see the normalized path, and a path not in normal form also as sent:
    // what is allowed is allowed in normal form too.
    let normal = path::normalized(&input.path);
    let again = judge(&identity, &request(&method, &normal, &host, &extra));
    if !edits.set.iter().any(|(name, _)| name == ":path") && decision.is_ok() {
        assert!(again.is_ok(), "{:?} vs {normal:?}", input.path);
    }
    // An authority that parses is exactly its host and port.
    if let Some(parsed) = authority::parse(&host) {
        let port = parsed.port.map(|port| format!(":{port}")).unwrap_or_default();
        assert_eq!(format!("{}{port}", parsed.host), host);
    }
    // No identity at all: still no panic.
    let empty = Map::new();
    let anonymous = Identity {
        claims: &empty,
        space_delimited: &[],
    };
    let _ = judge(&anonymous, &request(&method, &input.path, &host, &extra));
});
