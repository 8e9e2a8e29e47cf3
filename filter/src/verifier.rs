//! Signature verification over a JWS signing input.
//!
//! Works at the level of (algorithm, key, message, signature) so that the Wycheproof
//! vectors exercise exactly the code that verifies tokens. Only public data passes
//! through here.

use crate::crypto::ed25519;
use crate::crypto::rsa::{verify_pkcs1v15, verify_pss, Hash};
use crate::jwks::{Jwk, KeySet, PublicKey};
use crate::response::AuthError;
use crate::signature_backend::SignatureBackend;
use crate::token::{Algorithm, Jws};

/// True when `signature` is a valid `algorithm` signature of `message` under `key`.
/// A key of the wrong type for the algorithm never verifies.
pub fn verify(algorithm: Algorithm, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match (algorithm, key) {
        (Algorithm::Rs256, PublicKey::Rsa(key)) => {
            verify_pkcs1v15(key, Hash::Sha256, message, signature)
        }
        (Algorithm::Rs384, PublicKey::Rsa(key)) => {
            verify_pkcs1v15(key, Hash::Sha384, message, signature)
        }
        (Algorithm::Rs512, PublicKey::Rsa(key)) => {
            verify_pkcs1v15(key, Hash::Sha512, message, signature)
        }
        (Algorithm::Ps256, PublicKey::Rsa(key)) => {
            verify_pss(key, Hash::Sha256, message, signature)
        }
        (Algorithm::Ps384, PublicKey::Rsa(key)) => {
            verify_pss(key, Hash::Sha384, message, signature)
        }
        (Algorithm::Ps512, PublicKey::Rsa(key)) => {
            verify_pss(key, Hash::Sha512, message, signature)
        }
        (Algorithm::Es256, PublicKey::P256(key)) => key.verify(message, signature),
        (Algorithm::Es384, PublicKey::P384(key)) => key.verify(message, signature),
        (Algorithm::EdDsa, PublicKey::Ed25519(key)) => key.verify(message, signature),
        _ => false,
    }
}

/// Verifies a parsed token with a key set, selecting keys as Envoy does: no
/// fitting key is `KidAlgMismatch`, fitting keys that all fail is `VerificationFails`.
/// `backend` says whether the host or the module checks RS* and ES* signatures.
pub fn verify_with_set(
    set: &KeySet,
    jws: &Jws,
    backend: &SignatureBackend,
) -> Result<(), AuthError> {
    let candidates = set.candidates(jws.algorithm, jws.kid.as_deref());
    if candidates.is_empty() {
        return Err(AuthError::KidAlgMismatch);
    }
    // jwt_verify_lib reports this apart from a failed signature.
    if jws.algorithm == Algorithm::EdDsa && jws.signature.len() != ed25519::SIGNATURE_BYTES {
        return Err(AuthError::Ed25519WrongLength);
    }
    let message = jws.signing_input.as_bytes();
    let verified = |jwk: &&Jwk| {
        backend
            .host_verdict(jws.algorithm, jwk, message, &jws.signature)
            .unwrap_or_else(|| verify(jws.algorithm, &jwk.key, message, &jws.signature))
    };
    if candidates.iter().any(verified) {
        Ok(())
    } else {
        Err(AuthError::VerificationFails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::TestKey;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn every_algorithm_verifies_its_own_signature_and_rejects_changes() {
        for key in TestKey::all() {
            let (message, signature) = key.signed_message();
            let message = message.as_bytes();
            let public = key.public_key();
            assert!(
                verify(key.algorithm, &public, message, &signature),
                "{:?}",
                key.algorithm
            );
            assert!(!verify(
                key.algorithm,
                &public,
                b"header.payloaD",
                &signature
            ));
            let mut flipped = signature.clone();
            if let Some(last) = flipped.last_mut() {
                *last ^= 1;
            }
            assert!(!verify(key.algorithm, &public, message, &flipped));
            assert!(!verify(key.algorithm, &public, message, &signature[1..]));
            assert!(!verify(key.algorithm, &public, message, &[]));
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_key_of_another_type_never_verifies() {
        let keys = TestKey::all();
        for signer in &keys {
            let (message, signature) = signer.signed_message();
            for other in &keys {
                if std::mem::discriminant(&other.public_key())
                    != std::mem::discriminant(&signer.public_key())
                {
                    let other_key = other.public_key();
                    assert!(!verify(
                        signer.algorithm,
                        &other_key,
                        message.as_bytes(),
                        &signature
                    ));
                }
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ecdsa_zero_signature_is_rejected() {
        // CVE-2022-21449: r = s = 0 must never verify.
        for key in TestKey::all() {
            let public = key.public_key();
            let zeros = match key.algorithm {
                Algorithm::Es256 => vec![0u8; 64],
                Algorithm::Es384 => vec![0u8; 96],
                _ => continue,
            };
            assert!(!verify(key.algorithm, &public, b"anything", &zeros));
        }
    }
}
