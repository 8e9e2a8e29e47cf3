//! JWKS documents: `jwks::parse_jwks` on arbitrary bytes; every key it accepts is
//! then used to select candidates and verify a fixed message with a junk signature
//! (odd RSA moduli and exponents, edge-case curve points).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_filter::jwks::{self, MAX_CANDIDATES, MAX_KEYS};
use oidc_filter::token::Algorithm;
use oidc_filter::verifier;

const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

fuzz_target!(|data: &[u8]| {
    let Ok(set) = jwks::parse_jwks(data, 1 << 20) else {
        return;
    };
    assert!(!set.keys().is_empty());
    assert!(set.keys().len() <= MAX_KEYS);
    let signature = [0x5a_u8; 512];
    for algorithm in ALGORITHMS {
        for kid in [None, Some("kid-RS256"), Some("")] {
            let candidates = set.candidates(algorithm, kid);
            assert!(candidates.len() <= MAX_CANDIDATES);
            for jwk in candidates {
                assert!(jwk.alg.is_none_or(|alg| alg == algorithm));
                for length in [0, 64, 96, 256, 512] {
                    let message = b"eyJhbGciOiJSUzI1NiJ9.e30";
                    assert!(!verifier::verify(
                        algorithm,
                        &jwk.key,
                        message,
                        &signature[..length]
                    ));
                }
            }
        }
    }
});
