//! Signature verification arithmetic for JWS, written for speed inside Wasm.
//!
//! Everything here handles public data only (public keys, signatures, signed
//! messages), so variable-time arithmetic is safe. Never use it for signing or
//! anything secret. Each algorithm's Wycheproof suite runs through
//! `verifier::verify` in `filter/tests/wycheproof.rs`.

pub mod ec;
pub mod ed25519;
pub mod rsa;
