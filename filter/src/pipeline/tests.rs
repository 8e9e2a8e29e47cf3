use super::*;
use crate::metrics::Counter;
use crate::peer::Peer;
use crate::test_keys::{jwks_of, TestKey};
use crate::token::Algorithm;
use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW_MS: u64 = 1_700_000_000_000;
const ISSUER: &str = "https://idp.test";

pub(crate) struct NoRemote;

impl KeyLookup for NoRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Failed
    }
}

pub(crate) struct NoEntropy;

impl HostCrypto for NoEntropy {
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
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut pairs = vec![(":path", path), ("x-email", "spoof")];
    pairs.extend(bearer.as_deref().map(|value| ("authorization", value)));
    decide_request(config, &pairs).0
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
    let Verdict::Forbidden { detail, .. } =
        verdict(&config, "/app", Some(&token(&key, "bob@example.test")))
    else {
        panic!("bob is not allowed")
    };
    // The log line says where and who.
    assert!(
        detail.ends_with("(app top level, principal https://idp.test/u)"),
        "{detail}"
    );
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

/// One rule with `key`'s keys (plus `rule_fields`), and `top_level` fields.
fn config_with(key: &TestKey, rule_fields: &str, top_level: &str) -> Config {
    let jwks = serde_json::to_string(&jwks_of(&[key])).unwrap();
    let text = format!(
        r#"{{"jwtRules":[{{"issuer":"{ISSUER}","jwks":{jwks}{rule_fields}}}]{top_level}}}"#
    );
    Config::parse(text.as_bytes()).unwrap()
}

/// `pairs` are the request's headers; Envoy always gives an `:authority`, so one
/// is added unless `pairs` has its own.
fn decide_request(config: &Config, pairs: &[(&str, &str)]) -> (Verdict, VmState) {
    let mut all = pairs.to_vec();
    if !pairs.iter().any(|(name, _)| *name == ":authority") {
        all.insert(0, (":authority", "app.test"));
    }
    let headers = Headers::of(&all);
    let inputs = Inputs {
        config,
        app: config.app_for(&headers).unwrap(),
        headers: &headers,
        keys: &NoRemote,
        provider: None,
        peer: &Peer::default(),
        now_ms: NOW_MS,
        final_attempt: false,
    };
    let mut vm = VmState::new(config, [3; 16]);
    let verdict = decide(&inputs, &mut vm, &mut NoEntropy);
    (verdict, vm)
}

fn status_of(verdict: &Verdict) -> u32 {
    match verdict {
        Verdict::Allow { .. } => 200,
        Verdict::Deny(denial) => denial.status,
        Verdict::Forbidden { .. } => 403,
        Verdict::Reply(reply) => reply.status,
        other => panic!("unexpected {other:?}"),
    }
}

/// Istio's authentication task: a token is required on /ip only.
const IP_ONLY: &str = r#","allowMissing":true,"authorizationPolicies":[
    {"rules":[{"to":[{"operation":{"notPaths":["/ip"]}}]},
              {"from":[{"source":{"requestPrincipals":["*"]}}],"to":[{"operation":{"paths":["/ip"]}}]}]}]"#;

#[wasm_bindgen_test(unsupported = test)]
fn with_allow_missing_anonymous_requests_go_to_the_policies() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(&key, "", IP_ONLY);
    let good = token(&key, "alice@example.test");
    let bearer = format!("Bearer {good}");
    let cases: [(&str, Option<&str>, u32); 5] = [
        ("/headers", None, 200),
        ("/ip", None, 401),
        ("/ip", Some(bearer.as_str()), 200),
        ("/headers", Some(bearer.as_str()), 200),
        // A present but invalid token keeps its 401 wherever it goes.
        ("/headers", Some("Bearer not.a.token"), 401),
    ];
    for (path, authorization, status) in cases {
        let mut pairs = vec![(":method", "GET"), (":path", path)];
        pairs.extend(authorization.map(|value| ("authorization", value)));
        let (verdict, _) = decide_request(&config, &pairs);
        assert_eq!(status_of(&verdict), status, "{path} {authorization:?}");
        if let Verdict::Deny(denial) = &verdict {
            let missing = authorization.is_none();
            assert_eq!(denial.body == "Jwt is missing", missing, "{path}");
        }
    }
    let (_, vm) = decide_request(&config, &[(":method", "GET"), (":path", "/headers")]);
    assert_eq!(vm.counters.get(Counter::AllowedAnonymous), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn allow_missing_without_policies_lets_anonymous_requests_pass() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(&key, "", r#","allowMissing":true"#);
    let (verdict, _) = decide_request(&config, &[(":path", "/"), ("x-email", "spoof")]);
    let Verdict::Allow { edits, .. } = verdict else {
        panic!("anonymous should pass: {verdict:?}")
    };
    assert!(edits.remove.is_empty() || edits.remove == ["x-email"]);
    // Without allowMissing the same request is refused.
    let strict = config_with(&key, "", "");
    let (verdict, _) = decide_request(&strict, &[(":path", "/")]);
    assert_eq!(status_of(&verdict), 401);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_deny_for_anonymous_requests_answers_401() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        "",
        r#","allowMissing":true,"authorizationPolicies":[{"action":"DENY","rules":[{"from":[{"source":{"notRequestPrincipals":["*"]}}]}]}]"#,
    );
    let (verdict, _) = decide_request(&config, &[(":path", "/")]);
    let Verdict::Deny(denial) = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!((denial.status, denial.body), (401, "Jwt is missing"));
    let bearer = format!("Bearer {}", token(&key, "a@example.test"));
    let (verdict, _) = decide_request(&config, &[(":path", "/"), ("authorization", &bearer)]);
    assert_eq!(status_of(&verdict), 200);
}

/// Istio: `jwt_authn` lets a preflight past the token check, RBAC still judges it
/// as a request without a token.
#[wasm_bindgen_test(unsupported = test)]
fn cors_preflights_skip_authentication_not_authorization() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let preflight = [
        (":method", "OPTIONS"),
        (":path", "/api"),
        ("origin", "https://app.example.test"),
        ("access-control-request-method", "POST"),
        ("x-email", "spoof"),
    ];
    let output = r#","outputClaimToHeaders":[{"header":"x-email","claim":"email"}]"#;
    // No policies: it passes, without the client's identity headers.
    let open = config_with(&key, output, "");
    let (verdict, vm) = decide_request(&open, &preflight);
    let Verdict::Allow { edits, .. } = verdict else {
        panic!("preflight should pass: {verdict:?}")
    };
    assert_eq!(edits.remove, ["x-email"]);
    assert_eq!(vm.counters.get(Counter::AllowedPreflight), 1);
    // An ALLOW policy that needs an identity denies it as an anonymous request,
    // with Istio's 403: a preflight never carries a credential...
    let (verdict, vm) = decide_request(&config(&key), &preflight);
    assert_eq!(status_of(&verdict), 403);
    assert_eq!(vm.counters.get(Counter::DeniedRbac), 1);
    assert_eq!(vm.counters.get(Counter::AllowedPreflight), 0);
    // ... unless a rule allows OPTIONS (Istio's advice).
    let options = r#","authorizationPolicies":[
        {"rules":[{"when":[{"key":"request.auth.claims[email]","values":["a@x"]}]}]},
        {"rules":[{"to":[{"operation":{"methods":["OPTIONS"]}}]}]}]"#;
    let (verdict, _) = decide_request(&config_with(&key, output, options), &preflight);
    assert_eq!(status_of(&verdict), 200);
    // A DENY applies to preflights as to anything else, IP rules included.
    let deny = r#","authorizationPolicies":[
        {"action":"DENY","rules":[{"to":[{"operation":{"paths":["/api*"]}}]}]},
        {"rules":[{"to":[{"operation":{"methods":["OPTIONS"]}}]}]}]"#;
    let (verdict, _) = decide_request(&config_with(&key, output, deny), &preflight);
    assert_eq!(status_of(&verdict), 403);
    // Not a preflight: judged as any request.
    let (verdict, _) = decide_request(&open, &preflight[..3]);
    assert_eq!(status_of(&verdict), 401);
    let off = config_with(&key, "", r#","bypassCorsPreflight":false"#);
    let (verdict, _) = decide_request(&off, &preflight);
    assert_eq!(status_of(&verdict), 401);
}

#[wasm_bindgen_test(unsupported = test)]
fn header_conditions_see_the_claim_not_the_clients_copy() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        r#","outputClaimToHeaders":[{"header":"x-group","claim":"group"}]"#,
        r#","authorizationPolicies":[{"rules":[{"when":[{"key":"request.headers[x-group]","values":["admin"]}]}]}]"#,
    );
    let mint = |group: &str| {
        let token = key
            .mint(&json!({"iss": ISSUER, "sub": "u", "group": group, "exp": NOW_MS / 1000 + 60}));
        format!("Bearer {token}")
    };
    let users = mint("users");
    let (verdict, _) = decide_request(
        &config,
        &[
            (":path", "/"),
            ("authorization", &users),
            ("x-group", "admin"),
        ],
    );
    assert_eq!(
        status_of(&verdict),
        403,
        "a client header must not pass for the claim"
    );
    let admins = mint("admin");
    let (verdict, _) = decide_request(&config, &[(":path", "/"), ("authorization", &admins)]);
    assert_eq!(status_of(&verdict), 200);
}

#[wasm_bindgen_test(unsupported = test)]
fn tokens_of_two_principals_are_refused_and_one_principal_is_forwarded_once() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        r#","fromHeaders":[{"name":"authorization","prefix":"Bearer "}],"fromParams":["access_token"],"outputClaimToHeaders":[{"header":"x-email","claim":"email"}]"#,
        "",
    );
    let mint = |sub: &str, email: &str| {
        key.mint(&json!({"iss": ISSUER, "sub": sub, "email": email, "exp": NOW_MS / 1000 + 60}))
    };
    let corp = format!("Bearer {}", mint("alice", "alice@corp.test"));
    let partner_path = format!("/?access_token={}", mint("mallory", "mallory@partner.test"));
    let (verdict, _) = decide_request(
        &config,
        &[(":path", &partner_path), ("authorization", &corp)],
    );
    let Verdict::Deny(denial) = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(
        (denial.status, denial.body),
        (401, "Jwt verification fails")
    );
    // Two tokens of one principal: the first one's claims go upstream, and only once.
    let same_path = format!("/?access_token={}", mint("alice", "alice@other.test"));
    let (verdict, _) = decide_request(&config, &[(":path", &same_path), ("authorization", &corp)]);
    let Verdict::Allow { edits, .. } = verdict else {
        panic!("{verdict:?}")
    };
    let emails: Vec<_> = edits.set.iter().filter(|(k, _)| k == "x-email").collect();
    assert_eq!(
        emails,
        [&("x-email".to_string(), "alice@corp.test".to_string())]
    );
    assert!(edits.set.iter().any(|(k, v)| k == ":path" && v == "/"));
}

#[wasm_bindgen_test(unsupported = test)]
fn filter_cookies_and_underscore_identity_headers_never_reach_the_upstream() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        r#","outputClaimToHeaders":[{"header":"x-email","claim":"email"}]"#,
        r#","publicPaths":["/healthz"],"oidc":{"issuer":"https://login.test","clientId":"app","clientSecret":"s",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}"#,
    );
    let cookies =
        r#"oidc_session=s; app="v 1"; oidc_session_1=c; oidc_session_login=l; oidc_sessionx=keep"#;
    let bearer = format!("Bearer {}", token(&key, "alice@example.test"));
    let requests: [Vec<(&str, &str)>; 3] = [
        vec![(":method", "GET"), (":path", "/healthz")],
        vec![
            (":method", "GET"),
            (":path", "/api"),
            ("authorization", &bearer),
        ],
        vec![
            (":method", "OPTIONS"),
            (":path", "/api"),
            ("origin", "https://spa.test"),
            ("access-control-request-method", "GET"),
        ],
    ];
    for mut pairs in requests {
        pairs.extend([
            ("cookie", cookies),
            ("x_email", "spoof"),
            ("x-email", "spoof"),
        ]);
        let headers = Headers::of(&pairs);
        let (verdict, _) = decide_request(&config, &pairs);
        let Verdict::Allow { edits, .. } = verdict else {
            panic!("{pairs:?}: {verdict:?}")
        };
        let forwarded = Forwarded {
            headers: &headers,
            edits: &edits,
        };
        assert_eq!(
            forwarded.get_all("cookie"),
            [r#"app="v 1"; oidc_sessionx=keep"#],
            "{pairs:?}"
        );
        assert!(forwarded.get("x_email").is_none(), "{pairs:?}");
        assert_ne!(forwarded.get("x-email"), Some("spoof"), "{pairs:?}");
    }
}

/// One top-level declaration sets a claim header for bearer tokens of any rule;
/// a rule's own entry for the same header wins.
#[wasm_bindgen_test(unsupported = test)]
fn top_level_claim_headers_cover_every_token() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        r#","outputClaimToHeaders":[{"header":"x-sub","claim":"sub"}]"#,
        r#","outputClaimToHeaders":[{"header":"x-email","claim":"email"},{"header":"x-sub","claim":"email"}]"#,
    );
    let bearer = format!("Bearer {}", token(&key, "a@example.test"));
    let (verdict, _) = decide_request(
        &config,
        &[
            (":path", "/"),
            ("authorization", &bearer),
            ("x-email", "spoof"),
        ],
    );
    let Verdict::Allow { edits, .. } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(edits.remove.contains(&"x-email".to_string()));
    assert_eq!(
        edits.set,
        [
            ("x-email".to_string(), "a@example.test".to_string()),
            ("x-sub".to_string(), "u".to_string())
        ]
    );
}

mod callback_replay {
    use super::*;
    use crate::http_url::HttpUrl;
    use crate::oidc::login::PendingLogin;
    use crate::oidc::provider::Provider;
    use crate::streams::MAX_EXCHANGES;

    struct Counting(u8);

    impl HostCrypto for Counting {
        fn fill(&mut self, bytes: &mut [u8]) -> bool {
            for byte in bytes {
                self.0 = self.0.wrapping_add(1);
                *byte = self.0;
            }
            true
        }
    }

    const LOGIN_ISSUER: &str = "https://login.test";

    fn oidc_config() -> Config {
        let text = format!(
            r#"{{"oidc":{{"issuer":"{LOGIN_ISSUER}","clientId":"app","clientSecret":"s",
                "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}}}}"#
        );
        Config::parse(text.as_bytes()).unwrap()
    }

    fn provider() -> Provider {
        let url = |path: &str| HttpUrl::parse(&format!("{LOGIN_ISSUER}{path}")).unwrap();
        Provider {
            issuer: LOGIN_ISSUER.into(),
            authorization_endpoint: url("/auth"),
            token_endpoint: url("/token"),
            jwks_uri: url("/jwks"),
            end_session_endpoint: None,
            callback_iss_required: false,
        }
    }

    /// One worker's decisions, with the provider known.
    fn decide_with(config: &Config, vm: &mut VmState, pairs: &[(&str, &str)], seed: u8) -> Verdict {
        let headers = Headers::of(pairs);
        let provider = provider();
        let inputs = Inputs {
            config,
            app: config.app_for(&headers).unwrap(),
            headers: &headers,
            keys: &NoRemote,
            provider: Some(&provider),
            peer: &Peer::default(),
            now_ms: NOW_MS,
            final_attempt: false,
        };
        decide(&inputs, vm, &mut Counting(seed))
    }

    /// A login started on this worker: the callback's path and cookie header.
    fn callback(config: &Config, vm: &mut VmState, seed: u8) -> (String, String) {
        let navigation = [
            (":method", "GET"),
            (":authority", "app.test"),
            (":path", "/app"),
            ("accept", "text/html"),
        ];
        let Verdict::Reply(redirect) = decide_with(config, vm, &navigation, seed) else {
            panic!("a login redirect")
        };
        let header = |name: &str| {
            redirect
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };
        let location = HttpUrl::parse(&header("location")).unwrap();
        let state = location
            .query_pairs()
            .find(|(key, _)| key == "state")
            .unwrap()
            .1
            .into_owned();
        let login_cookie = header("set-cookie").split(';').next().unwrap().to_string();
        (
            format!("/oauth2/callback?code=the-code&state={state}"),
            format!("{login_cookie}; oidc_session_1=old-chunk; other=a-large-cookie"),
        )
    }

    fn callback_request<'a>(path: &'a str, cookie: &'a str) -> [(&'a str, &'a str); 5] {
        [
            (":method", "GET"),
            (":authority", "app.test"),
            (":path", path),
            ("accept", "text/html"),
            ("cookie", cookie),
        ]
    }

    fn exchange(token: u32, pending: Pending, pairs: &[(&str, &str)]) -> Exchange {
        Exchange {
            token,
            context_id: token,
            pending,
            headers: Headers::of(pairs),
            peer: Peer {
                principals: vec!["cluster.local/ns/x/sa/y".into()],
                ..Peer::default()
            },
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_replayed_callback_waits_then_is_answered_without_a_second_exchange() {
        let config = oidc_config();
        let mut vm = VmState::new(&config, [3; 16]);
        let (path, cookie) = callback(&config, &mut vm, 0);
        let request = callback_request(&path, &cookie);
        let Verdict::Dispatch { pending, .. } = decide_with(&config, &mut vm, &request, 0) else {
            panic!("the first callback exchanges its code")
        };
        assert!(vm.keep_exchange(&config, exchange(1, pending, &request)));
        // What the call keeps: none of the request's cookie values, nor its code.
        let kept = vm.streams.take_exchange(1).unwrap();
        let text = format!("{:?}", kept.headers.iter().collect::<Vec<_>>());
        assert!(!text.contains("the-code") && !text.contains("a-large-cookie"));
        assert!(!text.contains("old-chunk") && text.contains("oidc_session_1="));
        assert_eq!(kept.peer, Peer::default());
        assert!(vm.streams.add_exchange(kept).is_ok());
        for _ in 0..5 {
            assert!(matches!(
                decide_with(&config, &mut vm, &request, 0),
                Verdict::Wait(_)
            ));
        }
        let exchange = vm.streams.take_exchange(1).unwrap();
        let headers = exchange.headers.clone();
        let provider = provider();
        let inputs = Inputs {
            config: &config,
            app: config.app_for(&headers).unwrap(),
            headers: &headers,
            keys: &NoRemote,
            provider: Some(&provider),
            peer: &exchange.peer,
            now_ms: NOW_MS,
            final_attempt: true,
        };
        let finished = finish_exchange(
            &inputs,
            &exchange.pending,
            (Some(503), b""),
            &KeySet::default(),
            &mut vm,
            &mut Counting(9),
        );
        assert_eq!(status_of(&finished.verdict), 502);
        for _ in 0..3 {
            let verdict = decide_with(&config, &mut vm, &request, 0);
            let Verdict::Reply(reply) = verdict else {
                panic!("{verdict:?}")
            };
            assert_eq!(reply.status, 302);
        }
        assert_eq!(vm.counters.get(Counter::LoginReplayed), 3);
        assert_eq!(vm.counters.get(Counter::LoginFailed), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_call_refused_for_room_releases_everything_and_its_state_is_spent() {
        let config = oidc_config();
        let mut vm = VmState::new(&config, [3; 16]);
        let filler = || {
            Pending::Login(PendingLogin {
                state: "filler".into(),
                nonce: String::new(),
                verifier: String::new(),
                return_to: "/".into(),
                expires_at: 0,
            })
        };
        for token in 0..MAX_EXCHANGES as u32 {
            assert!(vm
                .streams
                .add_exchange(exchange(token, filler(), &[]))
                .is_ok());
        }
        let (path, cookie) = callback(&config, &mut vm, 0);
        let request = callback_request(&path, &cookie);
        // No room: a 503 before any call is made.
        let refused = decide_with(&config, &mut vm, &request, 0);
        assert!(
            matches!(refused, Verdict::Reply(LocalReply { status: 503, .. })),
            "{refused:?}"
        );
        assert_eq!(vm.streams.sizes(), (0, MAX_EXCHANGES, 0));
        // Its state is spent: sent again, the callback starts over instead.
        assert!(matches!(
            decide_with(&config, &mut vm, &request, 0),
            Verdict::Reply(LocalReply { status: 302, .. })
        ));
        // Keeping a call past the bound is refused too, and releases it.
        let (path, cookie) = callback(&config, &mut vm, 50);
        let request = callback_request(&path, &cookie);
        let _ = vm.streams.take_exchange(1);
        let Verdict::Dispatch { pending, .. } = decide_with(&config, &mut vm, &request, 50) else {
            panic!("an exchange")
        };
        assert!(vm.streams.add_exchange(exchange(1, filler(), &[])).is_ok());
        assert!(!vm.keep_exchange(&config, exchange(9999, pending, &request)));
        assert_eq!(vm.streams.sizes(), (0, MAX_EXCHANGES, 0));
        assert!(vm.streams.take_exchange(9999).is_none());
        assert!(matches!(
            decide_with(&config, &mut vm, &request, 50),
            Verdict::Reply(LocalReply { status: 302, .. })
        ));
        // A stream that ends releases its call and spends its state too.
        let (path, cookie) = callback(&config, &mut vm, 100);
        let request = callback_request(&path, &cookie);
        let _ = vm.streams.take_exchange(0);
        let Verdict::Dispatch { pending, .. } = decide_with(&config, &mut vm, &request, 100) else {
            panic!("an exchange")
        };
        assert!(vm.keep_exchange(&config, exchange(5000, pending, &request)));
        vm.forget(5000);
        assert_eq!(vm.streams.sizes(), (0, MAX_EXCHANGES - 1, 0));
        assert!(matches!(
            decide_with(&config, &mut vm, &request, 100),
            Verdict::Reply(LocalReply { status: 302, .. })
        ));
    }
}

/// `401` (or a login) only where a credential could change the outcome; a
/// request the policies deny whoever the user is gets `403`.
#[wasm_bindgen_test(unsupported = test)]
fn a_missing_credential_is_asked_for_only_where_it_could_help() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let policies = r#","authorizationPolicies":[
        {"action":"DENY","rules":[{"to":[{"operation":{"paths":["/internal*"]}}]}]},
        {"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}]"#;
    for allow_missing in ["", r#","allowMissing":true"#] {
        let config = config_with(&key, "", &format!("{policies}{allow_missing}"));
        let (verdict, vm) = decide_request(&config, &[(":path", "/internal/x")]);
        assert_eq!(status_of(&verdict), 403, "{allow_missing}");
        assert_eq!(vm.counters.get(Counter::DeniedRbac), 1);
        assert_eq!(vm.counters.get(Counter::DeniedMissing), 0);
        let (verdict, vm) = decide_request(&config, &[(":path", "/app")]);
        assert_eq!(status_of(&verdict), 401, "{allow_missing}");
        assert_eq!(vm.counters.get(Counter::DeniedMissing), 1);
    }
}

/// AUDIT and dry-run policies are counted and noted for the log, and decide
/// nothing.
#[wasm_bindgen_test(unsupported = test)]
fn audit_and_dry_run_policies_are_counted_and_noted() {
    let key = TestKey::new(Algorithm::Es256, "k");
    let config = config_with(
        &key,
        "",
        r#","authorizationPolicies":[
            {"action":"AUDIT","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]},
            {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
             "metadata":{"name":"p","namespace":"n","annotations":{"istio.io/dry-run":"true"}},
             "spec":{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}}]"#,
    );
    let bearer = format!("Bearer {}", token(&key, "a@example.test"));
    let (verdict, mut vm) = decide_request(
        &config,
        &[
            (":method", "GET"),
            (":path", "/admin/x"),
            ("authorization", &bearer),
        ],
    );
    assert_eq!(status_of(&verdict), 200);
    assert_eq!(vm.counters.get(Counter::AuditMatched), 1);
    assert_eq!(vm.counters.get(Counter::DryRunDenied), 1);
    let notes = vm.counters.take_notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("AUDIT policy authorizationPolicies[0] matched GET app.test/admin/x (app top level, principal https://idp.test/u)"), "{notes:?}");
    assert!(
        notes[1].starts_with("dry-run policies would deny: DENY policy n/p matched"),
        "{notes:?}"
    );
    assert!(vm.counters.take_notes().is_empty());
}

fn introspection_config() -> Config {
    let text = r#"{"introspection":[{"issuer":"https://idp.test",
        "introspectionEndpoint":"https://idp.test/introspect","clientId":"gw","clientSecret":"s",
        "outputClaimToHeaders":[{"header":"x-client","claim":"client_id"}]}],
        "clusters":{"idp.test":"idp"},
        "authorizationPolicies":[{"rules":[{"when":[{"key":"request.auth.claims[scope]","values":["read"]}]}]}]}"#;
    Config::parse(text.as_bytes()).unwrap()
}

/// A request's inputs at `NOW_MS`, with no remote keys or provider.
fn inputs_of<'a>(
    config: &'a Config,
    headers: &'a Headers,
    peer: &'a Peer,
    final_attempt: bool,
) -> Inputs<'a> {
    Inputs {
        config,
        app: config.app_for(headers).unwrap(),
        headers,
        keys: &NoRemote,
        provider: None,
        peer,
        now_ms: NOW_MS,
        final_attempt,
    }
}

fn decide_with(
    config: &Config,
    vm: &mut VmState,
    headers: &Headers,
    final_attempt: bool,
) -> Verdict {
    let peer = Peer::default();
    decide(
        &inputs_of(config, headers, &peer, final_attempt),
        vm,
        &mut NoEntropy,
    )
}

fn finish_with(
    config: &Config,
    vm: &mut VmState,
    headers: &Headers,
    pending: &Pending,
    body: &[u8],
) -> Verdict {
    let peer = Peer::default();
    let inputs = inputs_of(config, headers, &peer, true);
    let reply = (Some(200), body);
    finish_exchange(
        &inputs,
        pending,
        reply,
        &KeySet::default(),
        vm,
        &mut NoEntropy,
    )
    .verdict
}

/// A request to `app.test` with an opaque bearer token.
fn opaque_request(token: &str) -> Headers {
    let bearer = format!("Bearer {token}");
    Headers::of(&[
        (":authority", "app.test"),
        (":path", "/x"),
        ("authorization", bearer.as_str()),
    ])
}

#[wasm_bindgen_test(unsupported = test)]
fn an_introspection_call_not_made_or_not_kept_is_a_failed_call_and_a_counted_503() {
    let config = introspection_config();
    let mut vm = VmState::new(&config, [3; 16]);
    let headers = opaque_request("opaque-1");
    let counts = |vm: &VmState| {
        (
            vm.counters.get(Counter::IntrospectionCalls),
            vm.counters.get(Counter::IntrospectionFailures),
            vm.counters.get(Counter::DeniedIntrospectionUnavailable),
        )
    };
    // Envoy refuses the dispatch (an unknown cluster, say).
    let Verdict::Dispatch { pending, .. } = decide_with(&config, &mut vm, &headers, false) else {
        panic!("no call")
    };
    vm.dispatch_refused(&config, &headers, &pending);
    assert_eq!(counts(&vm), (1, 1, 1));
    // Forgotten: the next request asks again instead of waiting for it.
    let Verdict::Dispatch { pending, .. } = decide_with(&config, &mut vm, &headers, false) else {
        panic!("no second call")
    };
    // Made, but with no room left to keep it.
    let filler = |token: u32| crate::streams::Exchange {
        token,
        context_id: token,
        pending: Pending::Introspection {
            key: u128::from(token),
            rule: 0,
        },
        headers: Headers::of(&[]),
        peer: Peer::default(),
    };
    for token in 0..crate::streams::MAX_EXCHANGES as u32 {
        assert!(vm.streams.add_exchange(filler(token)).is_ok());
    }
    let refused = crate::streams::Exchange {
        headers: headers.clone(),
        pending,
        ..filler(9999)
    };
    assert!(!vm.keep_exchange(&config, refused));
    assert_eq!(counts(&vm), (2, 2, 2));
    // And with no room before the call: decided at once, counted alike.
    let other = opaque_request("opaque-2");
    assert_eq!(
        status_of(&decide_with(&config, &mut vm, &other, false)),
        503
    );
    assert_eq!(counts(&vm), (3, 3, 3));
}

#[wasm_bindgen_test(unsupported = test)]
fn an_opaque_token_is_introspected_once_and_its_answer_judged() {
    let config = introspection_config();
    let mut vm = VmState::new(&config, [3; 16]);
    let headers = Headers::of(&[
        (":authority", "app.test"),
        (":path", "/x"),
        ("authorization", "Bearer opaque-1"),
        ("x-client", "spoof"),
    ]);
    let Verdict::Dispatch { request, pending } = decide_with(&config, &mut vm, &headers, false)
    else {
        panic!("no call")
    };
    assert_eq!(request.cluster, "idp");
    let body = String::from_utf8(request.body.clone().unwrap()).unwrap();
    assert_eq!(body, "token=opaque-1&token_type_hint=access_token");
    assert!(request
        .headers
        .iter()
        .any(|(name, value)| name == "authorization" && value.starts_with("Basic ")));
    // Another request with the token waits; when it may wait no longer, 503.
    assert!(matches!(
        decide_with(&config, &mut vm, &headers, false),
        Verdict::Wait(_)
    ));
    assert_eq!(
        status_of(&decide_with(&config, &mut vm, &headers, true)),
        503
    );
    let answer = br#"{"active":true,"client_id":"svc","scope":"read write"}"#;
    let Verdict::Allow { edits, .. } = finish_with(&config, &mut vm, &headers, &pending, answer)
    else {
        panic!("not allowed")
    };
    let text = format!("{edits:?}");
    // The token goes, and the client's copy of the claim header is replaced.
    assert_eq!(
        text,
        r#"Edits { remove: ["x-client", "authorization"], set: ["x-client"] }"#
    );
    // From the cache now, without a call.
    assert!(matches!(
        decide_with(&config, &mut vm, &headers, false),
        Verdict::Allow { .. }
    ));
    assert_eq!(vm.counters.get(Counter::IntrospectionCalls), 1);
    assert_eq!(vm.counters.get(Counter::IntrospectionCacheHits), 1);
    assert_eq!(vm.counters.get(Counter::IntrospectionActive), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn inactive_and_failed_introspections_are_refused() {
    let config = introspection_config();
    let mut vm = VmState::new(&config, [3; 16]);
    let headers = |token: &str| {
        Headers::new(vec![
            (":authority".into(), "app.test".into()),
            (":path".into(), "/x".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ])
    };
    let call =
        |vm: &mut VmState, token: &str| match decide_with(&config, vm, &headers(token), false) {
            Verdict::Dispatch { pending, .. } => pending,
            other => panic!("{other:?}"),
        };
    let pending = call(&mut vm, "revoked");
    let Verdict::Deny(denial) = finish_with(
        &config,
        &mut vm,
        &headers("revoked"),
        &pending,
        br#"{"active":false}"#,
    ) else {
        panic!("not denied")
    };
    assert_eq!((denial.status, denial.body), (401, "Token is not active"));
    assert!(format!("{:?}", denial.headers).contains("invalid_token"));
    // Active, but the policies want scope `read`.
    let pending = call(&mut vm, "no-scope");
    let verdict = finish_with(
        &config,
        &mut vm,
        &headers("no-scope"),
        &pending,
        br#"{"active":true}"#,
    );
    assert_eq!(status_of(&verdict), 403);
    // The endpoint failed: 503, then the rule backs off (no call for another token).
    let pending = call(&mut vm, "t3");
    let inputs_headers = headers("t3");
    let inputs = Inputs {
        config: &config,
        app: config.app_for(&inputs_headers).unwrap(),
        headers: &inputs_headers,
        keys: &NoRemote,
        provider: None,
        peer: &Peer::default(),
        now_ms: NOW_MS,
        final_attempt: true,
    };
    let finished = finish_exchange(
        &inputs,
        &pending,
        (Some(502), b"bad gateway"),
        &KeySet::default(),
        &mut vm,
        &mut NoEntropy,
    );
    assert_eq!(status_of(&finished.verdict), 503);
    assert!(finished.failure.is_some());
    assert_eq!(
        status_of(&decide_with(&config, &mut vm, &headers("t4"), false)),
        503
    );
    assert_eq!(vm.counters.get(Counter::IntrospectionFailures), 1);
}

struct PendingRemote;

impl KeyLookup for PendingRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Pending
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_discovered_endpoint_is_waited_for_and_its_absence_fails_closed() {
    let text =
        r#"{"introspection":[{"issuer":"https://idp.test","clientId":"gw","clientSecret":"s"}]}"#;
    let config = Config::parse(text.as_bytes()).unwrap();
    let headers = Headers::of(&[
        (":authority", "app.test"),
        (":path", "/x"),
        ("authorization", "Bearer opaque"),
    ]);
    let decide_with_keys = |keys: &dyn KeyLookup, vm: &mut VmState| {
        let inputs = Inputs {
            config: &config,
            app: config.app_for(&headers).unwrap(),
            headers: &headers,
            keys,
            provider: None,
            peer: &Peer::default(),
            now_ms: NOW_MS,
            final_attempt: false,
        };
        decide(&inputs, vm, &mut NoEntropy)
    };
    let mut vm = VmState::new(&config, [3; 16]);
    let Verdict::Wait(waits) = decide_with_keys(&PendingRemote, &mut vm) else {
        panic!("no wait")
    };
    assert_eq!(waits[0].source, 0);
    // The document could not be fetched (or names no endpoint): 503, no call.
    let verdict = decide_with_keys(&NoRemote, &mut vm);
    assert_eq!(status_of(&verdict), 503);
    assert_eq!(vm.counters.get(Counter::IntrospectionCalls), 0);
}
