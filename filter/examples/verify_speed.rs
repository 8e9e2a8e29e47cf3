//! Signature verification speed, per algorithm, through the filter's own path
//! (`jwks::parse_jwks` then `verifier::verify`).
//!
//! Built for wasm32-wasip1 and run under Node's V8 it shows what one verification
//! costs inside Envoy's Wasm runtime: `make bench-crypto`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use jwt_simple::prelude::*;
use oidc_filter::jwks::parse_jwks;
use oidc_filter::token::Algorithm;
use oidc_filter::verifier::verify;
use std::time::Instant;

const RSA_PEM: &str = include_str!("../testdata/rsa2048.pem");
const P256_PEM: &str = include_str!("../testdata/p256.pem");
const P384_PEM: &str = include_str!("../testdata/p384.pem");
const ED25519_PEM: &str = include_str!("../testdata/ed25519.pem");

/// A signed token split into signing input and signature, and its key as a JWKS.
struct Case {
    name: &'static str,
    algorithm: Algorithm,
    jwks: String,
    token: String,
}

fn jwk_of(public: serde_json::Value) -> String {
    serde_json::json!({ "keys": [public] }).to_string()
}

fn cases() -> Vec<Case> {
    let claims = || Claims::create(Duration::from_hours(1)).with_issuer("https://issuer.example");
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap();
    let rsa_public = rsa.public_key().to_components();
    let rsa_jwks =
        jwk_of(serde_json::json!({"kty": "RSA", "n": b64(&rsa_public.n), "e": b64(&rsa_public.e)}));
    let ps = PS256KeyPair::from_pem(RSA_PEM).unwrap();
    let p256 = ES256KeyPair::from_pem(P256_PEM).unwrap();
    let p256_point = p256.public_key().public_key().to_bytes_uncompressed();
    let p384 = ES384KeyPair::from_pem(P384_PEM).unwrap();
    let p384_point = p384.public_key().public_key().to_bytes_uncompressed();
    let ed = Ed25519KeyPair::from_pem(ED25519_PEM).unwrap();
    let ed_public = ed.public_key().to_bytes();
    vec![
        Case {
            name: "RS256",
            algorithm: Algorithm::Rs256,
            jwks: rsa_jwks.clone(),
            token: rsa.sign(claims()).unwrap(),
        },
        Case {
            name: "PS256",
            algorithm: Algorithm::Ps256,
            jwks: rsa_jwks,
            token: ps.sign(claims()).unwrap(),
        },
        Case {
            name: "ES256",
            algorithm: Algorithm::Es256,
            jwks: jwk_of(
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&p256_point[1..33]), "y": b64(&p256_point[33..])}),
            ),
            token: p256.sign(claims()).unwrap(),
        },
        Case {
            name: "ES384",
            algorithm: Algorithm::Es384,
            jwks: jwk_of(
                serde_json::json!({"kty": "EC", "crv": "P-384", "x": b64(&p384_point[1..49]), "y": b64(&p384_point[49..])}),
            ),
            token: p384.sign(claims()).unwrap(),
        },
        Case {
            name: "EdDSA",
            algorithm: Algorithm::EdDsa,
            jwks: jwk_of(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&ed_public)})),
            token: ed.sign(claims()).unwrap(),
        },
    ]
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).collect();
    for case in cases() {
        if !filter.is_empty() && !filter.iter().any(|name| name == case.name) {
            continue;
        }
        let set = parse_jwks(case.jwks.as_bytes(), 1 << 20).unwrap();
        let key = &set.keys()[0].key;
        let (input, signature) = case.token.rsplit_once('.').unwrap();
        let signature = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(signature)
                .unwrap()
        };
        // The first verification builds lazily made tables (per VM and per key).
        let first_start = Instant::now();
        assert!(verify(case.algorithm, key, input.as_bytes(), &signature));
        let first_micros = first_start.elapsed().as_secs_f64() * 1e6;
        // Warm up (JIT tiers, lazily built tables), then time a fixed wall-clock budget.
        let start = Instant::now();
        let mut warm = 0u32;
        while start.elapsed().as_millis() < 300 {
            assert!(verify(case.algorithm, key, input.as_bytes(), &signature));
            warm += 1;
        }
        let start = Instant::now();
        let mut runs = 0u32;
        while start.elapsed().as_millis() < 1000 || runs < 10 {
            assert!(verify(case.algorithm, key, input.as_bytes(), &signature));
            runs += 1;
        }
        let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
        let parse_start = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(parse_jwks(case.jwks.as_bytes(), 1 << 20).unwrap());
        }
        let parse_micros = parse_start.elapsed().as_secs_f64() * 1e6 / 20.0;
        // A freshly parsed key, once the VM-wide tables exist: what a key rotation costs.
        let fresh = parse_jwks(case.jwks.as_bytes(), 1 << 20).unwrap();
        let fresh_start = Instant::now();
        assert!(verify(
            case.algorithm,
            &fresh.keys()[0].key,
            input.as_bytes(),
            &signature
        ));
        let fresh_micros = fresh_start.elapsed().as_secs_f64() * 1e6;
        println!("{:<6} verify {micros:>9.1} us  (jwks parse {parse_micros:>8.1} us, {runs} runs, {warm} warm-up)", case.name);
        println!("{:<6} first verify {first_micros:>9.1} us in the VM, {fresh_micros:>9.1} us with a new key", case.name);
    }
}
