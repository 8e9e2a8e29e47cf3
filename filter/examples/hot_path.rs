//! What the core spends on one request whose token is already cached: headers in,
//! `pipeline::decide`, edits out — without Envoy's own per-call costs.
//!
//! Built for wasm32-wasip1 and run under Node's V8 (`make bench-crypto` runs it
//! after `verify_speed`), it splits `make bench`'s hot-path gap to the no-op Wasm
//! filter into the filter's own work and the host calls around it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use jwt_simple::prelude::*;
use oidc_filter::authenticator::{KeyLookup, Keys};
use oidc_filter::config::Config;
use oidc_filter::oidc::flow::HostCrypto;
use oidc_filter::peer::Peer;
use oidc_filter::pipeline::{decide, Inputs, Verdict, VmState};
use oidc_filter::request::Headers;
use std::time::Instant;

const P256_PEM: &str = include_str!("../testdata/p256.pem");
const RSA_PEM: &str = include_str!("../testdata/rsa2048.pem");
const ISSUER: &str = "https://bench.example.test";

struct NoRemote;

impl KeyLookup for NoRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Failed
    }
}

struct NoEntropy;

impl HostCrypto for NoEntropy {
    fn fill(&mut self, _bytes: &mut [u8]) -> bool {
        false
    }
}

/// A request as a browser or client library sends it, with the token.
fn request(token: &str) -> Vec<(String, String)> {
    [
        (":authority", "api.example.test"),
        (":path", "/orders/42?expand=items"),
        (":method", "GET"),
        (":scheme", "https"),
        ("user-agent", "bench-client/1.0"),
        ("accept", "application/json"),
        ("x-request-id", "5f0c7a36-2b1e-4c4e-9d5a-0e5b1c8f9a10"),
        ("x-forwarded-proto", "https"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .chain([("authorization".into(), format!("Bearer {token}"))])
    .collect()
}

fn time_per_call(mut call: impl FnMut()) -> f64 {
    let start = Instant::now();
    while start.elapsed().as_millis() < 300 {
        call();
    }
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed().as_millis() < 1000 || runs < 10 {
        call();
        runs += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
}

/// A token signed by `alg` and a one-rule configuration trusting its key; with
/// `introspection`, an introspection rule for opaque tokens in the same header too.
fn token_and_config(alg: &str, cache_entries: usize, introspection: bool) -> (String, Config) {
    let claims = || {
        Claims::create(Duration::from_hours(1))
            .with_issuer(ISSUER)
            .with_audience("bench-api")
            .with_subject("user-1")
    };
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let (token, jwk) = if alg == "RS256" {
        let key = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("k1");
        let public = key.public_key().to_components();
        let jwk = serde_json::json!({"kty": "RSA", "kid": "k1", "n": b64(&public.n), "e": b64(&public.e)});
        (key.sign(claims()).unwrap(), jwk)
    } else {
        let key = ES256KeyPair::from_pem(P256_PEM).unwrap().with_key_id("k1");
        let point = key.public_key().public_key().to_bytes_uncompressed();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": b64(&point[1..33]), "y": b64(&point[33..])});
        (key.sign(claims()).unwrap(), jwk)
    };
    let jwks = serde_json::json!({ "keys": [jwk] });
    let mut text = serde_json::json!({"jwtRules": [{"issuer": ISSUER, "audiences": ["bench-api"],
        "jwks": jwks.to_string()}], "verifiedTokenCache": {"maxEntries": cache_entries}});
    if introspection {
        text["introspection"] = serde_json::json!([{"issuer": "https://opaque.example.test",
            "introspectionEndpoint": "https://opaque.example.test/introspect",
            "clientId": "gateway", "clientSecret": "bench-secret"}]);
    }
    (token, Config::parse(text.to_string().as_bytes()).unwrap())
}

/// Microseconds per `decide` for `alg`'s token, cached or not.
fn decide_time(alg: &str, cached: bool, introspection: bool) -> (f64, usize) {
    let (token, config) = token_and_config(alg, if cached { 8192 } else { 0 }, introspection);
    let mut vm = VmState::new(&config, [7; 16]);
    let now_ms = Clock::now_since_epoch().as_millis();
    let pairs = request(&token);
    let micros = time_per_call(|| {
        let headers = Headers::new(pairs.clone());
        let inputs = Inputs {
            config: &config,
            app: &config.top_level,
            headers: &headers,
            keys: &NoRemote,
            provider: None,
            peer: &Peer::default(),
            now_ms,
            final_attempt: false,
        };
        let verdict = decide(&inputs, &mut vm, &mut NoEntropy);
        assert!(matches!(verdict, Verdict::Allow { .. }), "{verdict:?}");
    });
    (micros, token.len())
}

fn main() {
    let (token, _) = token_and_config("ES256", 0, false);
    let pairs = request(&token);
    let headers_only = time_per_call(|| {
        std::hint::black_box(Headers::new(pairs.clone()));
    });
    println!("headers   {headers_only:6.2} us to copy a request's 9 headers in");
    for alg in ["ES256", "RS256"] {
        for cached in [true, false] {
            let (micros, bytes) = decide_time(alg, cached, false);
            let path = if cached { "hot " } else { "cold" };
            println!("{alg} {path} decide {micros:6.2} us per request ({bytes}-byte token)");
        }
    }
    // With an introspection rule configured, a JWT's hot path must stay the hot path:
    // the verified-token cache is asked before the token is parsed for its `iss`.
    let (micros, bytes) = decide_time("ES256", true, true);
    println!("ES256 hot  decide {micros:6.2} us per request ({bytes}-byte token), introspection rules configured");
}
