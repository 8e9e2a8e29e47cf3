//! Token parsing and verification against the fixed test key set, then the whole
//! bearer path (extraction, rule choice, claims, output headers, authorization)
//! through `pipeline::decide` with a fixed configuration.
//!
//! First byte: how the rest becomes a request.
//! - 0: the rest is a token, sent as `Authorization: Bearer <token>`.
//! - 1: the rest is a token in another location (query parameter, cookie, `x-jwt`).
//! - 2: the rest is a JWT payload, signed by the harness with the Ed25519 test key
//!   (header `{"alg":"EdDSA","kid":"kid-EdDSA"}`), so fuzzed claims pass the signature.
//! - 3: like 2, with the header JSON before the first newline and the payload after.
#![no_main]

use fuzz_support::{
    assert_safe_header_value, config, headers, key_set, sign_ed25519, FixedRemote, NOW,
};
use libfuzzer_sys::fuzz_target;
use oidc_filter::oidc::flow::HostCrypto;
use oidc_filter::peer::Peer;
use oidc_filter::pipeline::VmState;
use oidc_filter::pipeline::{self, Inputs, Verdict};
use oidc_filter::signature_backend::SignatureBackend;
use oidc_filter::{token, verifier};
use url::form_urlencoded;

struct Zeros;

impl HostCrypto for Zeros {
    fn fill(&mut self, bytes: &mut [u8]) -> bool {
        bytes.fill(0);
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode % 4 {
        0 | 1 => String::from_utf8_lossy(rest).into_owned(),
        2 => sign_ed25519(br#"{"alg":"EdDSA","kid":"kid-EdDSA"}"#, rest),
        _ => {
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let (header, payload) = rest.split_at(split);
            sign_ed25519(header, payload.get(1..).unwrap_or_default())
        }
    };

    if let Ok(jws) = token::parse(&token, 16 * 1024) {
        assert!(token.starts_with(jws.signing_input));
        assert_eq!(jws.signing_input.matches('.').count(), 1);
        assert!(jws.signing_input.ends_with(jws.payload_segment));
        let _ = verifier::verify_with_set(key_set(), &jws, &SignatureBackend::MODULE);
    }

    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let mut pairs = vec![
        (":method", "GET".to_string()),
        (":authority", "app.test".to_string()),
    ];
    match (mode % 4, (mode >> 2) % 3) {
        (1, 0) => pairs.push((":path", format!("/api/data?x=1&access_token={encoded}"))),
        (1, 1) => {
            pairs.push((":path", "/admin/x".to_string()));
            pairs.push(("cookie", format!("a=b; jwt={token}; c=d")));
        }
        (1, _) => {
            pairs.push((":path", "/api/data".to_string()));
            pairs.push(("x-jwt", token.clone()));
        }
        _ => {
            pairs.push((":path", "/api/data".to_string()));
            pairs.push(("authorization", format!("Bearer {token}")));
        }
    }
    pairs.push(("x-sub", "spoofed".to_string()));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let request = headers(&pairs);
    let inputs = Inputs {
        config: config(),
        app: &config().top_level,
        headers: &request,
        keys: &FixedRemote,
        provider: None,
        peer: &Peer::default(),
        now_ms: NOW * 1000,
        final_attempt: false,
    };
    match pipeline::decide(&inputs, &mut VmState::new(config(), [5; 16]), &mut Zeros) {
        Verdict::Allow { edits, .. } => {
            assert!(
                edits.remove.iter().any(|name| name == "x-sub"),
                "client copy kept"
            );
            for (name, value) in &edits.set {
                assert_safe_header_value(name, value);
            }
        }
        Verdict::Deny(denial) => {
            for (name, value) in &denial.headers {
                assert_safe_header_value(name, value);
            }
        }
        _ => {}
    }
});
