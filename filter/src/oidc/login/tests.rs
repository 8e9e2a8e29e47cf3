use super::*;
use crate::config::Config;
use crate::http_url::HttpUrl;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: u64 = 1_700_000_000;

fn config() -> Config {
    Config::parse(
        br#"{"oidc":{"issuer":"http://127.0.0.1:9000","clientId":"app","clientSecret":"s3cret",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}}"#,
    )
    .unwrap()
}

fn provider() -> Provider {
    Provider {
        issuer: "http://127.0.0.1:9000".into(),
        authorization_endpoint: HttpUrl::parse("http://127.0.0.1:9000/auth?prompt=login").unwrap(),
        token_endpoint: HttpUrl::parse("http://127.0.0.1:9000/token").unwrap(),
        jwks_uri: HttpUrl::parse("http://127.0.0.1:9000/jwks").unwrap(),
        end_session_endpoint: None,
        callback_iss_required: false,
    }
}

fn keys(config: &Config) -> CookieKeys {
    CookieKeys::new(&config.top_level.oidc.as_ref().unwrap().cookie_secrets)
}

fn random() -> LoginRandom {
    LoginRandom {
        state: [1; 32],
        nonce: [2; 32],
        verifier: [3; 32],
        seal_nonce: [4; 12],
    }
}

fn request(path: &str, cookie: Option<&str>) -> Headers {
    let mut pairs = vec![
        (":method".to_string(), "GET".to_string()),
        (":scheme".to_string(), "http".to_string()),
        (":authority".to_string(), "app.test:8080".to_string()),
        (":path".to_string(), path.to_string()),
        (
            "accept".to_string(),
            "text/html,application/xhtml+xml".to_string(),
        ),
    ];
    if let Some(cookie) = cookie {
        pairs.push(("cookie".to_string(), cookie.to_string()));
    }
    Headers::new(pairs)
}

/// Starts a login from `path` and returns the redirect and the cookie pair to send back.
fn started(config: &Config, path: &str) -> (HttpUrl, String) {
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let redirect = start(
        oidc,
        &provider(),
        &keys(config),
        &request(path, None),
        &random(),
        NOW,
    )
    .unwrap();
    let cookie_pair = redirect.set_cookies[0]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (HttpUrl::parse(&redirect.location).unwrap(), cookie_pair)
}

fn query_value(url: &HttpUrl, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[wasm_bindgen_test(unsupported = test)]
fn login_redirect_carries_state_nonce_and_pkce() {
    let config = config();
    let (location, cookie) = started(&config, "/reports?id=7");
    assert_eq!(
        query_value(&location, "prompt"),
        "login",
        "existing query kept"
    );
    assert_eq!(query_value(&location, "response_type"), "code");
    assert_eq!(query_value(&location, "client_id"), "app");
    assert_eq!(
        query_value(&location, "redirect_uri"),
        "http://app.test:8080/oauth2/callback"
    );
    assert_eq!(query_value(&location, "scope"), "openid email profile");
    assert_eq!(query_value(&location, "code_challenge_method"), "S256");
    let verifier = URL_SAFE_NO_PAD.encode([3u8; 32]);
    assert_eq!(
        query_value(&location, "code_challenge"),
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    assert!(cookie.starts_with("oidc_session_login="));
    assert!(
        !cookie.contains(&verifier),
        "the verifier is sealed, not readable"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_matching_callback_yields_the_code_and_return_path() {
    let config = config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let (location, cookie) = started(&config, "/reports?id=7");
    let state = query_value(&location, "state");
    let callback = request(
        &format!("/oauth2/callback?code=abc&state={state}"),
        Some(&cookie),
    );
    let checked = check_callback(oidc, &provider(), &keys(&config), &callback, NOW + 10).unwrap();
    assert_eq!(checked.code, "abc");
    assert_eq!(checked.pending.return_to, "/reports?id=7");
    assert_eq!(checked.pending.verifier, URL_SAFE_NO_PAD.encode([3u8; 32]));
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_callbacks_are_refused() {
    let config = config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let keys = keys(&config);
    let (location, cookie) = started(&config, "/");
    let state = query_value(&location, "state");
    let tampered_cookie = format!(
        "{}x",
        cookie
            .trim_end_matches(|c: char| c != '=')
            .trim_end_matches('=')
    );
    let cases = [
        (
            format!("/oauth2/callback?code=abc&state={state}x"),
            Some(cookie.clone()),
            CallbackError::StateMismatch,
        ),
        (
            format!("/oauth2/callback?code=abc&state={state}"),
            None,
            CallbackError::NoPendingLogin,
        ),
        (
            format!("/oauth2/callback?code=abc&state={state}"),
            Some(tampered_cookie),
            CallbackError::NoPendingLogin,
        ),
        (
            "/oauth2/callback?state=x".to_string(),
            Some(cookie.clone()),
            CallbackError::Malformed,
        ),
        (
            "/oauth2/callback?error=access_denied&state=x".to_string(),
            Some(cookie.clone()),
            CallbackError::Refused {
                error: "access_denied".into(),
            },
        ),
    ];
    for (path, cookie, expected) in cases {
        let result = check_callback(
            oidc,
            &provider(),
            &keys,
            &request(&path, cookie.as_deref()),
            NOW,
        );
        assert_eq!(result.unwrap_err(), expected, "{path}");
    }
    let late = request(
        &format!("/oauth2/callback?code=abc&state={state}"),
        Some(&cookie),
    );
    let stale = check_callback(oidc, &provider(), &keys, &late, NOW + LOGIN_TTL_SECONDS + 1);
    assert_eq!(stale.unwrap_err(), CallbackError::NoPendingLogin);
}

/// RFC 9207: `iss` in the callback must be our issuer, and must be there when
/// discovery says the IdP sends it.
#[wasm_bindgen_test(unsupported = test)]
fn callback_iss_must_name_our_issuer() {
    let config = config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let keys = keys(&config);
    let (location, cookie) = started(&config, "/");
    let state = query_value(&location, "state");
    let ours = "&iss=http%3A%2F%2F127.0.0.1%3A9000";
    let evil = "&iss=http%3A%2F%2Fevil.test";
    let cases = [
        // (iss parameters, IdP promised iss, accepted)
        (String::new(), false, true),
        (String::new(), true, false),
        (ours.to_string(), false, true),
        (ours.to_string(), true, true),
        ("&iss=http://127.0.0.1:9000".to_string(), true, true),
        (evil.to_string(), false, false),
        (evil.to_string(), true, false),
        // A plain string comparison, as RFC 9207 asks: no URL normalization.
        (
            "&iss=http%3A%2F%2F127.0.0.1%3A9000%2F".to_string(),
            true,
            false,
        ),
        (
            "&iss=HTTP%3A%2F%2F127.0.0.1%3A9000".to_string(),
            true,
            false,
        ),
        ("&iss=".to_string(), true, false),
        ("&iss=".to_string(), false, false),
        (format!("{ours}{ours}"), true, false),
        (format!("{ours}{ours}"), false, false),
        (format!("{ours}{evil}"), false, false),
        (format!("{evil}{ours}"), false, false),
    ];
    for (iss, required, accepted) in cases {
        let provider = Provider {
            callback_iss_required: required,
            ..provider()
        };
        let callback = request(
            &format!("/oauth2/callback?code=abc{iss}&state={state}"),
            Some(&cookie),
        );
        let result = check_callback(oidc, &provider, &keys, &callback, NOW);
        match result {
            Ok(checked) => assert!(accepted, "{iss} {required}: {checked:?}"),
            Err(error) => {
                assert!(!accepted, "{iss} {required}: {error:?}");
                assert_eq!(error, CallbackError::WrongIssuer, "{iss} {required}");
                assert_eq!(error.status(), 400);
            }
        }
    }
}

/// An error response ends the login either way: without `iss` it still shows
/// the IdP's error, but a wrong `iss` says the response is not from our IdP.
#[wasm_bindgen_test(unsupported = test)]
fn error_responses_and_iss() {
    let config = config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let keys = keys(&config);
    let promised = Provider {
        callback_iss_required: true,
        ..provider()
    };
    let check = |path: &str| check_callback(oidc, &promised, &keys, &request(path, None), NOW);
    assert_eq!(
        check("/oauth2/callback?error=access_denied&state=x").unwrap_err(),
        CallbackError::Refused {
            error: "access_denied".into()
        }
    );
    assert_eq!(
        check("/oauth2/callback?error=access_denied&state=x&iss=http%3A%2F%2F127.0.0.1%3A9000")
            .unwrap_err(),
        CallbackError::Refused {
            error: "access_denied".into()
        }
    );
    assert_eq!(
        check("/oauth2/callback?error=access_denied&state=x&iss=http%3A%2F%2Fevil.test")
            .unwrap_err(),
        CallbackError::WrongIssuer
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn return_paths_never_leave_the_origin() {
    for (path, expected) in [
        ("/a/b?c=d", "/a/b?c=d"),
        ("//evil.test/x", "/"),
        ("/\\evil.test", "/"),
        ("https://evil.test/", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
        ("", "/"),
    ] {
        assert_eq!(safe_return_path(path), expected, "{path:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn only_html_navigations_are_redirected() {
    let navigation = request("/", None);
    assert!(is_navigation(&navigation));
    let mut api = vec![
        (":method".to_string(), "GET".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    assert!(!is_navigation(&Headers::new(api.clone())));
    api[1].1 = "text/html".into();
    api.push(("x-requested-with".into(), "XMLHttpRequest".into()));
    assert!(!is_navigation(&Headers::new(api)));
    let post = Headers::new(vec![
        (":method".into(), "POST".into()),
        ("accept".into(), "text/html".into()),
    ]);
    assert!(!is_navigation(&post));
}

#[wasm_bindgen_test(unsupported = test)]
fn origin_follows_forwarded_proto() {
    let headers = Headers::new(vec![
        (":scheme".into(), "http".into()),
        ("x-forwarded-proto".into(), "https".into()),
        (":authority".into(), "app.test".into()),
    ]);
    assert_eq!(origin(&headers), "https://app.test");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_pending_login_debug_shows_no_state_nonce_or_verifier() {
    let pending = PendingLogin {
        state: "state-secret".into(),
        nonce: "nonce-secret".into(),
        verifier: "verifier-secret".into(),
        return_to: "/app".into(),
        expires_at: 1,
    };
    let text = format!("{pending:?}");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("/app"), "{text}");
}

fn domain_config() -> Config {
    Config::parse(
        br#"{"oidc":{"issuer":"http://127.0.0.1:9000","clientId":"app","clientSecret":"s3cret",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
            "cookieDomain":".example.test","cookieSecure":false,
            "redirectUri":"http://auth.example.test:8080/oauth2/callback"}}"#,
    )
    .unwrap()
}

fn on_host(authority: &str, path: &str, cookie: Option<&str>) -> Headers {
    let mut pairs = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
        ("accept", "text/html"),
    ];
    if let Some(cookie) = cookie {
        pairs.push(("cookie", cookie));
    }
    Headers::of(&pairs)
}

fn random_with_state(first: u8) -> LoginRandom {
    LoginRandom {
        state: [first; 32],
        ..random()
    }
}

/// A login from another host of the domain: the one redirect URI, an absolute
/// return URL, and a login cookie of its own for the whole domain.
#[wasm_bindgen_test(unsupported = test)]
fn with_redirect_uri_every_host_sends_the_one_callback() {
    let config = domain_config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let keys = keys(&config);
    let redirect = start(
        oidc,
        &provider(),
        &keys,
        &on_host("a.example.test:8080", "/reports?id=7", None),
        &random(),
        NOW,
    )
    .unwrap();
    let location = HttpUrl::parse(&redirect.location).unwrap();
    assert_eq!(
        query_value(&location, "redirect_uri"),
        "http://auth.example.test:8080/oauth2/callback"
    );
    let state = query_value(&location, "state");
    let cookie = &redirect.set_cookies[0];
    let name = format!("oidc_session_login_{}", &state[..8]);
    assert!(cookie.starts_with(&format!("{name}=")), "{cookie}");
    assert!(cookie.contains("; Domain=.example.test"), "{cookie}");
    assert_eq!(redirect.set_cookies.len(), 1);

    let pair = cookie.split(';').next().unwrap();
    let callback = on_host(
        "auth.example.test:8080",
        &format!("/oauth2/callback?code=abc&state={state}"),
        Some(&format!("theme=dark; {pair}")),
    );
    let checked = check_callback(oidc, &provider(), &keys, &callback, NOW + 10).unwrap();
    assert_eq!(
        checked.pending.return_to,
        "http://a.example.test:8080/reports?id=7"
    );

    // The sealed value is bound to its cookie's name: under another login's name
    // it opens nothing.
    let renamed = pair.replacen(&name, "oidc_session_login_AAAAAAAA", 1);
    let other_state = format!("AAAAAAAA{}", &state[8..]);
    let moved = on_host(
        "auth.example.test:8080",
        &format!("/oauth2/callback?code=abc&state={other_state}"),
        Some(&renamed),
    );
    assert_eq!(
        check_callback(oidc, &provider(), &keys, &moved, NOW + 10),
        Err(CallbackError::NoPendingLogin)
    );
}

/// Two tabs logging in at once (two apps of the domain): each callback finds its
/// own login, whichever ends first.
#[wasm_bindgen_test(unsupported = test)]
fn logins_in_flight_do_not_meet() {
    let config = domain_config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let keys = keys(&config);
    let mut jar = Vec::new();
    let mut states = Vec::new();
    for (host, first) in [("a.example.test:8080", 1), ("b.example.test:8080", 2)] {
        let cookie = (!jar.is_empty()).then(|| jar.join("; "));
        let redirect = start(
            oidc,
            &provider(),
            &keys,
            &on_host(host, "/", cookie.as_deref()),
            &random_with_state(first),
            NOW,
        )
        .unwrap();
        jar.push(
            redirect.set_cookies[0]
                .split(';')
                .next()
                .unwrap()
                .to_string(),
        );
        states.push(query_value(
            &HttpUrl::parse(&redirect.location).unwrap(),
            "state",
        ));
    }
    let cookie = jar.join("; ");
    for (state, host) in states.iter().zip(["a", "b"]).rev() {
        let callback = on_host(
            "auth.example.test:8080",
            &format!("/oauth2/callback?code=c&state={state}"),
            Some(&cookie),
        );
        let checked = check_callback(oidc, &provider(), &keys, &callback, NOW + 1).unwrap();
        assert_eq!(
            checked.pending.return_to,
            format!("http://{host}.example.test:8080/")
        );
    }
}

/// Abandoned logins cannot pile up cookies: the one past the bound expires them.
#[wasm_bindgen_test(unsupported = test)]
fn abandoned_logins_are_bounded() {
    let config = domain_config();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let in_flight: Vec<String> = (0..MAX_LOGINS_IN_FLIGHT)
        .map(|n| format!("oidc_session_login_{n:08}=x"))
        .collect();
    let cookie = in_flight.join("; ");
    let redirect = start(
        oidc,
        &provider(),
        &keys(&config),
        &on_host("a.example.test", "/", Some(&cookie)),
        &random(),
        NOW,
    )
    .unwrap();
    assert_eq!(redirect.set_cookies.len(), 1 + MAX_LOGINS_IN_FLIGHT);
    assert!(redirect.set_cookies[1..]
        .iter()
        .all(|c| c.starts_with("oidc_session_login_0") && c.contains("Max-Age=0")));
}
