use super::*;
use crate::test_keys::{jwks_of, TestKey};
use crate::token::Algorithm;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW_MS: u64 = 1_700_000_000_000;
const ISSUER: &str = "https://idp.test";

struct NoRemote;

impl KeyLookup for NoRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Failed
    }
}

struct NoEntropy;

impl Entropy for NoEntropy {
    fn fill(&mut self, _bytes: &mut [u8]) -> bool {
        false
    }
}

fn config(key: &TestKey) -> Config {
    let jwks = serde_json::to_string(&jwks_of(&[key])).unwrap();
    let text = format!(
        r#"{{"jwtRules":[{{"issuer":"{ISSUER}","jwks":{jwks},"outputClaimToHeaders":[{{"header":"x-email","claim":"email"}}]}}],
            "publicPaths":["/healthz","/static/*"],
            "authorizationPolicies":[{{"rules":[{{"when":[{{"key":"request.auth.claims[email]","values":["alice@example.test"]}}]}}]}}]}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

fn verdict(config: &Config, path: &str, token: Option<&str>) -> Verdict {
    let mut pairs = vec![
        (":path".to_string(), path.to_string()),
        ("x-email".to_string(), "spoof".to_string()),
    ];
    if let Some(token) = token {
        pairs.push(("authorization".to_string(), format!("Bearer {token}")));
    }
    let headers = Headers::new(pairs);
    let keys = CookieKeys::new(&[]);
    let inputs = Inputs {
        config,
        headers: &headers,
        keys: &NoRemote,
        provider: None,
        cookie_keys: &keys,
        peer: &Peer::default(),
        now_ms: NOW_MS,
    };
    decide(&inputs, &mut VmState::new(config, [3; 16]), &mut NoEntropy)
}

fn token(key: &TestKey, email: &str) -> String {
    key.mint(&json!({"iss": ISSUER, "sub": "u", "email": email, "exp": NOW_MS / 1000 + 60}))
}

#[wasm_bindgen_test(unsupported = test)]
fn public_paths_need_nothing_but_lose_spoofed_identity() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config(&key);
    for path in ["/healthz", "/healthz?probe=1", "/static/app.js"] {
        let Verdict::Allow { edits, .. } = verdict(&config, path, None) else {
            panic!("{path} should be public")
        };
        assert_eq!(edits.remove, ["x-email"]);
        assert!(edits.set.is_empty());
    }
    // A stale token on a public path is not rejected (istio#27432).
    assert!(matches!(
        verdict(&config, "/healthz", Some("stale.bad.token")),
        Verdict::Allow { .. }
    ));
    assert!(matches!(
        verdict(&config, "/healthzz", None),
        Verdict::Deny(_)
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn authenticated_requests_are_then_authorized() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config(&key);
    assert!(matches!(
        verdict(&config, "/app", Some(&token(&key, "alice@example.test"))),
        Verdict::Allow { .. }
    ));
    assert!(matches!(
        verdict(&config, "/app", Some(&token(&key, "bob@example.test"))),
        Verdict::Forbidden { .. }
    ));
    let Verdict::Deny(denial) = verdict(&config, "/app", None) else {
        panic!("unauthenticated stays 401")
    };
    assert_eq!(denial.status, 401);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_forbidden_reply_is_istios() {
    let reply = forbidden_reply();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "RBAC: access denied")
    );
}
