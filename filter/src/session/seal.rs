//! AES-256-GCM sealing of cookie values. The first key seals; every key opens, so
//! secrets can be rotated by prepending a new one. The cookie's name is bound in as
//! associated data, so a value sealed for one cookie cannot be replayed as another.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub const KEY_BYTES: usize = 32;
pub const NONCE_BYTES: usize = 12;
/// Most secrets configured at once; each one is a trial decryption.
pub const MAX_KEYS: usize = 8;

#[derive(Clone, Default)]
pub struct CookieKeys {
    ciphers: Vec<Aes256Gcm>,
}

/// Never the keys themselves.
impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieKeys({} keys)", self.ciphers.len())
    }
}

impl CookieKeys {
    /// `secrets` are 32-byte keys, the sealing key first. Empty or wrong-sized
    /// secrets are a configuration error, reported by the caller.
    pub fn new(secrets: &[[u8; KEY_BYTES]]) -> Self {
        let ciphers = secrets
            .iter()
            .take(MAX_KEYS)
            .map(|secret| Aes256Gcm::new(secret.into()))
            .collect();
        Self { ciphers }
    }

    /// `base64url(nonce || ciphertext || tag)`. The nonce must be fresh random bytes.
    pub fn seal(
        &self,
        purpose: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_BYTES],
    ) -> Option<String> {
        let cipher = self.ciphers.first()?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()?;
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The plaintext, if some key opens the value for this purpose. Tampered,
    /// truncated, foreign or old-key values all give `None`, never an error page.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_BYTES)?;
        let payload = || Payload {
            msg: ciphertext,
            aad: purpose.as_bytes(),
        };
        self.ciphers
            .iter()
            .find_map(|cipher| cipher.decrypt(Nonce::from_slice(nonce), payload()).ok())
    }

    /// Raw AEAD, for the Wycheproof vectors.
    #[cfg(test)]
    pub fn decrypt_raw(
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Option<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(key).ok()?;
        if nonce.len() != NONCE_BYTES {
            return None;
        }
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext_and_tag,
                    aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const OLD: [u8; 32] = [1; 32];
    const NEW: [u8; 32] = [2; 32];

    #[wasm_bindgen_test(unsupported = test)]
    fn seals_and_opens_with_rotation() {
        let old_only = CookieKeys::new(&[OLD]);
        let sealed_with_old = old_only.seal("session", b"hello", [7; 12]).unwrap();
        let rotated = CookieKeys::new(&[NEW, OLD]);
        assert_eq!(rotated.open("session", &sealed_with_old).unwrap(), b"hello");
        let sealed_with_new = rotated.seal("session", b"hi", [8; 12]).unwrap();
        assert_eq!(
            old_only.open("session", &sealed_with_new),
            None,
            "old deployments cannot read new cookies"
        );
        let dropped = CookieKeys::new(&[NEW]);
        assert_eq!(
            dropped.open("session", &sealed_with_old),
            None,
            "a retired key no longer opens"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn any_change_or_other_purpose_fails_to_open() {
        let keys = CookieKeys::new(&[OLD]);
        let sealed = keys.seal("session", b"payload", [3; 12]).unwrap();
        assert_eq!(keys.open("login", &sealed), None);
        assert_eq!(keys.open("session", &sealed[..sealed.len() - 2]), None);
        assert_eq!(keys.open("session", ""), None);
        assert_eq!(keys.open("session", "!!not base64!!"), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for index in [0, NONCE_BYTES, bytes.len() - 1] {
            bytes[index] ^= 1;
            assert_eq!(keys.open("session", &URL_SAFE_NO_PAD.encode(&bytes)), None);
            bytes[index] ^= 1;
        }
    }

    /// Wycheproof AES-GCM, 256-bit keys with the 96-bit nonces we use.
    #[wasm_bindgen_test(unsupported = test)]
    fn wycheproof_aes_256_gcm() {
        use wycheproof::aead::{TestName, TestSet};
        use wycheproof::TestResult;
        let set = TestSet::load(TestName::AesGcm).unwrap();
        let mut executed = 0;
        for group in set
            .test_groups
            .iter()
            .filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128)
        {
            for test in &group.tests {
                let mut sealed = test.ct.to_vec();
                sealed.extend_from_slice(&test.tag);
                let opened = CookieKeys::decrypt_raw(&test.key, &test.nonce, &test.aad, &sealed);
                match test.result {
                    TestResult::Valid => {
                        assert_eq!(opened.as_deref(), Some(&test.pt[..]), "tcId {}", test.tc_id)
                    }
                    TestResult::Invalid => assert_eq!(opened, None, "tcId {}", test.tc_id),
                    TestResult::Acceptable => {}
                }
                if test.result == TestResult::Valid {
                    let keys = CookieKeys::new(&[test.key[..].try_into().unwrap()]);
                    let nonce: [u8; 12] = test.nonce[..].try_into().unwrap();
                    let cipher = keys.ciphers.first().unwrap();
                    let ours = cipher
                        .encrypt(
                            Nonce::from_slice(&nonce),
                            Payload {
                                msg: &test.pt,
                                aad: &test.aad,
                            },
                        )
                        .unwrap();
                    assert_eq!(ours, sealed, "tcId {}", test.tc_id);
                }
                executed += 1;
            }
        }
        assert!(executed > 50, "only {executed} AES-256-GCM vectors ran");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn no_keys_seals_nothing() {
        assert_eq!(CookieKeys::new(&[]).seal("s", b"x", [0; 12]), None);
    }
}
