//! Which code verifies RS* and ES* signatures: the module's own (`crate::crypto`)
//! or the host's (Envoy's BoringSSL, through the `verify_signature` foreign
//! function), chosen once per plugin after the known-answer probe
//! (`crate::signature_probe`). The host's RSA is PKCS#1 v1.5 only, so PS* stays in
//! the module, as does EdDSA.
//!
//! The host is given only what the module would itself go on to verify: an ES*
//! signature of the wrong length or with r or s outside [1, n) never reaches it,
//! so the two verifiers reject the same malformed signatures the same way.

use crate::crypto::der;
use crate::jwks::{Jwk, PublicKey};
use crate::token::Algorithm;

/// Why the host gave no verdict (call refused, result unreadable or
/// contradictory). Never a pass: the signature counts as not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure(pub String);

/// The host's verifier: (hash name as Envoy spells it, SubjectPublicKeyInfo DER,
/// signature (DER `Ecdsa-Sig-Value` for ECDSA), signed message) → valid or not.
pub type HostVerify = fn(&str, &[u8], &[u8], &[u8]) -> Result<bool, HostFailure>;

/// `signatureVerification`: whether the host may, must or must not verify RS* and
/// ES* signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureVerification {
    /// The host for each family whose probe passes, the module for the rest.
    #[default]
    Auto,
    /// The host for both families; the plugin does not load where a probe fails.
    Host,
    /// The module only; the host is never called, not even to probe it.
    Module,
}

/// Per family, the host's verifier when it is the one in charge, else the module.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureBackend {
    /// RS256, RS384, RS512.
    pub rsa: Option<HostVerify>,
    /// ES256, and ES384 when `es384_on_host`.
    pub ec: Option<HostVerify>,
    /// ES384 goes to the host with ES256. Only `signatureVerification: host` sends
    /// it: BoringSSL's P-384 was measured slower than the module's (which keeps
    /// precomputed tables per key), about 640 µs against 350 µs per check in one
    /// `tests/bench/host_crypto.py` run, so `auto` keeps it in the module.
    pub es384_on_host: bool,
}

/// The families the host may verify, as the probe tests them one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
}

impl Family {
    pub fn of(algorithm: Algorithm) -> Option<Family> {
        match algorithm {
            Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512 => Some(Family::Rsa),
            Algorithm::Es256 | Algorithm::Es384 => Some(Family::Ec),
            _ => None,
        }
    }

    /// The algorithms of this family, for logs.
    pub fn names(self) -> &'static str {
        match self {
            Family::Rsa => "RS*",
            Family::Ec => "ES*",
        }
    }
}

impl SignatureBackend {
    /// The module verifies everything; the host is never called.
    pub const MODULE: SignatureBackend = SignatureBackend {
        rsa: None,
        ec: None,
        es384_on_host: false,
    };

    pub fn host_for(&self, family: Family) -> Option<HostVerify> {
        match family {
            Family::Rsa => self.rsa,
            Family::Ec => self.ec,
        }
    }

    /// Whether the host verifies anything at all.
    pub fn uses_host(&self) -> bool {
        self.rsa.is_some() || self.ec.is_some()
    }

    /// The host's verdict when this backend sends `algorithm` to the host; `None`
    /// when the module decides.
    pub fn host_verdict(
        &self,
        algorithm: Algorithm,
        jwk: &Jwk,
        message: &[u8],
        signature: &[u8],
    ) -> Option<bool> {
        if algorithm == Algorithm::Es384 && !self.es384_on_host {
            return None;
        }
        let host = self.host_for(Family::of(algorithm)?)?;
        Some(verify_on_host(host, algorithm, jwk, message, signature))
    }
}

/// The host's verdict on one signature; false for a key of another type, a
/// signature the module rejects on its form, or a host failure (fail closed; the
/// host glue logs and counts the failure).
pub fn verify_on_host(
    host: HostVerify,
    algorithm: Algorithm,
    jwk: &Jwk,
    message: &[u8],
    signature: &[u8],
) -> bool {
    ask_host(host, algorithm, jwk, message, signature).unwrap_or(false)
}

/// As [`verify_on_host`], with the host's failure kept (for the probe's log).
/// Not inlined: the probe and every verification share one copy.
#[inline(never)]
pub fn ask_host(
    host: HostVerify,
    algorithm: Algorithm,
    jwk: &Jwk,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, HostFailure> {
    let Some(spki) = jwk.spki.as_deref() else {
        return Ok(false);
    };
    let halves = match (algorithm, &jwk.key) {
        (Algorithm::Rs256, PublicKey::Rsa(_)) => return host("sha256", spki, signature, message),
        (Algorithm::Rs384, PublicKey::Rsa(_)) => return host("sha384", spki, signature, message),
        (Algorithm::Rs512, PublicKey::Rsa(_)) => return host("sha512", spki, signature, message),
        (Algorithm::Es256, PublicKey::P256(key)) => key.signature_halves(signature),
        (Algorithm::Es384, PublicKey::P384(key)) => key.signature_halves(signature),
        _ => return Ok(false),
    };
    let Some((r, s)) = halves else {
        return Ok(false);
    };
    let hash = if algorithm == Algorithm::Es256 {
        "sha256"
    } else {
        "sha384"
    };
    host(hash, spki, &der::ecdsa_signature(r, s), message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::hex;
    use crate::signature_probe::vectors;
    use crate::test_keys::{key_set_of, TestKey};
    use std::cell::RefCell;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// One call to the host: hash, SubjectPublicKeyInfo, signature, message.
    type Asked = (String, Vec<u8>, Vec<u8>, Vec<u8>);

    thread_local! {
        /// What the fake host was asked, last call first out.
        static ASKED: RefCell<Vec<Asked>> = const { RefCell::new(Vec::new()) };
    }

    fn recording_host(
        hash: &str,
        spki: &[u8],
        signature: &[u8],
        message: &[u8],
    ) -> Result<bool, HostFailure> {
        ASKED.with(|asked| {
            asked.borrow_mut().push((
                hash.into(),
                spki.to_vec(),
                signature.to_vec(),
                message.to_vec(),
            ))
        });
        Ok(true)
    }

    fn failing_host(_: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<bool, HostFailure> {
        Err(HostFailure("refused".into()))
    }

    fn asked() -> Vec<Asked> {
        ASKED.with(|asked| asked.borrow_mut().drain(..).collect())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_host_gets_the_hash_spki_and_a_der_ecdsa_signature() {
        let backend = SignatureBackend {
            rsa: Some(recording_host),
            ec: Some(recording_host),
            es384_on_host: true,
        };
        for (algorithm, hash) in [
            (Algorithm::Rs256, "sha256"),
            (Algorithm::Rs384, "sha384"),
            (Algorithm::Rs512, "sha512"),
            (Algorithm::Es256, "sha256"),
            (Algorithm::Es384, "sha384"),
        ] {
            let key = TestKey::new(algorithm, "k");
            let set = key_set_of(&[&key]);
            let jwk = &set.keys()[0];
            let (message, signature) = key.signed_message();
            assert_eq!(
                backend.host_verdict(algorithm, jwk, message.as_bytes(), &signature),
                Some(true)
            );
            let calls = asked();
            assert_eq!(calls.len(), 1);
            let (asked_hash, spki, sent, text) = &calls[0];
            assert_eq!(asked_hash, hash);
            assert_eq!(Some(&spki[..]), jwk.spki.as_deref());
            assert_eq!(text, message.as_bytes());
            if Family::of(algorithm) == Some(Family::Rsa) {
                assert_eq!(sent, &signature);
            } else {
                let (r, s) = signature.split_at(signature.len() / 2);
                assert_eq!(sent, &der::ecdsa_signature(r, s));
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ps_and_eddsa_stay_in_the_module_and_module_never_calls_the_host() {
        let backend = SignatureBackend {
            rsa: Some(recording_host),
            ec: Some(recording_host),
            es384_on_host: true,
        };
        for algorithm in [Algorithm::Ps256, Algorithm::Ps512, Algorithm::EdDsa] {
            let key = TestKey::new(algorithm, "k");
            let set = key_set_of(&[&key]);
            let (message, signature) = key.signed_message();
            assert_eq!(
                backend.host_verdict(algorithm, &set.keys()[0], message.as_bytes(), &signature),
                None
            );
        }
        let key = TestKey::new(Algorithm::Rs256, "k");
        let set = key_set_of(&[&key]);
        let (message, signature) = key.signed_message();
        assert_eq!(
            SignatureBackend::MODULE.host_verdict(
                Algorithm::Rs256,
                &set.keys()[0],
                message.as_bytes(),
                &signature
            ),
            None
        );
        assert!(asked().is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_ecdsa_signatures_never_reach_the_host() {
        let backend = SignatureBackend {
            rsa: None,
            ec: Some(recording_host),
            es384_on_host: true,
        };
        let key = TestKey::new(Algorithm::Es256, "k");
        let set = key_set_of(&[&key]);
        let jwk = &set.keys()[0];
        let (message, signature) = key.signed_message();
        // P-256's order n.
        let n = hex(vectors::P256_ORDER);
        let one = [&[0u8; 31][..], &[1]].concat();
        let (r, s) = signature.split_at(32);
        let rejected: Vec<Vec<u8>> = vec![
            vec![],
            signature[1..].to_vec(),
            [&signature[..], &[0]].concat(),
            [&[0u8; 32][..], s].concat(),
            [r, &[0u8; 32][..]].concat(),
            vec![0; 64],
            [&n[..], s].concat(),
            [r, &n[..]].concat(),
            vec![0xff; 64],
        ];
        for bad in rejected {
            assert_eq!(
                backend.host_verdict(Algorithm::Es256, jwk, message.as_bytes(), &bad),
                Some(false),
                "{bad:?}"
            );
        }
        assert!(asked().is_empty());
        // 1 and n - 1 are in range: the host decides.
        let mut n_minus_1 = n.clone();
        if let Some(last) = n_minus_1.last_mut() {
            *last -= 1;
        }
        let edge = [&one[..], &n_minus_1[..]].concat();
        assert_eq!(
            backend.host_verdict(Algorithm::Es256, jwk, message.as_bytes(), &edge),
            Some(true)
        );
        assert_eq!(asked().len(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn es384_stays_in_the_module_unless_the_host_is_forced() {
        let auto = SignatureBackend {
            rsa: Some(recording_host),
            ec: Some(recording_host),
            es384_on_host: false,
        };
        let p384 = TestKey::new(Algorithm::Es384, "k");
        let set = key_set_of(&[&p384]);
        let (message, signature) = p384.signed_message();
        let jwk = &set.keys()[0];
        assert_eq!(
            auto.host_verdict(Algorithm::Es384, jwk, message.as_bytes(), &signature),
            None
        );
        assert!(asked().is_empty());
        let forced = SignatureBackend {
            es384_on_host: true,
            ..auto
        };
        assert!(forced
            .host_verdict(Algorithm::Es384, jwk, message.as_bytes(), &signature)
            .is_some());
        assert_eq!(asked().len(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_host_failure_fails_closed() {
        let backend = SignatureBackend {
            rsa: Some(failing_host),
            ec: Some(failing_host),
            es384_on_host: true,
        };
        for algorithm in [Algorithm::Rs256, Algorithm::Es384] {
            let key = TestKey::new(algorithm, "k");
            let set = key_set_of(&[&key]);
            let (message, signature) = key.signed_message();
            assert_eq!(
                backend.host_verdict(algorithm, &set.keys()[0], message.as_bytes(), &signature),
                Some(false)
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_key_of_another_type_is_never_sent() {
        let backend = SignatureBackend {
            rsa: Some(recording_host),
            ec: Some(recording_host),
            es384_on_host: true,
        };
        let rsa = TestKey::new(Algorithm::Rs256, "k");
        let p384 = TestKey::new(Algorithm::Es384, "k");
        let set = key_set_of(&[&rsa, &p384]);
        let (message, signature) = rsa.signed_message();
        // An RSA token checked against the P-384 key, and the reverse.
        assert_eq!(
            backend.host_verdict(
                Algorithm::Rs256,
                &set.keys()[1],
                message.as_bytes(),
                &signature
            ),
            Some(false)
        );
        assert_eq!(
            backend.host_verdict(
                Algorithm::Es256,
                &set.keys()[1],
                message.as_bytes(),
                &[1; 64]
            ),
            Some(false)
        );
        assert!(asked().is_empty());
    }
}
