//! The messages of Envoy's `verify_signature` foreign function
//! (source/extensions/common/wasm/ext/verify_signature.proto), written and read
//! with `crate::protobuf`:
//!
//! ```proto
//! message VerifySignatureArguments {
//!   string hash_function = 1; bytes public_key = 2; bytes signature = 3;
//!   bytes text = 4; string public_key_pem = 5;
//! }
//! message VerifySignatureResult { bool result = 1; string error = 2; }
//! ```

use crate::protobuf::{Field, Reader, Writer};
use crate::signature_backend::HostFailure;

/// The serialized arguments: the key as DER (`public_key`), never PEM.
pub fn arguments(hash: &str, spki: &[u8], signature: &[u8], message: &[u8]) -> Vec<u8> {
    Writer::default()
        .bytes(1, hash.as_bytes())
        .bytes(2, spki)
        .bytes(3, signature)
        .bytes(4, message)
        .finish()
}

/// The verdict in a serialized result. Envoy fills `error` with BoringSSL's reason
/// whenever `result` is false (a forged signature has one), so only a `true`
/// that comes with an error is contradictory, and a failure.
pub fn verdict(result: &[u8]) -> Result<bool, HostFailure> {
    let unreadable = || HostFailure("verify_signature: unreadable result".into());
    let mut reader = Reader::new(result);
    let (mut valid, mut error) = (false, &[][..]);
    while let Some((number, field)) = reader.field().map_err(|_| unreadable())? {
        match (number, field) {
            (1, Field::Varint(value)) => valid = value != 0,
            (2, Field::Bytes(text)) => error = text,
            (1 | 2, _) => return Err(unreadable()),
            _ => {}
        }
    }
    if valid && !error.is_empty() {
        return Err(HostFailure(format!(
            "verify_signature: valid, but with the error `{}`",
            String::from_utf8_lossy(error)
        )));
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn arguments_are_the_proto_fields_in_order() {
        let bytes = arguments("sha256", &[0x30, 0x00], &[9, 9, 9], b"m");
        assert_eq!(
            bytes,
            [
                &[0x0a, 6][..],
                b"sha256",
                &[0x12, 2, 0x30, 0x00],
                &[0x1a, 3, 9, 9, 9],
                &[0x22, 1, b'm'],
            ]
            .concat()
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn results_read_as_envoy_writes_them() {
        // result: true, error: "" (proto3 leaves the empty string out).
        assert_eq!(verdict(&[0x08, 1]), Ok(true));
        let failed = [&[0x12, 28][..], b"Failed to verify digest. Error"].concat();
        assert_eq!(verdict(&failed[..30]), Ok(false));
        assert_eq!(verdict(&[0x08, 0, 0x12, 1, b'x']), Ok(false));
        // An empty message is result: false.
        assert_eq!(verdict(&[]), Ok(false));
        // Unknown fields are read past.
        assert_eq!(verdict(&[0x08, 1, 0x1a, 1, 0]), Ok(true));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn contradictory_or_unreadable_results_are_failures() {
        assert!(verdict(&[0x08, 1, 0x12, 1, b'x']).is_err());
        assert!(verdict(&[0x08]).is_err());
        assert!(verdict(&[0x0a, 1, 1]).is_err(), "result as bytes");
        assert!(verdict(&[0x12, 5, b'x']).is_err(), "truncated");
        assert!(verdict(&[0x0f]).is_err(), "wire type 7");
    }
}
