use super::*;
use crate::test_keys::{jwks_of, key_set_of, TestKey};
use crate::token::Algorithm;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000;

/// Each call with a cold cache: most tests are about the first sight of a token.
fn authenticate(config: &Config, headers: &Headers, keys: &dyn KeyLookup, now: u64) -> Decision {
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    super::authenticate(config, headers, keys, &mut cache, now)
}
const ISSUER: &str = "https://issuer.test";

struct NoRemote;

impl KeyLookup for NoRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Failed
    }
}

enum Remote {
    Ready(KeySet, bool),
    Pending,
    Failed,
}

impl KeyLookup for Remote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        match self {
            Remote::Ready(set, may_refetch) => Keys::Ready {
                set,
                may_refetch: *may_refetch,
            },
            Remote::Pending => Keys::Pending,
            Remote::Failed => Keys::Failed,
        }
    }
}

fn inline_config(keys: &[&TestKey], extra_rule_fields: &str) -> Config {
    let jwks = serde_json::to_string(&jwks_of(keys)).unwrap();
    let text =
        format!(r#"{{"jwtRules":[{{"issuer":"{ISSUER}","jwks":{jwks}{extra_rule_fields}}}]}}"#);
    Config::parse(text.as_bytes()).unwrap()
}

fn remote_config() -> Config {
    let text =
        format!(r#"{{"jwtRules":[{{"issuer":"{ISSUER}","jwksUri":"https://issuer.test/jwks"}}]}}"#);
    Config::parse(text.as_bytes()).unwrap()
}

fn claims() -> serde_json::Value {
    json!({"iss": ISSUER, "sub": "alice", "aud": "api", "exp": NOW + 300, "iat": NOW - 10})
}

fn with_bearer(token: &str) -> Headers {
    Headers::new(vec![
        (":authority".into(), "app.test".into()),
        (":path".into(), "/data?x=1".into()),
        ("authorization".into(), format!("Bearer {token}")),
    ])
}

fn denial(decision: Decision) -> Denial {
    match decision {
        Decision::Deny(denial) => denial,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn edits(decision: Decision) -> Edits {
    match decision {
        Decision::Allow { edits, .. } => edits,
        other => panic!("expected allow, got {other:?}"),
    }
}

/// Authenticates `token` once (it must be allowed), so that `cache` holds it.
fn allow_into(config: &Config, token: &str, cache: &mut TokenCache) {
    let _ = edits(super::authenticate(
        config,
        &with_bearer(token),
        &NoRemote,
        cache,
        NOW,
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_valid_token_of_every_algorithm_is_allowed_and_removed() {
    for key in TestKey::all() {
        let config = inline_config(&[&key], "");
        let decision = authenticate(&config, &with_bearer(&key.mint(&claims())), &NoRemote, NOW);
        assert_eq!(
            edits(decision).remove,
            ["authorization"],
            "{:?}",
            key.algorithm
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn each_failure_maps_to_envoys_status_and_text() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], r#","audiences":["api"]"#);
    let mint = |changes: serde_json::Value| {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        key.mint(&claims)
    };
    let other_key = TestKey::new(Algorithm::Es256, "k2");
    let forged = {
        let genuine = key.mint(&claims());
        let other = key.mint(&json!({"sub": "mallory"}));
        let (input, _) = genuine.rsplit_once('.').unwrap();
        let (_, signature) = other.rsplit_once('.').unwrap();
        format!("{input}.{signature}")
    };
    let cases = [
        (mint(json!({"exp": NOW - 61})), 401, "Jwt is expired"),
        (mint(json!({"nbf": NOW + 61})), 401, "Jwt not yet valid"),
        (
            mint(json!({"iss": "https://other.test"})),
            401,
            "Jwt issuer is not configured",
        ),
        (
            mint(json!({"aud": "other"})),
            403,
            "Audiences in Jwt are not allowed",
        ),
        (
            other_key.mint(&claims()),
            401,
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (forged, 401, "Jwt verification fails"),
        (
            "not-a-token".to_string(),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        (
            mint(json!({"exp": "tomorrow"})),
            401,
            "Jwt payload [exp] field is not an integer",
        ),
        (
            mint(json!({"sub": 42})),
            401,
            "Jwt payload [sub] field is not a string",
        ),
    ];
    for (token, status, body) in cases {
        let result = denial(authenticate(&config, &with_bearer(&token), &NoRemote, NOW));
        assert_eq!((result.status, result.body), (status, body), "{token}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_missing_token_is_401_jwt_is_missing() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let headers = Headers::new(vec![(":path".into(), "/".into())]);
    let result = denial(authenticate(&config, &headers, &NoRemote, NOW));
    assert_eq!((result.status, result.body), (401, "Jwt is missing"));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_signature_by_another_key_with_the_same_kid_fails() {
    let real = TestKey::new(Algorithm::Rs256, "shared");
    let impostor = TestKey::other_rsa(Algorithm::Rs256, "shared");
    let config = inline_config(&[&real], "");
    let result = denial(authenticate(
        &config,
        &with_bearer(&impostor.mint(&claims())),
        &NoRemote,
        NOW,
    ));
    assert_eq!(result.body, "Jwt verification fails");
}

#[wasm_bindgen_test(unsupported = test)]
fn remote_keys_wait_fail_or_refetch() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let token = key.mint(&claims());
    let config = remote_config();
    let headers = with_bearer(&token);
    assert!(matches!(
        authenticate(&config, &headers, &Remote::Pending, NOW),
        Decision::Wait(waits) if waits == [KeyWait { source: 0, refetch: false }]
    ));
    let failed = denial(authenticate(&config, &headers, &Remote::Failed, NOW));
    assert_eq!(failed.body, "Jwks remote fetch is failed");
    let rotated = TestKey::new(Algorithm::Es256, "k0");
    let stale = Remote::Ready(key_set_of(&[&rotated]), true);
    assert!(matches!(
        authenticate(&config, &headers, &stale, NOW),
        Decision::Wait(waits) if waits == [KeyWait { source: 0, refetch: true }]
    ));
    let stale_recent = Remote::Ready(key_set_of(&[&rotated]), false);
    let result = denial(authenticate(&config, &headers, &stale_recent, NOW));
    assert_eq!(
        result.body,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    let fresh = Remote::Ready(key_set_of(&[&key]), false);
    assert!(matches!(
        authenticate(&config, &headers, &fresh, NOW),
        Decision::Allow { .. }
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn output_headers_replace_client_copies() {
    let key = TestKey::new(Algorithm::EdDsa, "k1");
    let config = inline_config(
        &[&key],
        r#","outputPayloadToHeader":"x-payload","outputClaimToHeaders":[{"header":"x-sub","claim":"sub"},{"header":"x-email","claim":"email"},{"header":"x-level","claim":"org.level"}]"#,
    );
    let mut claims = claims();
    claims["org"] = json!({"level": 3});
    let token = key.mint(&claims);
    let payload = token.split('.').nth(1).unwrap().to_string();
    // The client sent its own x-sub and x-email; only headers it sent are removed.
    let request = Headers::of(&[
        (":authority", "app.test"),
        (":path", "/data"),
        ("x-sub", "mallory"),
        ("authorization", &format!("Bearer {token}")),
        ("x-email", "mallory@evil.test"),
    ]);
    let result = edits(authenticate(&config, &request, &NoRemote, NOW));
    assert_eq!(result.remove, ["x-sub", "x-email", "authorization"]);
    assert_eq!(
        result.set,
        [
            ("x-payload".to_string(), payload),
            ("x-sub".to_string(), "alice".to_string()),
            ("x-level".to_string(), "3".to_string())
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn claim_values_that_could_inject_headers_are_dropped() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(
        &[&key],
        r#","outputClaimToHeaders":[{"header":"x-sub","claim":"sub"}]"#,
    );
    let mut claims = claims();
    claims["sub"] = json!("alice\r\nx-admin: true");
    let token = key.mint(&claims);
    let request = Headers::of(&[
        (":path", "/"),
        ("authorization", &format!("Bearer {token}")),
        ("x-sub", "mallory"),
    ]);
    let result = edits(authenticate(&config, &request, &NoRemote, NOW));
    assert!(result.set.is_empty());
    assert!(result.remove.contains(&"x-sub".to_string()));
}

#[wasm_bindgen_test(unsupported = test)]
fn forwarding_keeps_the_token() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], r#","forwardOriginalToken":true"#);
    let result = edits(authenticate(
        &config,
        &with_bearer(&key.mint(&claims())),
        &NoRemote,
        NOW,
    ));
    assert!(result.remove.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn any_invalid_token_denies_even_beside_a_valid_one() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let valid = key.mint(&claims());
    let headers = Headers::new(vec![
        (":path".into(), "/?access_token=garbage".into()),
        ("authorization".into(), format!("Bearer {valid}")),
    ]);
    assert_eq!(
        denial(authenticate(&config, &headers, &NoRemote, NOW)).body,
        "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn too_many_tokens_are_refused_without_verifying() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let valid = key.mint(&claims());
    let headers = Headers::new(
        std::iter::repeat_n(("authorization".to_string(), format!("Bearer {valid}")), 10).collect(),
    );
    assert_eq!(
        denial(authenticate(&config, &headers, &NoRemote, NOW)).body,
        "Jwt verification fails"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn an_issuer_is_accepted_only_in_its_own_locations() {
    let a = TestKey::new(Algorithm::Es256, "a");
    let jwks = serde_json::to_string(&jwks_of(&[&a])).unwrap();
    let text = format!(
        r#"{{"jwtRules":[
            {{"issuer":"{ISSUER}","jwks":{jwks},"fromHeaders":[{{"name":"x-a"}}]}},
            {{"issuer":"https://b.test","jwks":{jwks},"fromHeaders":[{{"name":"x-b"}}]}}]}}"#
    );
    let config = Config::parse(text.as_bytes()).unwrap();
    let token = a.mint(&claims());
    let right = Headers::new(vec![("x-a".into(), token.clone())]);
    assert!(matches!(
        authenticate(&config, &right, &NoRemote, NOW),
        Decision::Allow { .. }
    ));
    let wrong = Headers::new(vec![("x-b".into(), token)]);
    assert_eq!(
        denial(authenticate(&config, &wrong, &NoRemote, NOW)).body,
        "Jwt issuer is not configured"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_verified_token_is_served_from_the_cache_with_the_same_result() {
    let key = TestKey::new(Algorithm::Rs256, "k1");
    let config = inline_config(
        &[&key],
        r#","outputClaimToHeaders":[{"header":"x-sub","claim":"sub"}]"#,
    );
    let headers = with_bearer(&key.mint(&claims()));
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    let first = edits(super::authenticate(
        &config, &headers, &NoRemote, &mut cache, NOW,
    ));
    let second = edits(super::authenticate(
        &config,
        &headers,
        &NoRemote,
        &mut cache,
        NOW + 1,
    ));
    assert_eq!(first, second);
    assert_eq!((cache.misses, cache.hits, cache.len()), (1, 1, 1));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_cache_says_which_tokens_are_verified_jwts_without_counting() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let token = key.mint(&claims());
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    assert!(!super::is_verified_jwt(&config, &mut cache, &token, NOW));
    allow_into(&config, &token, &mut cache);
    assert!(super::is_verified_jwt(&config, &mut cache, &token, NOW));
    assert!(!super::is_verified_jwt(&config, &mut cache, "other", NOW));
    assert_eq!((cache.misses, cache.hits), (1, 0));
    // An entry past its expiry is not a verified token any more.
    assert!(!super::is_verified_jwt(
        &config,
        &mut cache,
        &token,
        NOW + 3600
    ));
    // Under a configuration without that rule, not one of its JWTs.
    let mut fresh = TokenCache::new(config.token_cache, [1; 16]);
    allow_into(&config, &token, &mut fresh);
    let mut no_rules = config.clone();
    no_rules.rules.clear();
    assert!(!super::is_verified_jwt(&no_rules, &mut fresh, &token, NOW));
    // A cache that is off holds nothing.
    let mut off = TokenCache::new(
        crate::cache::Limits {
            max_entries: 0,
            max_bytes: 1 << 20,
        },
        [1; 16],
    );
    allow_into(&config, &token, &mut off);
    assert!(!super::is_verified_jwt(&config, &mut off, &token, NOW));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_token_still_expires() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let headers = with_bearer(&key.mint(&claims()));
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    let _ = edits(super::authenticate(
        &config, &headers, &NoRemote, &mut cache, NOW,
    ));
    let skew = config.clock_skew_seconds;
    let last_second = NOW + 300 + skew;
    let _ = edits(super::authenticate(
        &config,
        &headers,
        &NoRemote,
        &mut cache,
        last_second,
    ));
    let late = super::authenticate(&config, &headers, &NoRemote, &mut cache, last_second + 1);
    assert_eq!(denial(late).body, "Jwt is expired");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_new_key_set_means_verifying_again() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = remote_config();
    let headers = with_bearer(&key.mint(&claims()));
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    let with_key = Remote::Ready(key_set_of(&[&key]), false);
    let allowed = super::authenticate(&config, &headers, &with_key, &mut cache, NOW);
    assert!(matches!(allowed, Decision::Allow { .. }));
    // The IdP withdrew the key: the cached verdict must not outlive it.
    let withdrawn = Remote::Ready(key_set_of(&[&TestKey::new(Algorithm::Es256, "k2")]), false);
    let denied = denial(super::authenticate(
        &config, &headers, &withdrawn, &mut cache, NOW,
    ));
    assert_eq!(
        denied.body,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    assert_eq!(cache.hits, 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_token_in_a_location_its_issuer_does_not_accept_is_denied() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let jwks = serde_json::to_string(&jwks_of(&[&key])).unwrap();
    let text = format!(
        r#"{{"jwtRules":[{{"issuer":"{ISSUER}","jwks":{jwks}}},
            {{"issuer":"https://other.test","jwks":{jwks},"fromParams":["token"]}}]}}"#
    );
    let config = Config::parse(text.as_bytes()).unwrap();
    let token = key.mint(&claims());
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    allow_into(&config, &token, &mut cache);
    let in_query = Headers::new(vec![(":path".into(), format!("/data?token={token}"))]);
    let result = denial(super::authenticate(
        &config, &in_query, &NoRemote, &mut cache, NOW,
    ));
    assert_eq!(result.body, "Jwt issuer is not configured");
}

#[wasm_bindgen_test(unsupported = test)]
fn failures_are_never_cached() {
    let key = TestKey::new(Algorithm::Rs256, "k1");
    let impostor = TestKey::other_rsa(Algorithm::Rs256, "k1");
    let config = inline_config(&[&key], r#","audiences":["api"]"#);
    let mut cache = TokenCache::new(config.token_cache, [1; 16]);
    let bad = [
        impostor.mint(&claims()),
        key.mint(&json!({"iss": ISSUER, "aud": "other", "exp": NOW + 300})),
        key.mint(&json!({"iss": ISSUER, "aud": "api", "exp": NOW - 300})),
    ];
    for token in bad {
        let _ = denial(super::authenticate(
            &config,
            &with_bearer(&token),
            &NoRemote,
            &mut cache,
            NOW,
        ));
    }
    assert!(cache.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn the_cache_can_be_turned_off() {
    let key = TestKey::new(Algorithm::Es256, "k1");
    let config = inline_config(&[&key], "");
    let headers = with_bearer(&key.mint(&claims()));
    let mut cache = TokenCache::new(
        crate::cache::Limits {
            max_entries: 0,
            max_bytes: 1 << 20,
        },
        [1; 16],
    );
    for _ in 0..2 {
        let _ = edits(super::authenticate(
            &config, &headers, &NoRemote, &mut cache, NOW,
        ));
    }
    assert_eq!((cache.hits, cache.len()), (0, 0));
}

#[wasm_bindgen_test(unsupported = test)]
fn ed25519_signature_of_the_wrong_length_has_envoys_text() {
    let key = TestKey::new(Algorithm::EdDsa, "ed");
    let config = inline_config(&[&key], "");
    let token = key.mint(&claims());
    let (input, signature) = token.rsplit_once('.').unwrap();
    // 64 bytes are 86 base64url characters; 84 decode to 63 bytes.
    let short = format!("{input}.{}", &signature[..84]);
    let result = denial(authenticate(&config, &with_bearer(&short), &NoRemote, NOW));
    assert_eq!(result.body, "Jwt ED25519 signature is wrong length");
}
