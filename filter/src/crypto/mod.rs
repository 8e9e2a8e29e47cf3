//! Signature verification arithmetic for JWS, written for speed inside Wasm.
//!
//! Everything here handles public data only (public keys, signatures, signed
//! messages), so variable-time arithmetic is safe. Never use it for signing or
//! anything secret. Each algorithm's Wycheproof suite runs through
//! `verifier::verify` in `filter/tests/wycheproof.rs`.

pub mod der;
pub mod ec;
pub mod ed25519;
pub mod rsa;

/// Hex test vectors as bytes.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
