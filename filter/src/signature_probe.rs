//! The known-answer probe that decides, once per plugin at load, whether the host
//! verifies RS* and ES* signatures: for each family, a built-in key and message
//! with one valid signature that must verify and two alterations (signature,
//! message) that must not. A host that lacks `verify_signature` (Envoy before
//! 1.31), fails, or calls everything valid leaves that family to the module.
//!
//! The probe goes through the very path tokens take (the key's SubjectPublicKeyInfo
//! as `jwks` builds it, `signature_backend::ask_host` for the call), so a host that
//! passes it has verified exactly what it will be given later.

use crate::crypto::der::{self, Curve};
use crate::crypto::ec::P256Key;
use crate::crypto::rsa::RsaPublicKey;
use crate::jwks::{Jwk, PublicKey};
use crate::signature_backend::{
    ask_host, Family, HostVerify, SignatureBackend, SignatureVerification,
};
use crate::token::Algorithm;
use std::sync::Arc;

/// The vectors, generated once with Python's `cryptography` (OpenSSL):
/// `rsa.generate_private_key(65537, 2048)` signing `MESSAGE` with PKCS#1 v1.5 and
/// SHA-256, `ec.generate_private_key(SECP256R1())` with ECDSA and SHA-256 (`r || s`).
/// The private keys were discarded.
pub(crate) mod vectors {
    pub const MESSAGE: &[u8] = b"oidc-filter known-answer probe";
    pub const RSA_N: &str = "dadd6324b88f00cc6f973fbfdeee7c93fc49a6c192dce7091591687b0e871f8e65f1f114c4ce3acd40e8427f5c9c11bc276a2f9b22d553f545b1f9f22b2d9e6c7a10b96e9eed5847572176a406f927f7271fa259b04a7a31ce19d5cd825b87c4eed430375e0befffe014aef4d267b18a91c1b3f56892141aa3b80cf9ee21f365c9f07b01c827f6500a6c0a111e35b641ca1cb526e55060b0d58c44e00d5d7376a9e5b7661d67b23a5162126bc6d99a98c463b861a3902d4a72cbd98e928cc736e7dab7bd39faf646524532ae2cdc94e0f6597436f4cf6c64d0973d3beb1076086c1c985e9a34f0a68c480e4640e96cfc4130bab4b875da604175bb56e74dfb95";
    pub const RSA_E: &str = "010001";
    pub const RSA_SIGNATURE: &str = "d7ce39722d998a2740706af7d59fa426ed530c08ff2d8c7b5aad98220cb7320f418d67d7933eab525c4e3e3b9c5d95b43b661a7ef66a3bc49876290a5130781e75cd3ed78f4f925a17e785b51368c430e974861f53309773c9d6847d132631a837b5b4d71ebcbd2b683e2b7d194f107881dc171c934d9ef1020c80081864e326dbb1d94946fab44d0fbebefc1a85099a7520f9799ed56d7b9f7fd55b2feeaa663362ce5184150921c7f986b4694b7ecf7ab41ae5ed1af989fbdb6c38e783a96a82ceb39c0859db32306a01e78c9d2b0e082cb2530092adff2357f04fda266e6907cef634a1d5dbcd8b18d69c53405253b426db0591eafb0bf03e56a4a51b6248";
    pub const P256_X: &str = "a70171f2fcf940ea57fa9d46f1f705d8cbcdd25b64ef54dfe38c8ecd04e3620d";
    pub const P256_Y: &str = "0deab2d5c357aceaf96a51b69b653567b4748d42062aba421b53d7c30cfc789c";
    pub const P256_SIGNATURE: &str = "cecac0820906a683b935b898a8452190925e9d054cbf2849b5bcb9fdcd1bd6aa8b0faa656e4d94aff97e04426d52b0ddf8755834ebc9965b5b139b1277f63cfd";
    /// The order n of P-256 (FIPS 186-4 D.1.2.3), for tests of r, s bounds.
    #[cfg(test)]
    pub const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
}

/// Hex as bytes; the vectors above are well-formed, and a bad digit would only
/// make the probe fail (module in charge), never panic.
fn unhex(text: &str) -> Vec<u8> {
    let digit = |byte: u8| char::from(byte).to_digit(16).unwrap_or(0) as u8;
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .fold(0u8, |value, &byte| value << 4 | digit(byte))
        })
        .collect()
}

/// The family's built-in key (as `jwks` makes it), algorithm and valid signature.
fn known_answer(family: Family) -> Option<(Jwk, Algorithm, Vec<u8>)> {
    use vectors::*;
    let (key, spki, algorithm, signature) = match family {
        Family::Rsa => {
            let (n, e) = (unhex(RSA_N), unhex(RSA_E));
            let key = PublicKey::Rsa(RsaPublicKey::new(&n, &e).ok()?);
            (key, der::rsa_spki(&n, &e), Algorithm::Rs256, RSA_SIGNATURE)
        }
        Family::Ec => {
            let (x, y) = (unhex(P256_X), unhex(P256_Y));
            let key = PublicKey::P256(P256Key::from_coordinates(&x, &y)?);
            let spki = der::ec_spki(Curve::P256, &x, &y);
            (key, spki, Algorithm::Es256, P256_SIGNATURE)
        }
    };
    let jwk = Jwk {
        kid: None,
        alg: None,
        key,
        spki: Some(Arc::from(spki)),
    };
    Some((jwk, algorithm, unhex(signature)))
}

/// `Ok` when the host verifies this family correctly; else why not, for the log.
pub fn probe(host: HostVerify, family: Family) -> Result<(), String> {
    let (jwk, algorithm, signature) =
        known_answer(family).ok_or("the built-in key does not parse")?;
    let message = vectors::MESSAGE;
    match ask_host(host, algorithm, &jwk, message, &signature) {
        Ok(true) => {}
        Ok(false) => return Err("the host rejects a valid signature".into()),
        Err(failure) => return Err(failure.0),
    }
    // The last byte of s (or of the RSA signature) flipped: still well-formed,
    // so the host, not the module's form checks, must reject it.
    let mut altered = signature.clone();
    if let Some(last) = altered.last_mut() {
        *last ^= 1;
    }
    let altered_message = [message, b"!"].concat();
    for (what, message, signature) in [
        ("an altered signature", message, &altered),
        ("an altered message", &altered_message[..], &signature),
    ] {
        match ask_host(host, algorithm, &jwk, message, signature) {
            Ok(false) => {}
            Ok(true) => return Err(format!("the host accepts {what}")),
            Err(failure) => return Err(failure.0),
        }
    }
    Ok(())
}

/// Who verifies what under `mode` (the host probed through `probe_with` unless
/// `module`; `verify_with`, the same call with failures counted, then serves
/// tokens), and the line for the log; `Err` (naming the field) when `host` is
/// asked for and a probe fails.
pub fn select(
    mode: SignatureVerification,
    probe_with: HostVerify,
    verify_with: HostVerify,
) -> Result<(SignatureBackend, String), String> {
    if mode == SignatureVerification::Module {
        return Ok((
            SignatureBackend::MODULE,
            "signature verification: module (signatureVerification: module)".into(),
        ));
    }
    let mut backend = SignatureBackend::MODULE;
    let mut on_host = Vec::new();
    let mut refused = Vec::new();
    for family in [Family::Rsa, Family::Ec] {
        match probe(probe_with, family) {
            Ok(()) => {
                match family {
                    Family::Rsa => backend.rsa = Some(verify_with),
                    Family::Ec => backend.ec = Some(verify_with),
                }
                // `auto` keeps ES384 in the module, which is faster for it.
                backend.es384_on_host = mode == SignatureVerification::Host;
                on_host.push(match family {
                    Family::Ec if !backend.es384_on_host => "ES256",
                    family => family.names(),
                });
            }
            Err(why) if mode == SignatureVerification::Host => {
                return Err(format!(
                    "signatureVerification: `host`, but the host cannot verify {}: {why}",
                    family.names()
                ));
            }
            Err(why) => refused.push(format!("{}: {why}", family.names())),
        }
    }
    let line = match (on_host.is_empty(), refused.is_empty()) {
        (true, _) => format!(
            "signature verification: module (host probe failed: {})",
            refused.join("; ")
        ),
        (false, true) => format!(
            "signature verification: host BoringSSL for {} (probe passed)",
            on_host.join(", ")
        ),
        (false, false) => format!(
            "signature verification: host BoringSSL for {} (probe passed), module for the rest \
             (host probe failed: {})",
            on_host.join(", "),
            refused.join("; ")
        ),
    };
    Ok((backend, line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature_backend::HostFailure;
    use crate::verifier;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn the_module_agrees_with_the_known_answers() {
        for family in [Family::Rsa, Family::Ec] {
            let (jwk, algorithm, signature) = known_answer(family).unwrap();
            let message = vectors::MESSAGE;
            assert!(verifier::verify(algorithm, &jwk.key, message, &signature));
            let mut altered = signature.clone();
            *altered.last_mut().unwrap() ^= 1;
            assert!(!verifier::verify(algorithm, &jwk.key, message, &altered));
            assert!(!verifier::verify(algorithm, &jwk.key, b"other", &signature));
        }
    }

    /// A host as BoringSSL should be: valid exactly for the known answers.
    fn knowing_host(
        hash: &str,
        spki: &[u8],
        signature: &[u8],
        message: &[u8],
    ) -> Result<bool, HostFailure> {
        let known = [Family::Rsa, Family::Ec].map(|family| known_answer(family).unwrap());
        Ok(hash == "sha256"
            && message == vectors::MESSAGE
            && known.iter().any(|(jwk, algorithm, valid)| {
                let sent = if *algorithm == Algorithm::Es256 {
                    let (r, s) = valid.split_at(32);
                    crate::crypto::der::ecdsa_signature(r, s)
                } else {
                    valid.clone()
                };
                jwk.spki.as_deref() == Some(spki) && sent == signature
            }))
    }

    fn yes_host(_: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<bool, HostFailure> {
        Ok(true)
    }

    fn no_host(_: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<bool, HostFailure> {
        Ok(false)
    }

    fn absent_host(_: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<bool, HostFailure> {
        Err(HostFailure("no verify_signature".into()))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_a_host_that_knows_the_answers_passes() {
        for family in [Family::Rsa, Family::Ec] {
            assert_eq!(probe(knowing_host, family), Ok(()));
            assert_eq!(
                probe(yes_host, family),
                Err("the host accepts an altered signature".into())
            );
            assert_eq!(
                probe(no_host, family),
                Err("the host rejects a valid signature".into())
            );
            assert_eq!(
                probe(absent_host, family),
                Err("no verify_signature".into())
            );
        }
    }

    /// Passes the RSA probe only.
    fn rsa_only_host(
        hash: &str,
        spki: &[u8],
        signature: &[u8],
        message: &[u8],
    ) -> Result<bool, HostFailure> {
        if spki.len() < 100 {
            return Err(HostFailure("no EC here".into()));
        }
        knowing_host(hash, spki, signature, message)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn auto_takes_what_passes_host_insists_module_never_asks() {
        use SignatureVerification::*;
        let (backend, line) = select(Auto, knowing_host, knowing_host).unwrap();
        assert!(backend.rsa.is_some() && backend.ec.is_some() && !backend.es384_on_host);
        assert_eq!(
            line,
            "signature verification: host BoringSSL for RS*, ES256 (probe passed)"
        );
        let (backend, line) = select(Auto, rsa_only_host, rsa_only_host).unwrap();
        assert!(backend.rsa.is_some() && backend.ec.is_none());
        assert!(
            backend.uses_host(),
            "one family on the host is the host in use"
        );
        assert_eq!(
            line,
            "signature verification: host BoringSSL for RS* (probe passed), module for \
             the rest (host probe failed: ES*: no EC here)"
        );
        let (backend, line) = select(Auto, absent_host, absent_host).unwrap();
        assert!(!backend.uses_host());
        assert_eq!(
            line,
            "signature verification: module (host probe failed: RS*: no verify_signature; \
             ES*: no verify_signature)"
        );
        let (backend, line) = select(Host, knowing_host, knowing_host).unwrap();
        assert!(backend.rsa.is_some() && backend.ec.is_some() && backend.es384_on_host);
        assert_eq!(
            line,
            "signature verification: host BoringSSL for RS*, ES* (probe passed)"
        );
        assert_eq!(
            select(Host, rsa_only_host, rsa_only_host).unwrap_err(),
            "signatureVerification: `host`, but the host cannot verify ES*: no EC here"
        );
        assert!(select(Host, yes_host, yes_host)
            .unwrap_err()
            .starts_with("signatureVerification: `host`"));
        // `module` never calls the host: a host that would panic is not touched.
        let (backend, line) = select(Module, panicking_host, panicking_host).unwrap();
        assert!(!backend.uses_host());
        assert_eq!(
            line,
            "signature verification: module (signatureVerification: module)"
        );
    }

    fn panicking_host(_: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<bool, HostFailure> {
        panic!("the host was called")
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unhex_never_panics() {
        assert_eq!(unhex("0aff"), [10, 255]);
        assert_eq!(unhex("zz1"), [0, 1]);
        assert_eq!(unhex("A0"), [0xa0]);
    }
}
