use super::*;
use crate::http_url::HttpUrl;
use crate::test_keys::{key_set_of, TestKey};
use crate::token::Algorithm;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

/// Each call with a cold session cache and no refresh in flight: most tests are
/// about one request.
fn begin(ctx: &Context, entropy: &mut dyn HostCrypto) -> Step {
    let mut sessions = SessionCache::new(ctx.config.session_cache, [1; 16]);
    super::begin(
        ctx,
        &mut sessions,
        &mut RefreshMemo::default(),
        &mut CallbackMemo::new([2; 16]),
        entropy,
    )
}

/// `finish_refresh` for a refresh nobody else waits on.
fn finish(
    ctx: &Context,
    old: Session,
    status: Option<u32>,
    body: &[u8],
    keys: &KeySet,
    entropy: &mut dyn HostCrypto,
) -> (Step, Option<String>) {
    let mut memo = RefreshMemo::default();
    finish_refresh(ctx, old, 1, &mut memo, status, body, keys, entropy)
}

const NOW: u64 = 1_700_000_000;
/// Long after a session's tokens expired.
const LATER: u64 = NOW + 1_000;
const ISSUER: &str = "http://127.0.0.1:9000";

struct Counter(u8);

impl HostCrypto for Counter {
    fn fill(&mut self, bytes: &mut [u8]) -> bool {
        for byte in bytes {
            self.0 = self.0.wrapping_add(1);
            *byte = self.0;
        }
        true
    }
}

fn config() -> Config {
    let text = format!(
        r#"{{"oidc":{{"issuer":"{ISSUER}","clientId":"app","clientSecret":"s","postLogoutRedirectUri":"/bye",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
            "outputClaimToHeaders":[{{"header":"x-email","claim":"email"}}],
            "forwardToken":{{"token":"id_token","header":"x-id-token"}}}},
          "jwtRules":[{{"issuer":"{ISSUER}"}}]}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

fn provider() -> Provider {
    let url = |path: &str| HttpUrl::parse(&format!("{ISSUER}{path}")).unwrap();
    Provider {
        issuer: ISSUER.into(),
        authorization_endpoint: url("/auth"),
        token_endpoint: url("/token"),
        jwks_uri: url("/jwks"),
        end_session_endpoint: Some(url("/session/end")),
        callback_iss_required: false,
    }
}

struct Fixture {
    config: Config,
    provider: Provider,
    keys: CookieKeys,
    idp_key: TestKey,
}

impl Fixture {
    fn new() -> Self {
        Self::of(config())
    }

    fn of(config: Config) -> Self {
        let keys = CookieKeys::new(&config.top_level.oidc.as_ref().unwrap().cookie_secrets);
        Self {
            config,
            provider: provider(),
            keys,
            idp_key: TestKey::new(Algorithm::Es256, "idp"),
        }
    }

    fn context<'a>(&'a self, headers: &'a Headers, now: u64) -> Context<'a> {
        Context {
            config: &self.config,
            oidc: self.config.top_level.oidc.as_ref().unwrap(),
            provider: Some(&self.provider),
            cookie_keys: &self.keys,
            headers,
            now,
            now_ms: now * 1000,
            allow_missing: self.config.top_level.allow_missing,
            bearer_token_present: !crate::extractor::find_tokens(&self.config, headers).is_empty(),
            final_attempt: false,
        }
    }

    /// The login `pending` finished by the token endpoint's 200 `reply`, whose ID
    /// token this IdP signed.
    fn finish(&self, ctx: &Context, pending: &PendingLogin, reply: &Value) -> LocalReply {
        finish_login(
            ctx,
            pending,
            Some(200),
            reply.to_string().as_bytes(),
            &key_set_of(&[&self.idp_key]),
            &mut Counter(50),
        )
        .unwrap()
    }

    fn id_token(&self, nonce: &str, extra: Value) -> String {
        let mut claims = json!({"iss": ISSUER, "aud": "app", "sub": "alice", "email": "alice@example.test",
            "nonce": nonce, "iat": NOW, "exp": NOW + 300});
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        self.idp_key.mint(&claims)
    }

    /// A full login: start, callback, token reply. Returns the cookie header the browser then sends.
    fn logged_in_cookie(&self, extra_claims: Value, refresh_token: Option<&str>) -> String {
        let start = begin(
            &self.context(&browser("/app?x=1", ""), NOW),
            &mut Counter(0),
        );
        let Step::LoginRedirect(redirect) = start else {
            panic!("expected a login redirect")
        };
        let state = login_parameter(&redirect, "state");
        let nonce = login_parameter(&redirect, "nonce");
        let login_cookie = cookie_pairs(&redirect);
        let callback = browser(
            &format!("/oauth2/callback?code=c&state={state}"),
            &login_cookie,
        );
        let ctx = self.context(&callback, NOW + 5);
        let Step::Exchange { pending, .. } = begin(&ctx, &mut Counter(0)) else {
            panic!("expected an exchange")
        };
        let reply = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
            "id_token": self.id_token(&nonce, extra_claims), "refresh_token": refresh_token});
        let done = self.finish(&ctx, &pending, &reply);
        assert_eq!(done.status, 302);
        assert_eq!(header(&done, "location"), "/app?x=1");
        cookie_pairs(&done)
    }
}

/// A parameter of the authorization request a login redirect points to.
fn login_parameter(redirect: &LocalReply, name: &str) -> String {
    let location = HttpUrl::parse(header(redirect, "location")).unwrap();
    let value = location.query_pairs().find(|(k, _)| k == name).unwrap().1;
    value.into_owned()
}

fn browser(path: &str, cookie: &str) -> Headers {
    let mut pairs = vec![
        (":method".to_string(), "GET".to_string()),
        (":scheme".to_string(), "http".to_string()),
        (":authority".to_string(), "app.test".to_string()),
        (":path".to_string(), path.to_string()),
        ("accept".to_string(), "text/html".to_string()),
        ("x-email".to_string(), "spoofed@evil.test".to_string()),
    ];
    if !cookie.is_empty() {
        pairs.push(("cookie".to_string(), cookie.to_string()));
    }
    Headers::new(pairs)
}

fn api(path: &str, cookie: &str) -> Headers {
    Headers::new(vec![
        (":method".to_string(), "GET".to_string()),
        (":authority".to_string(), "app.test".to_string()),
        (":path".to_string(), path.to_string()),
        ("accept".to_string(), "application/json".to_string()),
        ("cookie".to_string(), cookie.to_string()),
    ])
}

fn header<'a>(reply: &'a LocalReply, name: &str) -> &'a str {
    reply
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

/// The cookies a browser would send back after this reply (expired ones dropped).
fn cookie_pairs(reply: &LocalReply) -> String {
    reply
        .headers
        .iter()
        .filter(|(k, v)| k == "set-cookie" && !v.contains("Max-Age=0"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[wasm_bindgen_test(unsupported = test)]
fn navigation_without_session_is_sent_to_login_and_api_gets_401() {
    let fixture = Fixture::new();
    let Step::LoginRedirect(reply) =
        begin(&fixture.context(&browser("/", ""), NOW), &mut Counter(0))
    else {
        panic!()
    };
    assert_eq!(reply.status, 302);
    assert!(header(&reply, "location").starts_with("http://127.0.0.1:9000/auth?response_type=code"));
    let Step::Reply(reply) = begin(&fixture.context(&api("/", ""), NOW), &mut Counter(0)) else {
        panic!()
    };
    assert_eq!((reply.status, reply.body.as_str()), (401, "Jwt is missing"));
    assert!(header(&reply, "www-authenticate").starts_with("Bearer realm="));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_bearer_token_is_judged_by_the_token_rules() {
    let fixture = Fixture::new();
    let mut pairs = vec![(":path".to_string(), "/".to_string())];
    pairs.push(("authorization".to_string(), "Bearer a.b.c".to_string()));
    let headers = Headers::new(pairs);
    assert!(matches!(
        begin(&fixture.context(&headers, NOW), &mut Counter(0)),
        Step::Bearer
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_completed_login_lets_the_session_through_with_identity() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), None);
    let request = browser("/app", &format!("theme=dark; {cookie}"));
    let Step::Allow {
        edits,
        session,
        response_cookies,
    } = begin(&fixture.context(&request, NOW + 10), &mut Counter(0))
    else {
        panic!("expected the session to be accepted")
    };
    assert_eq!(session.claims["sub"], "alice");
    assert!(response_cookies.is_empty());
    assert!(
        edits.remove.contains(&"x-email".to_string()),
        "spoofed copy removed"
    );
    assert!(edits
        .set
        .contains(&("x-email".to_string(), "alice@example.test".to_string())));
    assert!(
        edits
            .set
            .contains(&("cookie".to_string(), "theme=dark".to_string())),
        "our cookies stripped"
    );
    assert!(edits
        .set
        .iter()
        .any(|(k, v)| k == "x-id-token" && v.split('.').count() == 3));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_large_id_token_is_stored_in_chunks() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({"blob": "y".repeat(6000)}), None);
    assert!(
        cookie.contains("oidc_session_0=") && cookie.contains("oidc_session_1="),
        "{}",
        &cookie[..80]
    );
    let request = browser("/", &cookie);
    assert!(matches!(
        begin(&fixture.context(&request, NOW + 10), &mut Counter(0)),
        Step::Allow { .. }
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn login_failures_give_clear_pages() {
    let fixture = Fixture::new();
    let headers = browser("/oauth2/callback", "");
    let ctx = fixture.context(&headers, NOW);
    let pending = PendingLogin {
        state: "s".into(),
        nonce: "n".into(),
        verifier: "v".into(),
        return_to: "/".into(),
        expires_at: NOW + 60,
    };
    let keys = key_set_of(&[&fixture.idp_key]);
    let unreachable = finish_login(
        &ctx,
        &pending,
        Some(503),
        b"no healthy upstream",
        &keys,
        &mut Counter(0),
    )
    .unwrap_err();
    assert_eq!(unreachable.0.status, 502);
    let refused = finish_login(
        &ctx,
        &pending,
        Some(400),
        br#"{"error":"invalid_grant"}"#,
        &keys,
        &mut Counter(0),
    )
    .unwrap_err();
    assert_eq!(refused.0.status, 401);
    let wrong_nonce =
        json!({"access_token": "a", "id_token": fixture.id_token("other", json!({}))}).to_string();
    let mismatch = finish_login(
        &ctx,
        &pending,
        Some(200),
        wrong_nonce.as_bytes(),
        &keys,
        &mut Counter(0),
    )
    .unwrap_err();
    assert_eq!(mismatch.0.status, 401);
    assert!(mismatch.1.contains("nonce"));
    let wrong_audience = json!({"access_token": "a", "id_token": fixture.id_token("n", json!({"aud": "other-app"}))}).to_string();
    assert_eq!(
        finish_login(
            &ctx,
            &pending,
            Some(200),
            wrong_audience.as_bytes(),
            &keys,
            &mut Counter(0)
        )
        .unwrap_err()
        .0
        .status,
        401
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn expired_tokens_are_refreshed_or_the_user_logs_in_again() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = browser("/app", &cookie);
    let ctx = fixture.context(&request, later);
    let Step::Refresh {
        request: refresh,
        session,
        ..
    } = begin(&ctx, &mut Counter(0))
    else {
        panic!("expected a refresh")
    };
    assert!(String::from_utf8(refresh.body.clone().unwrap())
        .unwrap()
        .contains("refresh_token=rt-1"));
    let keys = key_set_of(&[&fixture.idp_key]);
    let renewed_token = fixture.idp_key.mint(
        &json!({"iss": ISSUER, "aud": "app", "sub": "alice", "iat": later, "exp": later + 300}),
    );
    let reply = json!({"access_token": "at2", "id_token": renewed_token, "refresh_token": "rt-2", "expires_in": 300}).to_string();
    let (step, failure) = finish(
        &ctx,
        session.clone(),
        Some(200),
        reply.as_bytes(),
        &keys,
        &mut Counter(9),
    );
    assert_eq!(failure, None);
    let Step::Allow {
        response_cookies, ..
    } = step
    else {
        panic!("expected the refreshed session")
    };
    assert!(response_cookies
        .iter()
        .any(|c| c.starts_with("oidc_session=")));

    let (step, failure) = finish(
        &ctx,
        session.clone(),
        Some(400),
        br#"{"error":"invalid_grant"}"#,
        &keys,
        &mut Counter(9),
    );
    assert!(failure.unwrap().contains("invalid_grant"));
    let Step::LoginRedirect(reply) = step else {
        panic!()
    };
    assert_eq!(reply.status, 302, "a browser logs in again");
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| k == "set-cookie" && v.starts_with("oidc_session=;")));

    let api_request = api("/data", &cookie);
    let api_ctx = fixture.context(&api_request, later);
    let (step, _) = finish(&api_ctx, session, Some(400), b"{}", &keys, &mut Counter(9));
    let Step::Reply(reply) = step else { panic!() };
    assert_eq!(reply.status, 401, "an API caller gets 401");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_unreachable_idp_does_not_end_the_session() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let keys = key_set_of(&[&fixture.idp_key]);
    let outages: [(Option<u32>, &[u8]); 5] = [
        (None, b""),
        (Some(503), b"upstream connect error"),
        (Some(500), br#"{"error":"server_error"}"#),
        (Some(200), b"<html>maintenance</html>"),
        (Some(200), br#"{"access_token":"#),
    ];
    for (status, body) in outages {
        for request in [browser("/app", &cookie), api("/data", &cookie)] {
            let ctx = fixture.context(&request, later);
            let (session, _) = refresh_of(begin(&ctx, &mut Counter(0)));
            let (step, failure) = finish(&ctx, session, status, body, &keys, &mut Counter(9));
            assert!(failure.is_some(), "{status:?}");
            let (Step::LoginRedirect(reply) | Step::Reply(reply)) = step else {
                panic!("expected a login redirect or a 401")
            };
            assert!(matches!(reply.status, 302 | 401), "{status:?}");
            assert!(
                !reply
                    .headers
                    .iter()
                    .any(|(k, v)| k == "set-cookie" && v.starts_with("oidc_session=")),
                "{status:?}: the session cookie is kept for a refresh once the IdP is back"
            );
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refreshed_id_token_from_rotated_keys_does_not_end_the_session() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = browser("/app", &cookie);
    let ctx = fixture.context(&request, later);
    let (session, _) = refresh_of(begin(&ctx, &mut Counter(0)));
    let rotated = TestKey::new(Algorithm::Es256, "idp-next");
    let claims =
        json!({"iss": ISSUER, "aud": "app", "sub": "alice", "iat": later, "exp": later + 300});
    let signed = |key: &TestKey| {
        json!({"access_token": "at2", "id_token": key.mint(&claims), "refresh_token": "rt-2"})
            .to_string()
    };
    let old_keys = key_set_of(&[&fixture.idp_key]);
    let refresh = |body: String, clear: bool| {
        let (step, failure) = finish(
            &ctx,
            session.clone(),
            Some(200),
            body.as_bytes(),
            &old_keys,
            &mut Counter(9),
        );
        let Step::LoginRedirect(reply) = step else {
            panic!("expected a login redirect")
        };
        let cleared = reply
            .headers
            .iter()
            .any(|(k, v)| k == "set-cookie" && v.starts_with("oidc_session=;"));
        assert_eq!(cleared, clear, "{failure:?}");
        failure
    };
    // Our keys are stale: the session stays for a refresh once the new keys are in.
    assert_eq!(
        refresh(signed(&rotated), false).as_deref(),
        Some(id_token::UNKNOWN_KEY)
    );
    // Any other validation failure ends it.
    let forged = json!({"access_token": "at2", "id_token": "not.a.jwt"}).to_string();
    assert!(refresh(forged, true).is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn logout_clears_cookies_and_ends_the_idp_session() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), None);
    let request = with(
        browser("/oauth2/logout", &cookie),
        "sec-fetch-site",
        "same-origin",
    );
    let Step::Logout(reply) = begin(&fixture.context(&request, NOW + 10), &mut Counter(0)) else {
        panic!()
    };
    assert_eq!(reply.status, 302);
    let location = HttpUrl::parse(header(&reply, "location")).unwrap();
    assert_eq!(location.path(), "/session/end");
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(query
        .iter()
        .any(|(k, v)| k == "id_token_hint" && v.split('.').count() == 3));
    assert!(query.contains(&(
        "post_logout_redirect_uri".into(),
        "http://app.test/bye".into()
    )));
    assert!(reply.headers.iter().any(|(k, v)| k == "set-cookie"
        && v.starts_with("oidc_session=;")
        && v.contains("Max-Age=0")));
}

#[wasm_bindgen_test(unsupported = test)]
fn without_provider_metadata_login_steps_wait() {
    let fixture = Fixture::new();
    let headers = browser("/", "");
    let mut ctx = fixture.context(&headers, NOW);
    ctx.provider = None;
    assert!(matches!(begin(&ctx, &mut Counter(0)), Step::NeedProvider));
}

struct Broken;

impl HostCrypto for Broken {
    fn fill(&mut self, _bytes: &mut [u8]) -> bool {
        false
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn no_randomness_no_login() {
    let fixture = Fixture::new();
    let step = begin(&fixture.context(&browser("/", ""), NOW), &mut Broken);
    let Step::Reply(reply) = step else { panic!() };
    assert_eq!(reply.status, 500);
}

#[wasm_bindgen_test(unsupported = test)]
fn error_pages_escape_their_message() {
    let page = error_page(400, "<script>");
    assert!(page.body.contains("&lt;script&gt;") && !page.body.contains("<script>"));
}

/// The session and memo key of a step that must be a refresh.
fn refresh_of(step: Step) -> (Session, Key) {
    let Step::Refresh { session, key, .. } = step else {
        panic!("expected a refresh, got {step:?}")
    };
    (session, key)
}

/// One worker's memory across requests of the same expired session.
struct Worker {
    sessions: SessionCache,
    refreshes: RefreshMemo,
    callbacks: CallbackMemo,
}

impl Worker {
    fn new(ctx: &Context) -> Self {
        Self {
            sessions: SessionCache::new(ctx.config.session_cache, [1; 16]),
            refreshes: RefreshMemo::default(),
            callbacks: CallbackMemo::new([2; 16]),
        }
    }

    fn begin(&mut self, ctx: &Context) -> Step {
        super::begin(
            ctx,
            &mut self.sessions,
            &mut self.refreshes,
            &mut self.callbacks,
            &mut Counter(0),
        )
    }

    /// A request that starts its session's refresh, which the IdP answers 503.
    fn refresh_failing(&mut self, ctx: &Context) -> Step {
        let (session, key) = refresh_of(self.begin(ctx));
        let (step, _) = finish_refresh(
            ctx,
            session,
            key,
            &mut self.refreshes,
            Some(503),
            b"",
            &KeySet::default(),
            &mut Counter(9),
        );
        step
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn one_refresh_per_session_at_a_time_and_its_result_serves_the_others() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = browser("/app", &cookie);
    let ctx = fixture.context(&request, later);
    let mut worker = Worker::new(&ctx);
    let (session, key) = refresh_of(worker.begin(&ctx));
    for _ in 0..3 {
        assert!(
            matches!(worker.begin(&ctx), Step::AwaitOtherExchange),
            "the others wait"
        );
    }
    // One that may not wait any longer (no room, or its wait timed out) is answered.
    let mut impatient = fixture.context(&request, later);
    impatient.final_attempt = true;
    assert!(matches!(worker.begin(&impatient), Step::LoginRedirect(_)));
    let keys = key_set_of(&[&fixture.idp_key]);
    let reply =
        json!({"access_token": "at2", "refresh_token": "rt-2", "expires_in": 120}).to_string();
    let (step, failure) = finish_refresh(
        &ctx,
        session,
        key,
        &mut worker.refreshes,
        Some(200),
        reply.as_bytes(),
        &keys,
        &mut Counter(9),
    );
    assert_eq!(failure, None);
    let Step::Allow {
        session: renewed, ..
    } = step
    else {
        panic!("renewed")
    };
    // A reply without an ID token: the tokens live `expires_in` from now.
    assert_eq!(renewed.tokens_expire_at, later + 120);
    let Step::Allow {
        response_cookies, ..
    } = worker.begin(&ctx)
    else {
        panic!("a waiting request is served by the renewal")
    };
    assert!(response_cookies
        .iter()
        .any(|c| c.starts_with("oidc_session=")));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refresh_without_id_token_or_expiry_gets_a_bounded_lifetime() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = browser("/app", &cookie);
    let ctx = fixture.context(&request, later);
    let (session, _) = refresh_of(begin(&ctx, &mut Counter(0)));
    let keys = key_set_of(&[&fixture.idp_key]);
    for (reply, lifetime) in [
        (
            r#"{"access_token":"at2"}"#,
            REFRESHED_TOKENS_DEFAULT_TTL_SECONDS,
        ),
        (r#"{"access_token":"at2","expires_in":0}"#, 10),
    ] {
        let (step, _) = finish(
            &ctx,
            session.clone(),
            Some(200),
            reply.as_bytes(),
            &keys,
            &mut Counter(9),
        );
        let Step::Allow {
            session: renewed, ..
        } = step
        else {
            panic!("renewed")
        };
        assert_eq!(renewed.tokens_expire_at, later + lifetime, "{reply}");
        assert!(renewed.judge(later + 5, 0, 0) != SessionState::Absent);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refreshed_id_token_for_another_subject_ends_the_session() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = browser("/app", &cookie);
    let ctx = fixture.context(&request, later);
    let (session, _) = refresh_of(begin(&ctx, &mut Counter(0)));
    let keys = key_set_of(&[&fixture.idp_key]);
    let mallory = fixture.idp_key.mint(
        &json!({"iss": ISSUER, "aud": "app", "sub": "mallory", "iat": later, "exp": later + 300}),
    );
    let reply = json!({"access_token": "at2", "id_token": mallory}).to_string();
    let (step, failure) = finish(
        &ctx,
        session,
        Some(200),
        reply.as_bytes(),
        &keys,
        &mut Counter(9),
    );
    assert!(failure.unwrap().contains("subject"));
    let Step::LoginRedirect(reply) = step else {
        panic!("a login again")
    };
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| k == "set-cookie" && v.starts_with("oidc_session=;")));
}

#[wasm_bindgen_test(unsupported = test)]
fn while_the_idp_cannot_answer_a_session_backs_off() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let later = LATER;
    let request = api("/data", &cookie);
    let ctx = fixture.context(&request, later);
    let mut worker = Worker::new(&ctx);
    let step = worker.refresh_failing(&ctx);
    assert!(matches!(step, Step::Reply(ref reply) if reply.status == 401));
    // Within the backoff: no call to the IdP.
    assert!(matches!(worker.begin(&ctx), Step::Reply(ref reply) if reply.status == 401));
    // After it: one more attempt.
    let after = fixture.context(&request, later + 2);
    assert!(matches!(worker.begin(&after), Step::Refresh { .. }));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_backoff_lasts_its_second_wherever_in_a_second_the_failure_fell() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), Some("rt-1"));
    let request = api("/data", &cookie);
    let at_ms = |ms: u64| {
        let mut ctx = fixture.context(&request, ms / 1000);
        ctx.now_ms = ms;
        ctx
    };
    // The IdP fails a refresh in the last millisecond of a second.
    let failed_at = LATER * 1000 + 999;
    let ctx = at_ms(failed_at);
    let mut worker = Worker::new(&ctx);
    let _ = worker.refresh_failing(&ctx);
    // 43 ms later the clock's second has changed, but the backoff still holds.
    for later_ms in [43, 500, 999] {
        let step = worker.begin(&at_ms(failed_at + later_ms));
        assert!(
            matches!(step, Step::Reply(ref reply) if reply.status == 401),
            "{later_ms} ms after the failure: {step:?}"
        );
    }
    assert!(matches!(
        worker.begin(&at_ms(failed_at + 1_000)),
        Step::Refresh { .. }
    ));
}

fn with(headers: Headers, name: &str, value: &str) -> Headers {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for key in [
        ":method",
        ":scheme",
        ":authority",
        ":path",
        "accept",
        "cookie",
    ] {
        if let Some(value) = headers.get(key) {
            pairs.push((key.to_string(), value.to_string()));
        }
    }
    pairs.push((name.to_string(), value.to_string()));
    Headers::new(pairs)
}

#[wasm_bindgen_test(unsupported = test)]
fn only_a_same_origin_request_logs_out() {
    let fixture = Fixture::new();
    let cookie = fixture.logged_in_cookie(json!({}), None);
    let logout = browser("/oauth2/logout", &cookie);
    let cases = [
        ("sec-fetch-site", "same-origin", true),
        ("sec-fetch-site", "none", true),
        ("sec-fetch-site", "cross-site", false),
        ("sec-fetch-site", "same-site", false),
        ("origin", "http://app.test", true),
        ("origin", "https://evil.test", false),
        ("origin", "null", false),
        ("referer", "http://app.test/settings", true),
        ("referer", "http://app.test", true),
        ("referer", "http://app.test.evil.test/", false),
        ("referer", "https://evil.test/http://app.test/", false),
        ("x-nothing", "", false),
    ];
    for (name, value, logs_out) in cases {
        let request = with(logout.clone(), name, value);
        match begin(&fixture.context(&request, NOW + 10), &mut Counter(0)) {
            Step::Logout(reply) => assert!(logs_out, "{name}: {value}: {reply:?}"),
            Step::Reply(page) => {
                assert!(!logs_out, "{name}: {value}");
                assert_eq!(page.status, 200);
                assert!(page
                    .body
                    .contains(r#"<form method="post" action="/oauth2/logout">"#));
                assert!(!page.headers.iter().any(|(k, _)| k == "set-cookie"));
            }
            other => panic!("{name}: {value}: {other:?}"),
        }
    }
}

/// A login started at `/app?x=1`: the callback request the IdP sends the browser to
/// (with `extra_cookies` beside the login cookie), and the nonce to put in the ID token.
/// `seed` picks the login's random values.
fn started_login(fixture: &Fixture, extra_cookies: &str, seed: u8) -> (Headers, String) {
    let start = begin(
        &fixture.context(&browser("/app?x=1", ""), NOW),
        &mut Counter(seed),
    );
    let Step::LoginRedirect(redirect) = start else {
        panic!("expected a login redirect")
    };
    let location = HttpUrl::parse(header(&redirect, "location")).unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .unwrap()
            .1
            .into_owned()
    };
    let (state, nonce) = (param("state"), param("nonce"));
    let mut cookies = cookie_pairs(&redirect);
    if !extra_cookies.is_empty() {
        cookies = format!("{extra_cookies}; {cookies}");
    }
    let callback = browser(
        &format!("/oauth2/callback?code=the-code&state={state}"),
        &cookies,
    );
    (callback, nonce)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_callback_is_exchanged_once_and_its_replays_never_reach_the_idp() {
    let fixture = Fixture::new();
    let (callback, nonce) = started_login(&fixture, "", 0);
    let ctx = fixture.context(&callback, NOW + 5);
    let mut worker = Worker::new(&ctx);
    let Step::Exchange { pending, .. } = worker.begin(&ctx) else {
        panic!("the first callback exchanges its code")
    };
    // The same callback again while the first is at the token endpoint: it waits.
    for _ in 0..3 {
        assert!(matches!(worker.begin(&ctx), Step::AwaitOtherExchange));
    }
    // One that may not wait any longer is sent back where the login started.
    let mut impatient = fixture.context(&callback, NOW + 5);
    impatient.final_attempt = true;
    let Step::CallbackReplayed(page) = worker.begin(&impatient) else {
        panic!("no second exchange")
    };
    assert_eq!((page.status, header(&page, "location")), (302, "/app?x=1"));
    // Another login of the same browser or another user is not held up.
    let (other, _) = started_login(&fixture, "", 100);
    assert!(matches!(
        worker.begin(&fixture.context(&other, NOW + 5)),
        Step::Exchange { .. }
    ));
    // The first one finishes (the pipeline marks the state spent with the reply).
    worker.callbacks.spend(&pending.state);
    let reply = json!({"access_token": "at", "token_type": "Bearer",
        "id_token": fixture.id_token(&nonce, json!({}))});
    let done = fixture.finish(&ctx, &pending, &reply);
    assert_eq!(done.status, 302);
    // Those that waited, and any later replay while the login cookie lasts, go back
    // where the login started, with no session and no call.
    for now in [NOW + 5, NOW + login::LOGIN_TTL_SECONDS] {
        let later = fixture.context(&callback, now);
        let Step::CallbackReplayed(replayed) = worker.begin(&later) else {
            panic!("a replay is answered without an exchange")
        };
        assert_eq!(replayed.status, 302);
        assert_eq!(header(&replayed, "location"), "/app?x=1");
        assert!(!replayed
            .headers
            .iter()
            .any(|(name, _)| name == "set-cookie"));
    }
    // After that the login cookie itself is refused, as before.
    let expired = fixture.context(&callback, NOW + login::LOGIN_TTL_SECONDS + 1);
    assert!(matches!(
        worker.begin(&expired),
        Step::CallbackRejected(LocalReply { status: 400, .. })
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_forged_callback_does_not_spend_the_real_state() {
    let fixture = Fixture::new();
    let (callback, _) = started_login(&fixture, "", 0);
    let path = callback.path().replace("state=", "state=x");
    let cookie = callback.get("cookie").unwrap().to_string();
    let forged = browser(&path, &cookie);
    let mut worker = Worker::new(&fixture.context(&forged, NOW + 5));
    assert!(matches!(
        worker.begin(&fixture.context(&forged, NOW + 5)),
        Step::CallbackRejected(_)
    ));
    assert!(
        worker.callbacks.is_empty(),
        "only a checked callback is remembered"
    );
    assert!(matches!(
        worker.begin(&fixture.context(&callback, NOW + 5)),
        Step::Exchange { .. }
    ));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_login_keeps_only_the_headers_its_finish_reads() {
    let fixture = Fixture::new();
    // An earlier, larger session left three chunks; the new one needs one.
    let old_chunks =
        "oidc_session_0=aaaa; oidc_session_1=bbbb; oidc_session_2=cccc; other=keep-out";
    let (callback, nonce) = started_login(&fixture, old_chunks, 0);
    let oidc = fixture.config.top_level.oidc.as_ref().unwrap();
    let kept = finish_login_headers(oidc, &callback);
    let text: String = kept.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
    assert_eq!(
        text,
        ":method: GET\n:scheme: http\n:authority: app.test\n:path: /oauth2/callback\n\
         accept: text/html\ncookie: oidc_session_0=; oidc_session_1=; oidc_session_2=\n"
    );
    let ctx = fixture.context(&callback, NOW + 5);
    let Step::Exchange { pending, .. } = begin(&ctx, &mut Counter(0)) else {
        panic!("expected an exchange")
    };
    let reply = json!({"access_token": "at", "token_type": "Bearer",
        "id_token": fixture.id_token(&nonce, json!({}))})
    .to_string();
    let keys = key_set_of(&[&fixture.idp_key]);
    let finish = |headers: &Headers| {
        let ctx = fixture.context(headers, NOW + 5);
        finish_login(
            &ctx,
            &pending,
            Some(200),
            reply.as_bytes(),
            &keys,
            &mut Counter(50),
        )
    };
    let (with_all, with_kept) = (finish(&callback).unwrap(), finish(&kept).unwrap());
    assert_eq!(with_all, with_kept, "the same reply from the few headers");
    assert!(with_kept
        .headers
        .iter()
        .any(|(name, value)| name == "set-cookie"
            && value.starts_with("oidc_session_2=;")
            && value.contains("Max-Age=0")));
}

/// `client_secret_jwt`: the code exchange carries a fresh assertion; with no
/// randomness for its `jti`, the callback is refused before any call to the IdP.
#[wasm_bindgen_test(unsupported = test)]
fn a_client_assertion_needs_a_fresh_jti() {
    let mut fixture = Fixture::new();
    let text = format!(
        r#"{{"oidc":{{"issuer":"{ISSUER}","clientId":"app","clientSecret":"0123456789abcdef0123456789abcdef",
            "tokenEndpointAuthMethod":"client_secret_jwt",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}},
          "jwtRules":[{{"issuer":"{ISSUER}"}}]}}"#
    );
    fixture.config = Config::parse(text.as_bytes()).unwrap();
    let start = begin(&fixture.context(&browser("/", ""), NOW), &mut Counter(0));
    let Step::LoginRedirect(redirect) = start else {
        panic!("expected a login redirect")
    };
    let state = login_parameter(&redirect, "state");
    let callback = browser(
        &format!("/oauth2/callback?code=c&state={state}"),
        &cookie_pairs(&redirect),
    );
    let ctx = fixture.context(&callback, NOW + 5);
    let Step::CallbackRejected(page) = begin(&ctx, &mut Broken) else {
        panic!("expected a refusal")
    };
    assert_eq!(page.status, 500);
    let Step::Exchange { request, .. } = begin(&ctx, &mut Counter(9)) else {
        panic!("expected an exchange")
    };
    let body = String::from_utf8(request.body.unwrap()).unwrap();
    assert!(body.contains("client_assertion=") && !body.contains("0123456789abcdef"));
}

/// A sign-in for `example.test` with one callback host.
fn domain_config() -> Config {
    let text = format!(
        r#"{{"oidc":{{"issuer":"{ISSUER}","clientId":"app","clientSecret":"s","cookieSecure":false,
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
            "cookieDomain":"example.test","redirectUri":"http://auth.example.test/oauth2/callback",
            "outputClaimToHeaders":[{{"header":"x-email","claim":"email"}}]}},
          "apps":[{{"name":"a","hosts":["a.example.test"]}},{{"name":"b","hosts":["b.example.test"]}}]}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

/// `browser` on another host.
fn on(authority: &str, path: &str, cookie: &str) -> Headers {
    let mut pairs = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
        ("accept", "text/html"),
        ("sec-fetch-site", "same-origin"),
    ];
    if !cookie.is_empty() {
        pairs.push(("cookie", cookie));
    }
    Headers::of(&pairs)
}

/// One login on `a` finished on the callback host: `a`'s URL again, and a session
/// for the whole domain that `b` takes as it is; logout on `b` ends it everywhere.
#[wasm_bindgen_test(unsupported = test)]
fn one_sign_in_serves_every_host_of_the_domain() {
    let fixture = Fixture::of(domain_config());
    let start = begin(
        &fixture.context(&on("a.example.test", "/app?x=1", "theme=dark"), NOW),
        &mut Counter(0),
    );
    let Step::LoginRedirect(redirect) = start else {
        panic!("expected a login redirect, got {start:?}")
    };
    assert_eq!(
        login_parameter(&redirect, "redirect_uri"),
        "http://auth.example.test/oauth2/callback"
    );
    let state = login_parameter(&redirect, "state");
    let nonce = login_parameter(&redirect, "nonce");
    let login_cookie = cookie_pairs(&redirect);
    assert!(
        login_cookie.starts_with("oidc_session_login_"),
        "{login_cookie}"
    );

    let callback = on(
        "auth.example.test",
        &format!("/oauth2/callback?code=c&state={state}"),
        &login_cookie,
    );
    let ctx = fixture.context(&callback, NOW + 5);
    let step = begin(&ctx, &mut Counter(0));
    let Step::Exchange { pending, request } = step else {
        panic!("expected an exchange, got {step:?}")
    };
    let body = String::from_utf8(request.body.clone().unwrap()).unwrap();
    assert!(
        body.contains("redirect_uri=http%3A%2F%2Fauth.example.test%2Foauth2%2Fcallback"),
        "{body}"
    );
    // A large session: its chunks too are the domain's.
    let claims = json!({"blob": "y".repeat(6000)});
    let reply = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
        "id_token": fixture.id_token(&nonce, claims), "refresh_token": "rt"});
    let done = fixture.finish(&ctx, &pending, &reply);
    assert_eq!(header(&done, "location"), "http://a.example.test/app?x=1");
    let set_cookies: Vec<&str> = done
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        set_cookies
            .iter()
            .all(|c| c.contains("; Domain=example.test")),
        "{set_cookies:?}"
    );
    let login_name = login_cookie.split('=').next().unwrap();
    assert!(set_cookies
        .iter()
        .any(|c| c.starts_with(&format!("{login_name}=;")) && c.contains("Max-Age=0")));
    let session = cookie_pairs(&done);

    for host in ["a.example.test", "b.example.test", "auth.example.test"] {
        let step = begin(
            &fixture.context(&on(host, "/", &session), NOW + 10),
            &mut Counter(0),
        );
        assert!(matches!(step, Step::Allow { .. }), "{host}: {step:?}");
    }

    // Logout on b: every cookie of the login, for the domain, and one trip to the IdP.
    let in_flight = "oidc_session_login_AAAAAAAA=x";
    let request = on(
        "b.example.test",
        "/oauth2/logout",
        &format!("{session}; {in_flight}"),
    );
    let Step::Logout(reply) = begin(&fixture.context(&request, NOW + 10), &mut Counter(0)) else {
        panic!()
    };
    assert!(header(&reply, "location").starts_with("http://127.0.0.1:9000/session/end?"));
    let expired: Vec<&str> = reply
        .headers
        .iter()
        .filter(|(k, v)| {
            k == "set-cookie" && v.contains("Max-Age=0") && v.contains("; Domain=example.test")
        })
        .map(|(_, v)| v.split('=').next().unwrap())
        .collect();
    assert!(session.contains("oidc_session_1="), "a chunked session");
    for name in [
        "oidc_session_0",
        "oidc_session_1",
        "oidc_session_login",
        "oidc_session_login_AAAAAAAA",
    ] {
        assert!(expired.contains(&name), "{name} not expired: {expired:?}");
    }
}

/// A host the block serves but outside its cookie domain (a top-level block takes
/// any host no app claims) gets a page, not a login that could never finish.
#[wasm_bindgen_test(unsupported = test)]
fn hosts_outside_the_domain_are_refused() {
    let fixture = Fixture::of(domain_config());
    for host in [
        "evil.test",
        "example.test.evil.test",
        "a.example.test.",
        "xexample.test",
    ] {
        let step = begin(&fixture.context(&on(host, "/", ""), NOW), &mut Counter(0));
        assert!(
            matches!(step, Step::Reply(ref reply) if reply.status == 400 && reply.body.contains("cookieDomain")),
            "{host}: {step:?}"
        );
    }
    let step = begin(
        &fixture.context(&on("example.test", "/", ""), NOW),
        &mut Counter(0),
    );
    assert!(matches!(step, Step::LoginRedirect(_)), "{step:?}");
}

/// The refresh memo and its backoff are the session's, whichever host asks.
#[wasm_bindgen_test(unsupported = test)]
fn the_refresh_backoff_holds_across_hosts() {
    let fixture = Fixture::of(domain_config());
    let start = begin(
        &fixture.context(&on("a.example.test", "/", ""), NOW),
        &mut Counter(0),
    );
    let Step::LoginRedirect(redirect) = start else {
        panic!()
    };
    let state = login_parameter(&redirect, "state");
    let nonce = login_parameter(&redirect, "nonce");
    let callback = on(
        "auth.example.test",
        &format!("/oauth2/callback?code=c&state={state}"),
        &cookie_pairs(&redirect),
    );
    let ctx = fixture.context(&callback, NOW + 5);
    let Step::Exchange { pending, .. } = begin(&ctx, &mut Counter(0)) else {
        panic!()
    };
    let reply = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
        "id_token": fixture.id_token(&nonce, json!({})), "refresh_token": "rt"});
    let done = fixture.finish(&ctx, &pending, &reply);
    let cookie = cookie_pairs(&done);
    let on_a = on("a.example.test", "/", &cookie);
    let ctx_a = fixture.context(&on_a, LATER);
    let mut worker = Worker::new(&ctx_a);
    let (session, key) = refresh_of(worker.begin(&ctx_a));
    let (step, _) = finish_refresh(
        &ctx_a,
        session,
        key,
        &mut worker.refreshes,
        Some(503),
        b"",
        &key_set_of(&[&fixture.idp_key]),
        &mut Counter(9),
    );
    assert!(matches!(step, Step::LoginRedirect(_)), "{step:?}");
    let on_b = on("b.example.test", "/", &cookie);
    let step = worker.begin(&fixture.context(&on_b, LATER));
    assert!(
        !matches!(step, Step::Refresh { .. }),
        "b asked the IdP again: {step:?}"
    );
    let step = worker.begin(&fixture.context(&on_b, LATER + 2));
    assert!(matches!(step, Step::Refresh { .. }), "{step:?}");
}
