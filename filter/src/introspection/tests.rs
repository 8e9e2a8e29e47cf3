use super::decision::{judge_reply, still_valid, Answer};
use super::state::{Next, State, DEFAULT_CACHE_LIMITS, FIRST_BACKOFF_MS, MAX_IN_FLIGHT};
use super::*;
use crate::cache::Limits;
use crate::config::Config;
use crate::response::AuthError;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://idp.test";

fn config(extra: &str) -> Config {
    let text = format!(
        r#"{{"introspection":[{{"issuer":"{ISSUER}",
            "introspectionEndpoint":"https://idp.test/introspect",
            "clientId":"gw","clientSecret":"s","audiences":["api"]{extra}}}]}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

fn rule() -> IntrospectionRule {
    config("").introspection.remove(0)
}

fn judge(body: &str) -> Answer {
    judge_reply(&rule(), Some(200), body.as_bytes(), NOW, 60)
}

fn inactive(answer: &Answer) -> Option<AuthError> {
    match answer {
        Answer::Inactive(error, _) => Some(*error),
        _ => None,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn replies_become_identities_or_errors() {
    let exp = NOW + 100;
    let cases: &[(&str, Result<(), Option<AuthError>>)] = &[
        (r#"{"active":true,"aud":"api","sub":"u"}"#, Ok(())),
        (
            r#"{"active":true,"aud":["x","api"],"iss":"https://idp.test"}"#,
            Ok(()),
        ),
        (
            &format!(r#"{{"active":true,"aud":"api","exp":{exp},"iat":{NOW},"nbf":{NOW}}}"#),
            Ok(()),
        ),
        (r#"{"active":false}"#, Err(Some(AuthError::Inactive))),
        (
            r#"{"active":false,"sub":"u"}"#,
            Err(Some(AuthError::Inactive)),
        ),
        (
            r#"{"active":true,"aud":"other"}"#,
            Err(Some(AuthError::AudienceNotAllowed)),
        ),
        (
            r#"{"active":true}"#,
            Err(Some(AuthError::AudienceNotAllowed)),
        ),
        (
            r#"{"active":true,"aud":"api","iss":"https://evil.test"}"#,
            Err(Some(AuthError::UnknownIssuer)),
        ),
        (
            r#"{"active":true,"aud":"api","iss":7}"#,
            Err(Some(AuthError::UnknownIssuer)),
        ),
        (
            &format!(r#"{{"active":true,"aud":"api","exp":{}}}"#, NOW - 61),
            Err(Some(AuthError::Expired)),
        ),
        (
            &format!(r#"{{"active":true,"aud":"api","nbf":{}}}"#, NOW + 61),
            Err(Some(AuthError::NotYetValid)),
        ),
        (
            &format!(r#"{{"active":true,"aud":"api","iat":{}}}"#, NOW + 61),
            Err(Some(AuthError::NotYetValid)),
        ),
        (
            r#"{"active":true,"aud":"api","exp":"soon"}"#,
            Err(Some(AuthError::VerificationFails)),
        ),
        // No usable answer: fail closed, never cached as a verdict.
        (r#"{"active":"true"}"#, Err(None)),
        (r#"{"sub":"u"}"#, Err(None)),
        (r#"[true]"#, Err(None)),
        (r#"not json"#, Err(None)),
        (r#"{"active":true,"active":false}"#, Err(None)),
        (r#"{"active":true,"aud":"api","scope":["a"]}"#, Err(None)),
    ];
    for (body, expected) in cases {
        let answer = judge(body);
        match expected {
            Ok(()) => assert!(matches!(answer, Answer::Active(_)), "{body}: {answer:?}"),
            Err(Some(error)) => assert_eq!(inactive(&answer), Some(*error), "{body}: {answer:?}"),
            Err(None) => assert!(matches!(answer, Answer::Failed(_)), "{body}: {answer:?}"),
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn an_identity_has_the_rules_issuer_and_the_replys_members() {
    let Answer::Active(claims) =
        judge(r#"{"active":true,"aud":"api","sub":"u","scope":"a b","client_id":"c"}"#)
    else {
        panic!("not active")
    };
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "u");
    assert_eq!(claims["scope"], "a b");
    assert_eq!(claims["client_id"], "c");
}

#[wasm_bindgen_test(unsupported = test)]
fn endpoint_failures_fail_closed() {
    let rule = rule();
    let ok = br#"{"active":true,"aud":"api"}"#;
    for status in [None, Some(500), Some(503), Some(401), Some(302)] {
        let answer = judge_reply(&rule, status, ok, NOW, 60);
        assert!(matches!(answer, Answer::Failed(_)), "{status:?}");
    }
    let huge = format!(r#"{{"active":true,"x":"{}"}}"#, "a".repeat(MAX_REPLY_BYTES));
    assert!(matches!(
        judge_reply(&rule, Some(200), huge.as_bytes(), NOW, 60),
        Answer::Failed(_)
    ));
}

/// A reply of exactly the bound is read; one byte more is not.
#[wasm_bindgen_test(unsupported = test)]
fn a_reply_of_the_bound_is_read_one_byte_more_is_not() {
    let rule = rule();
    let mut reply = br#"{"active":true,"aud":"api"}"#.to_vec();
    reply.resize(MAX_REPLY_BYTES, b' ');
    assert!(matches!(
        judge_reply(&rule, Some(200), &reply, NOW, 60),
        Answer::Active(_)
    ));
    reply.push(b' ');
    assert!(matches!(
        judge_reply(&rule, Some(200), &reply, NOW, 60),
        Answer::Failed(_)
    ));
}

/// The documented default bounds of `introspectionCache`.
#[wasm_bindgen_test(unsupported = test)]
fn the_cache_defaults_are_the_documented_ones() {
    assert_eq!(DEFAULT_CACHE_LIMITS.max_entries, 4096);
    assert_eq!(DEFAULT_CACHE_LIMITS.max_bytes, 2_097_152);
}

/// A call whose reply never came stops blocking its token one second after its
/// deadline, not later.
#[wasm_bindgen_test(unsupported = test)]
fn a_lost_call_stops_blocking_its_token_a_second_after_its_deadline() {
    let mut state = state();
    let key = state.key("opaque");
    state.started(key, MS + 5_000);
    assert_eq!(state.in_flight(), 1);
    assert_eq!(state.next(key, 0, MS + 5_999), Next::Wait);
    assert_eq!(state.next(key, 0, MS + 6_000), Next::Call);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_identity_expires_with_its_token() {
    let answer = judge(&format!(
        r#"{{"active":true,"aud":"api","exp":{}}}"#,
        NOW + 10
    ));
    assert!(matches!(
        still_valid(&answer, NOW + 10, 0),
        Answer::Active(_)
    ));
    assert_eq!(
        inactive(&still_valid(&answer, NOW + 11, 0)),
        Some(AuthError::Expired)
    );
}

fn state() -> State {
    State::new(DEFAULT_CACHE_LIMITS, [7; 16], 1)
}

const MS: u64 = NOW * 1000;

#[wasm_bindgen_test(unsupported = test)]
fn one_call_per_token_at_a_time_then_the_answer() {
    let rule = rule();
    let mut state = state();
    let key = state.key("opaque");
    assert_ne!(key, state.key("other"));
    assert_eq!(state.next(key, 0, MS), Next::Call);
    state.started(key, MS + 5_000);
    assert_eq!(state.next(key, 0, MS + 1), Next::Wait);
    assert_eq!(state.next(state.key("other"), 0, MS + 1), Next::Call);
    let answer = judge(r#"{"active":true,"aud":"api"}"#);
    state.complete(key, 0, &rule, &answer, MS + 10);
    assert_eq!(state.in_flight(), 0);
    assert_eq!(state.next(key, 0, MS + 20), Next::Known(answer.clone()));
    // Until now + cacheDuration (60 s by default).
    assert_eq!(state.next(key, 0, MS + 10 + 59_999), Next::Known(answer));
    assert_eq!(state.next(key, 0, MS + 10 + 60_000), Next::Call);
}

#[wasm_bindgen_test(unsupported = test)]
fn positive_answers_last_until_exp_at_most() {
    let rule = rule();
    let mut state = state();
    let key = state.key("t");
    let answer = judge(&format!(
        r#"{{"active":true,"aud":"api","exp":{}}}"#,
        NOW + 5
    ));
    state.complete(key, 0, &rule, &answer, MS);
    assert!(matches!(state.next(key, 0, MS + 4_999), Next::Known(_)));
    assert_eq!(state.next(key, 0, MS + 5_000), Next::Call);
}

#[wasm_bindgen_test(unsupported = test)]
fn negative_answers_last_the_negative_duration() {
    let rule = config(r#","negativeCacheDuration":"2s""#)
        .introspection
        .remove(0);
    let mut state = state();
    let key = state.key("t");
    let answer = judge(r#"{"active":false}"#);
    state.complete(key, 0, &rule, &answer, MS);
    assert_eq!(state.next(key, 0, MS + 1_999), Next::Known(answer));
    assert_eq!(state.next(key, 0, MS + 2_000), Next::Call);
    // A zero duration caches nothing.
    let rule = config(r#","negativeCacheDuration":"0s","cacheDuration":"0s""#)
        .introspection
        .remove(0);
    state.complete(key, 0, &rule, &judge(r#"{"active":false}"#), MS);
    state.complete(
        state.key("u"),
        0,
        &rule,
        &judge(r#"{"active":true,"aud":"api"}"#),
        MS,
    );
    assert_eq!(state.next(key, 0, MS), Next::Call);
    assert_eq!(state.next(state.key("u"), 0, MS), Next::Call);
}

#[wasm_bindgen_test(unsupported = test)]
fn failures_back_off_doubling_and_success_ends_it() {
    let rule = rule();
    let mut state = state();
    let failed = Answer::Failed("down".into());
    let key = state.key("t");
    state.complete(key, 0, &rule, &failed, MS);
    assert_eq!(
        state.next(key, 0, MS + FIRST_BACKOFF_MS - 1),
        Next::BackingOff
    );
    assert_eq!(state.next(key, 0, MS + FIRST_BACKOFF_MS), Next::Call);
    state.complete(key, 0, &rule, &failed, MS);
    assert_eq!(
        state.next(key, 0, MS + 2 * FIRST_BACKOFF_MS - 1),
        Next::BackingOff
    );
    for _ in 0..40 {
        state.complete(key, 0, &rule, &failed, MS);
    }
    assert_eq!(state.next(key, 0, MS + 30_000), Next::Call, "capped");
    let ok = judge(r#"{"active":true,"aud":"api"}"#);
    state.complete(key, 0, &rule, &ok, MS);
    assert_eq!(state.next(state.key("u"), 0, MS), Next::Call);
}

#[wasm_bindgen_test(unsupported = test)]
fn calls_in_flight_are_bounded_and_released() {
    let mut state = state();
    for index in 0..MAX_IN_FLIGHT {
        let key = state.key(&format!("t{index}"));
        assert_eq!(state.next(key, 0, MS), Next::Call);
        state.started(key, MS + 1_000);
    }
    let extra = state.key("extra");
    assert_eq!(state.next(extra, 0, MS), Next::Busy);
    state.abandon(state.key("t0"));
    assert_eq!(state.next(extra, 0, MS), Next::Call);
    // A call whose reply never came stops counting after its timeout and a grace.
    assert_eq!(state.next(extra, 0, MS + 2_001), Next::Call);
    assert_eq!(state.in_flight(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_cache_is_bounded() {
    let rule = rule();
    let limits = Limits {
        max_entries: 3,
        max_bytes: 64 * 1024,
    };
    let mut state = State::new(limits, [1; 16], 1);
    for index in 0..10 {
        let key = state.key(&format!("t{index}"));
        state.complete(key, 0, &rule, &judge(r#"{"active":true,"aud":"api"}"#), MS);
    }
    assert_eq!(state.cache_len(), 3);
    assert!(state.cache_bytes() <= 64 * 1024);
}

/// Large answers are counted by their size, whatever shape holds the bytes (a
/// string, in a list, in an object), so the byte bound holds fewer of them.
#[wasm_bindgen_test(unsupported = test)]
fn answers_are_counted_by_their_size_in_every_shape() {
    let rule = rule();
    let big = "a".repeat(3_000);
    for member in [
        format!(r#""name":"{big}""#),
        format!(r#""groups":["{big}"]"#),
        format!(r#""extra":{{"k":"{big}"}}"#),
    ] {
        // An entry may take an eighth of the bound at most (crate::cache).
        let limits = Limits {
            max_entries: 100,
            max_bytes: 160_000,
        };
        let mut state = State::new(limits, [1; 16], 1);
        let answer = judge(&format!(r#"{{"active":true,"aud":"api",{member}}}"#));
        state.complete(state.key("t0"), 0, &rule, &answer, MS);
        let one = state.cache_bytes();
        assert!((6_000..20_000).contains(&one), "{member}: {one}");
        for index in 1..40 {
            let key = state.key(&format!("t{index}"));
            state.complete(key, 0, &rule, &answer, MS);
        }
        assert!(
            state.cache_len() <= 160_000 / one,
            "{member}: {}",
            state.cache_len()
        );
        assert!(state.cache_bytes() <= 160_000);
    }
}

fn found(token: &str, location: usize) -> crate::extractor::Found {
    crate::extractor::Found {
        token: token.into(),
        location,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn jwts_of_jwt_rule_issuers_go_there_and_every_other_token_to_introspection() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let jws = |iss: &str| {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{iss}"}}"#));
        format!("{header}.{payload}.c2ln")
    };
    let text = r#"{"jwtRules":[{"issuer":"https://jwt.test","jwksUri":"https://jwt.test/jwks"}],
        "introspection":[
          {"issuer":"https://a.test","introspectionEndpoint":"https://a.test/i","clientId":"c","clientSecret":"s"},
          {"issuer":"https://b.test","introspectionEndpoint":"https://b.test/i","clientId":"c","clientSecret":"s"}]}"#;
    let config = Config::parse(text.as_bytes()).unwrap();
    check_routes(&config, &jws);
}

/// `route` with an empty verified-token cache.
fn uncached<'f>(config: &Config, found: &'f [Found]) -> Option<(usize, &'f Found)> {
    route(config, found, &mut |_| false)
}

fn check_routes(config: &Config, jws: &dyn Fn(&str) -> String) {
    // `Authorization: Bearer` is location 0 for every rule.
    assert_eq!(
        uncached(config, &[found(&jws("https://jwt.test"), 0)]),
        None
    );
    let opaque = [found("opaque-token", 0)];
    assert_eq!(uncached(config, &opaque).map(|(rule, _)| rule), Some(0));
    let b = [found(&jws("https://b.test"), 0)];
    assert_eq!(uncached(config, &b).map(|(rule, _)| rule), Some(1));
    let unknown = [found(&jws("https://other.test"), 0)];
    assert_eq!(uncached(config, &unknown).map(|(rule, _)| rule), Some(0));
    // `?access_token=` is a jwtRules default, not an introspection one.
    assert_eq!(uncached(config, &[found("opaque", 1)]), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_token_the_verified_token_cache_holds_is_asked_about_first_and_not_parsed() {
    let text = r#"{"jwtRules":[{"issuer":"https://jwt.test","jwksUri":"https://jwt.test/jwks"}],
        "introspection":[{"issuer":"https://a.test","introspectionEndpoint":"https://a.test/i",
          "clientId":"c","clientSecret":"s"}]}"#;
    let config = Config::parse(text.as_bytes()).unwrap();
    // Not a JWS: parsed, it would go to introspection. The cache's word that it is
    // a verified JWT is taken without a parse.
    let items = [found("not-a-jws-but-cached", 0), found("opaque-token", 0)];
    let mut asked = Vec::new();
    let routed = route(&config, &items, &mut |token| {
        asked.push(token.to_string());
        token == "not-a-jws-but-cached"
    });
    assert_eq!(
        routed.map(|(_, item)| item.token.as_str()),
        Some("opaque-token")
    );
    assert_eq!(asked, ["not-a-jws-but-cached", "opaque-token"]);
    // Without introspection rules the cache is not asked at all.
    let jwt_only = Config::parse(
        br#"{"jwtRules":[{"issuer":"https://jwt.test","jwksUri":"https://jwt.test/jwks"}]}"#,
    )
    .unwrap();
    let mut asked_at_all = false;
    assert_eq!(
        route(&jwt_only, &items, &mut |_| {
            asked_at_all = true;
            true
        }),
        None
    );
    assert!(!asked_at_all);
}

#[wasm_bindgen_test(unsupported = test)]
fn its_debug_shows_no_secret() {
    let text = format!("{:?}", rule());
    assert!(!text.contains("\"s\""), "{text}");
    assert!(text.contains("redacted"));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_endpoint_is_read_from_the_issuers_discovery_document() {
    let body = br#"{"issuer":"https://idp.test","introspection_endpoint":"https://idp.test/i"}"#;
    let url = discovered_endpoint(body, ISSUER).unwrap();
    assert_eq!(url.to_string(), "https://idp.test/i");
    assert_eq!(discovered_endpoint(body, "https://other.test"), None);
    assert_eq!(
        discovered_endpoint(br#"{"issuer":"https://idp.test"}"#, ISSUER),
        None
    );
    let bad = br#"{"issuer":"https://idp.test","introspection_endpoint":"ftp://x"}"#;
    assert_eq!(discovered_endpoint(bad, ISSUER), None);
}
