//! RSA signature verification for JWS: RS256/384/512 (RSASSA-PKCS1-v1_5) and
//! PS256/384/512 (RSASSA-PSS, MGF1 with the message hash, salt as long as the hash:
//! RFC 7518 3.3 and 3.5), after RFC 8017 8.1.2 and 8.2.2.
//!
//! Variable time throughout (see [`montgomery`]): verification sees only public
//! data. Never reuse this for signing or decryption.

mod montgomery;

use montgomery::{be_bytes_from_limbs, limbs_from_be_bytes, Modulus};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::fmt;

/// Smallest modulus accepted: below this RSA is breakable (NIST SP 800-131A).
pub const MIN_BITS: usize = 2048;
/// Largest modulus accepted: bounds the work a JWKS can demand per verification.
pub const MAX_BITS: usize = 8192;
/// The public exponent range of the `rsa` crate this replaced, kept so that the
/// same key sets stay usable.
const MIN_EXPONENT: u64 = 2;
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// A public key with its Montgomery constants, computed once when the JWKS is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    modulus: Modulus,
    exponent: u64,
    bits: usize,
}

/// Why a JWK's `n` and `e` are not a usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    ModulusSize { bits: usize },
    InvalidModulus,
    InvalidExponent,
    ExponentTooSmall,
    ExponentTooLarge,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ModulusSize { bits } => write!(
                f,
                "RSA modulus has {bits} bits (accepted: {MIN_BITS} to {MAX_BITS})"
            ),
            Self::InvalidModulus => f.write_str("invalid RSA key: invalid modulus"),
            Self::InvalidExponent => f.write_str("invalid RSA key: invalid exponent"),
            Self::ExponentTooSmall => f.write_str("invalid RSA key: public exponent too small"),
            Self::ExponentTooLarge => f.write_str("invalid RSA key: public exponent too large"),
        }
    }
}

impl RsaPublicKey {
    /// The key with big-endian modulus `n` and exponent `e` (leading zeros allowed),
    /// checked in the order, and with the texts, of the `rsa` crate it replaced.
    pub fn new(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let bits = n
            .first()
            .map_or(0, |&first| 8 * n.len() - first.leading_zeros() as usize);
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(KeyError::ModulusSize { bits });
        }
        let e = strip_leading_zeros(e);
        if e.len() > 8 {
            return Err(KeyError::ExponentTooLarge);
        }
        let exponent = e
            .iter()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
        // e < 2^64 <= n, so only an even n is an invalid modulus here.
        let modulus = Modulus::new(limbs_from_be_bytes(n)).ok_or(KeyError::InvalidModulus)?;
        if exponent % 2 == 0 {
            return Err(KeyError::InvalidExponent);
        }
        if exponent < MIN_EXPONENT {
            return Err(KeyError::ExponentTooSmall);
        }
        if exponent > MAX_EXPONENT {
            return Err(KeyError::ExponentTooLarge);
        }
        Ok(Self {
            modulus,
            exponent,
            bits,
        })
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Modulus length in bytes: the length of every signature and encoded message.
    fn len(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// RSAVP1: signature^e mod n as `len()` big-endian bytes, or `None` unless the
    /// signature is exactly `len()` bytes and below n.
    fn recover(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.len() {
            return None;
        }
        let representative = self
            .modulus
            .pow(&limbs_from_be_bytes(signature), self.exponent)?;
        be_bytes_from_limbs(&representative, self.len())
    }
}

/// The hash a JWS algorithm names, used for the message and (PSS) for MGF1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// DER of the DigestInfo before the digest (RFC 8017 9.2, note 1), with the
    /// NULL parameters every JWS signer writes.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Self::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Self::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Self::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// The hash of the concatenated `parts`.
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256 => digest_parts::<Sha256>(parts),
            Self::Sha384 => digest_parts::<Sha384>(parts),
            Self::Sha512 => digest_parts::<Sha512>(parts),
        }
    }

    /// XORs MGF1(seed) over `data` (RFC 8017 B.2.1).
    fn mgf1_xor(self, seed: &[u8], data: &mut [u8]) {
        for (counter, block) in (0u32..).zip(data.chunks_mut(self.len())) {
            let mask = self.digest(&[seed, &counter.to_be_bytes()]);
            for (byte, mask_byte) in block.iter_mut().zip(mask) {
                *byte ^= mask_byte;
            }
        }
    }
}

fn digest_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = D::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&byte| byte == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 8.2.2): the recovered block must equal
/// EMSA-PKCS1-v1_5(message) exactly, so no parser of the padding can be fooled.
pub fn verify_pkcs1v15(key: &RsaPublicKey, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
    key.recover(signature)
        .is_some_and(|encoded| encoded == pkcs1v15_encoding(hash, message, key.len()))
}

/// EMSA-PKCS1-v1_5: 00 01 FF…FF 00 DigestInfo, `len` bytes.
fn pkcs1v15_encoding(hash: Hash, message: &[u8], len: usize) -> Vec<u8> {
    let prefix = hash.digest_info_prefix();
    let padding = len.saturating_sub(3 + prefix.len() + hash.len());
    let mut encoded = Vec::with_capacity(len);
    encoded.extend_from_slice(&[0x00, 0x01]);
    encoded.resize(2 + padding, 0xff);
    encoded.push(0x00);
    encoded.extend_from_slice(prefix);
    encoded.extend_from_slice(&hash.digest(&[message]));
    encoded
}

/// RSASSA-PSS verification (RFC 8017 8.1.2) with the JWS parameters.
pub fn verify_pss(key: &RsaPublicKey, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
    let Some(recovered) = key.recover(signature) else {
        return false;
    };
    // EM has emLen = ⌈(modBits − 1)/8⌉ bytes, one fewer than the recovered block
    // when modBits ≡ 1 (mod 8); I2OSP fails unless that extra byte is zero.
    let em_bits = key.bits().saturating_sub(1);
    let leading_len = key.len().saturating_sub(em_bits.div_ceil(8));
    let Some((leading, encoded)) = recovered.split_at_checked(leading_len) else {
        return false;
    };
    leading.iter().all(|&byte| byte == 0)
        && pss_encoding_matches(hash, &hash.digest(&[message]), encoded, em_bits)
}

/// EMSA-PSS-VERIFY (RFC 8017 9.1.2) with salt length = hash length.
fn pss_encoding_matches(hash: Hash, message_hash: &[u8], encoded: &[u8], em_bits: usize) -> bool {
    let (hash_len, salt_len) = (hash.len(), hash.len());
    let Some(db_len) = encoded.len().checked_sub(hash_len + 1) else {
        return false;
    };
    if db_len < salt_len + 1 {
        return false;
    }
    let Some((masked_db, rest)) = encoded.split_at_checked(db_len) else {
        return false;
    };
    let Some((h, [0xbc])) = rest.split_at_checked(hash_len) else {
        return false;
    };
    // The bits above emBits in the top byte must be zero, and are cleared after unmasking.
    let unused_bits = (8 * encoded.len()).saturating_sub(em_bits);
    let top_mask = u32::try_from(unused_bits)
        .ok()
        .and_then(|shift| 0xffu8.checked_shr(shift))
        .unwrap_or(0);
    if masked_db.first().is_some_and(|&top| top & !top_mask != 0) {
        return false;
    }
    let mut db = masked_db.to_vec();
    hash.mgf1_xor(h, &mut db);
    if let Some(top) = db.first_mut() {
        *top &= top_mask;
    }
    let Some((padding, separator_and_salt)) = db.split_at_checked(db_len - salt_len - 1) else {
        return false;
    };
    let Some((&0x01, salt)) = separator_and_salt.split_first() else {
        return false;
    };
    padding.iter().all(|&byte| byte == 0) && hash.digest(&[&[0; 8], message_hash, salt]) == h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::PublicKey;
    use crate::test_keys::TestKey;
    use crate::token::Algorithm;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    const F4: &[u8] = &[1, 0, 1];

    /// An odd modulus of `bits` bits (not a real RSA modulus: verification does
    /// not care, and the key checks only look at size and parity).
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xc5; bits.div_ceil(8)];
        n[0] = 0xff >> (8 * n.len() - bits);
        n
    }

    fn modulus_of(key: &TestKey) -> Vec<u8> {
        let n = key.public_jwk()["n"].as_str().unwrap().to_string();
        URL_SAFE_NO_PAD.decode(n).unwrap()
    }

    fn rsa_key(key: &TestKey) -> RsaPublicKey {
        match key.public_key() {
            PublicKey::Rsa(rsa) => rsa,
            _ => panic!("not an RSA key"),
        }
    }

    fn hash_of(algorithm: Algorithm) -> Hash {
        match algorithm {
            Algorithm::Rs256 | Algorithm::Ps256 => Hash::Sha256,
            Algorithm::Rs384 | Algorithm::Ps384 => Hash::Sha384,
            _ => Hash::Sha512,
        }
    }

    fn verifies(key: &TestKey, message: &[u8], signature: &[u8]) -> bool {
        let (rsa, hash) = (rsa_key(key), hash_of(key.algorithm));
        match key.algorithm {
            Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512 => {
                verify_pkcs1v15(&rsa, hash, message, signature)
            }
            _ => verify_pss(&rsa, hash, message, signature),
        }
    }

    const RSA_ALGORITHMS: [Algorithm; 6] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ];

    #[wasm_bindgen_test(unsupported = test)]
    fn key_checks_keep_the_rsa_crate_order_and_texts() {
        let error = |n: &[u8], e: &[u8]| RsaPublicKey::new(n, e).unwrap_err().to_string();
        assert_eq!(
            error(&modulus(2047), F4),
            "RSA modulus has 2047 bits (accepted: 2048 to 8192)"
        );
        assert_eq!(
            error(&modulus(8193), F4),
            "RSA modulus has 8193 bits (accepted: 2048 to 8192)"
        );
        assert_eq!(
            error(&[], F4),
            "RSA modulus has 0 bits (accepted: 2048 to 8192)"
        );
        let mut even = modulus(2048);
        *even.last_mut().unwrap() = 0xc4;
        assert_eq!(error(&even, F4), "invalid RSA key: invalid modulus");
        let n = modulus(2048);
        assert_eq!(
            error(&n, &[1, 0, 0, 0, 0, 0, 0, 0, 1]),
            "invalid RSA key: public exponent too large"
        );
        assert_eq!(
            error(&n, &[2, 0, 0, 0, 1]),
            "invalid RSA key: public exponent too large"
        );
        assert_eq!(error(&n, &[]), "invalid RSA key: invalid exponent");
        assert_eq!(error(&n, &[0]), "invalid RSA key: invalid exponent");
        assert_eq!(error(&n, &[1, 0]), "invalid RSA key: invalid exponent");
        assert_eq!(
            error(&n, &[1]),
            "invalid RSA key: public exponent too small"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_accept_leading_zeros_and_the_exponent_range() {
        for bits in [2048, 2049, 3072, 4095, 8192] {
            let mut n = vec![0, 0];
            n.extend(modulus(bits));
            let key = RsaPublicKey::new(&n, &[0, 1, 0, 1]).unwrap();
            assert_eq!(key.bits(), bits);
            assert_eq!(key.len(), bits.div_ceil(8));
        }
        let n = modulus(2048);
        for e in [
            &[3][..],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
            &[1, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(RsaPublicKey::new(&n, e).is_ok(), "{e:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn signatures_outside_the_modulus_range_never_verify() {
        for algorithm in RSA_ALGORITHMS {
            let key = TestKey::new(algorithm, "k");
            let (message, signature) = key.signed_message();
            let message = message.as_bytes();
            assert!(verifies(&key, message, &signature), "{algorithm:?}");
            let n = modulus_of(&key);
            let len = signature.len();
            assert_eq!(len, n.len());
            let mut n_plus_one = n.clone();
            *n_plus_one.last_mut().unwrap() += 1;
            let mut with_zero = vec![0];
            with_zero.extend(&signature);
            for bad in [
                n.clone(),
                n_plus_one,
                vec![0xff; len],
                vec![0; len],
                vec![0; len - 1],
                with_zero,
                signature[1..].to_vec(),
                vec![],
            ] {
                assert!(!verifies(&key, message, &bad), "{algorithm:?} {bad:02x?}");
            }
            let mut one = vec![0; len];
            *one.last_mut().unwrap() = 1;
            assert!(!verifies(&key, message, &one), "{algorithm:?}");
        }
    }

    /// A signature is always as long as the modulus, even when its value is short.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_signature_with_a_leading_zero_byte_verifies() {
        let key = TestKey::new(Algorithm::Rs256, "k");
        let token = key.mint(&json!({ "sub": format!("message {LEADING_ZERO_SEED}") }));
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert_eq!(signature[0], 0, "signature {signature:02x?}");
        assert!(verifies(&key, message.as_bytes(), &signature));
        assert!(!verifies(&key, message.as_bytes(), &signature[1..]));
    }

    /// The first `sub` (found by search) whose deterministic RS256 signature under
    /// the test key starts with a zero byte.
    const LEADING_ZERO_SEED: u32 = 4;

    #[wasm_bindgen_test(unsupported = test)]
    fn pkcs1v15_encoding_layout() {
        let encoded = pkcs1v15_encoding(Hash::Sha256, b"abc", 256);
        assert_eq!(encoded.len(), 256);
        assert_eq!(encoded[..2], [0, 1]);
        assert!(encoded[2..256 - 52].iter().all(|&byte| byte == 0xff));
        assert_eq!(encoded[256 - 52], 0);
        assert_eq!(
            encoded[256 - 51..256 - 32],
            *Hash::Sha256.digest_info_prefix()
        );
        assert_eq!(encoded[256 - 32..], Sha256::digest(b"abc")[..]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pss_rejects_damaged_encodings() {
        // A well-formed EM for a 2048-bit key, built as RFC 8017 9.1.1 does.
        let hash = Hash::Sha256;
        let message_hash = hash.digest(&[b"message"]);
        let salt = [7u8; 32];
        let em_bits = 2047;
        let em_len = 256;
        let h = hash.digest(&[&[0; 8], &message_hash, &salt]);
        let mut db = vec![0u8; em_len - 33];
        let db_len = db.len();
        db[db_len - 33] = 1;
        db[db_len - 32..].copy_from_slice(&salt);
        hash.mgf1_xor(&h, &mut db);
        db[0] &= 0x7f;
        let mut encoded = db;
        encoded.extend(&h);
        encoded.push(0xbc);
        assert!(pss_encoding_matches(hash, &message_hash, &encoded, em_bits));

        let mut trailer = encoded.clone();
        *trailer.last_mut().unwrap() = 0xbd;
        let mut top_bit = encoded.clone();
        top_bit[0] ^= 0x80;
        let mut separator = encoded.clone();
        separator[db_len - 33] ^= 0x02;
        let mut padding = encoded.clone();
        padding[5] ^= 1;
        let mut salt_byte = encoded.clone();
        salt_byte[db_len - 1] ^= 1;
        for damaged in [
            trailer,
            top_bit,
            separator,
            padding,
            salt_byte,
            vec![0xbc],
            vec![],
        ] {
            assert!(!pss_encoding_matches(
                hash,
                &message_hash,
                &damaged,
                em_bits
            ));
        }
        assert!(!pss_encoding_matches(
            hash,
            &hash.digest(&[b"other"]),
            &encoded,
            em_bits
        ));
    }
}
