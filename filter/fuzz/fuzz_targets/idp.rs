//! What the identity provider and the browser send back during a login.
//!
//! First byte selects the parser; the rest is its input:
//! - 0: token endpoint reply body (`token_endpoint::parse_response`), status from the
//!   next two bytes; an error never repeats a token.
//! - 1: discovery document (`provider::parse`, `fetch::jwks_uri_from_discovery`,
//!   `fetch::on_reply`); accepted endpoints are http(s) URLs with a host.
//! - 2: ID token text (`id_token::validate` and `validate_without_nonce`).
//! - 3: ID token payload signed by the harness with the Ed25519 test key.
//! - 4: callback query string (`login::check_callback`) with a valid login cookie.
//! - 5: login cookie value (`login::check_callback`) with a valid query.
//! - 6: return path (`login::safe_return_path`, `login::start`): never leaves the origin;
//!   as the return URL of a sign-in for a domain (`domain::return_location`), it never
//!   leaves the domain's https hosts, as a browser resolves it.
//! - 7: token endpoint reply through the whole callback (`pipeline::finish_exchange`).
#![no_main]

use fuzz_support::{
    assert_safe_header_value, key_set, oidc_config, provider, sign_ed25519, FixedEntropy,
    FixedRemote, CLIENT_ID, ISSUER, NONCE, NOW,
};
use libfuzzer_sys::fuzz_target;
use oidc_filter::config::{RemoteSource, SourceKind};
use oidc_filter::fetch::{self, Next, Step};
use oidc_filter::http_url::HttpUrl;
use oidc_filter::oidc::id_token::{self, Expectations};
use oidc_filter::signature_backend::SignatureBackend;
use oidc_filter::config::Config;
use oidc_filter::oidc::domain;
use oidc_filter::oidc::login::{self, LoginRandom, PendingLogin};
use oidc_filter::oidc::provider;
use oidc_filter::oidc::token_endpoint;
use oidc_filter::peer::Peer;
use oidc_filter::pipeline::{self, Inputs, Pending, Verdict, VmState};
use oidc_filter::request::Headers;
use oidc_filter::session::seal::CookieKeys;
use serde_json::Value;
use url::Url;

const COOKIE_KEY: [u8; 32] = [1; 32];

fn token_reply(status_bytes: &[u8], body: &[u8]) {
    let status = match status_bytes {
        [0, 0] => None,
        [a, b] => Some(u32::from(u16::from_be_bytes([*a, *b])) % 600),
        _ => Some(200),
    };
    let result = token_endpoint::parse_response(status, body);
    match &result {
        Ok(_) => assert_eq!(status, Some(200)),
        Err(why) => {
            let document: Value = serde_json::from_slice(body).unwrap_or_default();
            let echoed: String = ["token_type", "error"]
                .iter()
                .filter_map(|name| document.get(*name).and_then(Value::as_str))
                .collect();
            for secret in ["access_token", "refresh_token", "id_token"] {
                if let Some(value) = document.get(secret).and_then(Value::as_str) {
                    if value.len() >= 8
                        && !echoed.contains(value)
                        && !"token endpoint".contains(value)
                    {
                        assert!(!why.contains(value), "{secret} in error: {why}");
                    }
                }
            }
        }
    }
}

fn discovery(body: &[u8]) {
    let parsed = provider::parse(body, ISSUER);
    let jwks_uri = fetch::jwks_uri_from_discovery(body, ISSUER);
    if let Ok(provider) = &parsed {
        assert_eq!(provider.issuer, ISSUER);
        let mut urls = vec![
            &provider.authorization_endpoint,
            &provider.token_endpoint,
            &provider.jwks_uri,
        ];
        urls.extend(provider.end_session_endpoint.as_ref());
        for ours in urls {
            // Differential check against the WHATWG parser browsers follow. It
            // also validates punycode (`xn--` labels), which we pass on as DNS names.
            let Ok(whatwg) = Url::parse(&ours.to_string()) else {
                assert!(ours.host().contains("xn--"), "{ours}");
                continue;
            };
            assert_eq!(whatwg.scheme(), ours.scheme().as_str(), "{ours}");
            assert_eq!(whatwg.host_str(), Some(ours.host()), "{ours}");
            assert_eq!(whatwg.port(), ours.port(), "{ours}");
            assert_eq!(whatwg.path(), ours.path(), "{ours}");
            assert_eq!(whatwg.query(), ours.query(), "{ours}");
        }
        if body.len() <= 64 * 1024 {
            assert_eq!(jwks_uri.as_ref().ok(), Some(&provider.jwks_uri));
        }
    }
    let config = oidc_config();
    let source = RemoteSource {
        kind: SourceKind::Discovery {
            issuer: ISSUER.into(),
            url: HttpUrl::parse(ISSUER).unwrap(),
        },
        timeout_ms: 1000,
    };
    match fetch::on_reply(config, &source, Step::Discovery, Some(200), Some(body)) {
        Next::Fetch(Step::Jwks, request) => {
            for (name, value) in &request.headers {
                assert_safe_header_value(name, value);
            }
        }
        Next::Failed(_) => {}
        other => panic!("unexpected step after discovery: {other:?}"),
    }
}

fn expectations(nonce: &str) -> Expectations<'_> {
    Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce,
        now: NOW,
        skew: 60,
        max_bytes: 16 * 1024,
        backend: &SignatureBackend::MODULE,
    }
}

fn id_token_checks(text: &str) {
    let with_nonce = id_token::validate(text, key_set(), &expectations(NONCE));
    let without = id_token::validate_without_nonce(text, key_set(), &expectations(NONCE));
    if let Ok(claims) = &with_nonce {
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
        assert_eq!(claims.get("nonce").and_then(Value::as_str), Some(NONCE));
        assert!(without.is_ok(), "nonce-free validation is never stricter");
    }
    // An empty expected nonce never matches.
    assert!(id_token::validate(text, key_set(), &expectations("")).is_err());
}

fn pending() -> PendingLogin {
    PendingLogin {
        state: "st4te".into(),
        nonce: NONCE.into(),
        verifier: "v3rifier".into(),
        return_to: "/after?login=1".into(),
        expires_at: NOW + 600,
    }
}

fn cookie_keys() -> CookieKeys {
    CookieKeys::new(&[COOKIE_KEY])
}

fn sealed_pending() -> String {
    let oidc = oidc_config().top_level.oidc.as_ref().unwrap();
    cookie_keys()
        .seal(&oidc.login_purpose, &pending().to_json().unwrap(), [5; 12])
        .unwrap()
}

fn callback(query: &str, cookie: &str) {
    let oidc = oidc_config().top_level.oidc.as_ref().unwrap();
    let name = &oidc.login_cookie_name;
    let request = Headers::new(vec![
        (":path".into(), format!("{}?{query}", oidc.callback_path)),
        (":authority".into(), "app.test".into()),
        ("cookie".into(), format!("{name}={cookie}")),
    ]);
    if let Ok(callback) = login::check_callback(oidc, &provider(), &cookie_keys(), &request, NOW) {
        assert_eq!(callback.pending, pending());
    }
}

fn domain_config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = format!(
            r#"{{"oidc":{{"issuer":"{ISSUER}","clientId":"{CLIENT_ID}","clientSecret":"s3cret",
                "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
                "cookieDomain":"example.com",
                "redirectUri":"https://auth.example.com/oauth2/callback"}}}}"#
        );
        Config::parse(text.as_bytes()).unwrap()
    })
}

/// `text` as the sealed return URL of a sign-in for example.com: wherever a
/// browser goes with the `Location` given, it is an https host of the domain.
fn return_url(text: &str) {
    let oidc = domain_config().top_level.oidc.as_ref().unwrap();
    let callback = Headers::new(vec![
        (":scheme".into(), "https".into()),
        (":authority".into(), "auth.example.com".into()),
    ]);
    let base = Url::parse("https://auth.example.com/oauth2/callback").unwrap();
    for return_to in [text.to_string(), format!("https://a.example.com{text}")] {
        let location = domain::return_location(oidc, &callback, &return_to);
        assert_safe_header_value("location", &location);
        if let Ok(target) = base.join(&location) {
            let host = target.host_str().unwrap_or_default();
            assert!(
                target.scheme() == "https"
                    && target.port().is_none()
                    && (host == "example.com" || host.ends_with(".example.com")),
                "{return_to:?} -> {location:?} -> {target}"
            );
        }
    }
}

fn return_path(path: &str) {
    return_url(path);
    let safe = login::safe_return_path(path);
    assert!(safe == "/" || safe == path);
    assert!(
        safe.starts_with('/') && !safe.starts_with("//") && !safe.starts_with("/\\"),
        "{safe:?}"
    );
    assert!(!safe.chars().any(char::is_control), "{safe:?}");
    // As a browser resolves the Location header: it must stay on this origin.
    let base = Url::parse("https://app.test/some/page").unwrap();
    if let Ok(target) = base.join(&safe) {
        assert_eq!(
            target.origin(),
            base.origin(),
            "{safe:?} leaves the origin: {target}"
        );
    }
    // The login redirect built for a request to this path.
    let oidc = oidc_config().top_level.oidc.as_ref().unwrap();
    let request = Headers::new(vec![
        (":path".into(), path.into()),
        (":authority".into(), "app.test".into()),
        (":method".into(), "GET".into()),
    ]);
    let random = LoginRandom {
        state: [1; 32],
        nonce: [2; 32],
        verifier: [3; 32],
        seal_nonce: [4; 12],
    };
    if let Some(redirect) = login::start(oidc, &provider(), &cookie_keys(), &request, &random, NOW)
    {
        assert_safe_header_value("location", &redirect.location);
        for cookie in &redirect.set_cookies {
            assert_safe_header_value("set-cookie", cookie);
        }
        let value = redirect.set_cookies[0].split(';').next().unwrap();
        let (name, sealed) = value.split_once('=').unwrap();
        let plain = cookie_keys()
            .open(name, sealed)
            .expect("own login cookie opens");
        let pending = PendingLogin::from_json(&plain).unwrap();
        assert_eq!(pending.return_to, safe);
    }
}

fn finish_exchange(body: &[u8]) {
    let config = oidc_config();
    let request = Headers::new(vec![
        (":path".into(), "/oauth2/callback?code=c&state=st4te".into()),
        (":authority".into(), "app.test".into()),
    ]);
    let provider = provider();
    let inputs = Inputs {
        config,
        app: config.app_for(&request).unwrap(),
        headers: &request,
        keys: &FixedRemote,
        provider: Some(&provider),
        peer: &Peer::default(),
        now_ms: NOW * 1000,
        final_attempt: false,
    };
    let finished = pipeline::finish_exchange(
        &inputs,
        &Pending::Login(pending()),
        (Some(200), body),
        key_set(),
        &mut VmState::new(config, [5; 16]),
        &mut FixedEntropy,
    );
    if let Verdict::Reply(reply) = &finished.verdict {
        for (name, value) in &reply.headers {
            assert_safe_header_value(name, value);
            if name == "location" && reply.status / 100 == 3 && finished.failure.is_none() {
                assert_eq!(value, "/after?login=1");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 8 {
        0 => token_reply(
            rest.get(..2).unwrap_or_default(),
            rest.get(2..).unwrap_or_default(),
        ),
        1 => discovery(rest),
        2 => id_token_checks(&text),
        3 => id_token_checks(&sign_ed25519(br#"{"alg":"EdDSA","kid":"kid-EdDSA"}"#, rest)),
        4 => callback(&text, &sealed_pending()),
        5 => callback("code=c0de&state=st4te", &text),
        6 => return_path(&text),
        _ => finish_exchange(rest),
    }
});
