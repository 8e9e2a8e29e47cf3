//! Envoy's `sign` foreign function (Envoy 1.37+): BoringSSL signs with a private
//! key the module hands it, so the module itself never computes with one. Used for
//! `private_key_jwt` client assertions.
//!
//! Arguments: `SignArguments { string hash_function = 1; bytes private_key = 2;
//! bytes text = 3; string private_key_pem = 4; }`; result: `SignResult { bool
//! result = 1; bytes signature = 2; string error = 3; }` (Envoy's
//! `source/extensions/common/wasm/ext/sign.proto`).

use super::raw;
use crate::protobuf::{Field, Reader, Writer};

/// `text` signed with the PEM `private_key`, hashing with `hash` (`sha256`). `Err`
/// says why not: the host has no `sign` (an Envoy before 1.37), refused the call,
/// or could not sign (its own error).
pub fn sign(private_key_pem: &str, hash: &str, text: &[u8]) -> Result<Vec<u8>, String> {
    let arguments = Writer::default()
        .bytes(1, hash.as_bytes())
        .bytes(3, text)
        .bytes(4, private_key_pem.as_bytes())
        .finish();
    let reply = match raw::call_foreign_function("sign", &arguments) {
        Ok(Some(reply)) => reply,
        Ok(None) | Err(raw::Refused(1)) => {
            return Err(
                "this Envoy has no `sign` foreign function (Envoy 1.37 or later has)".into(),
            )
        }
        Err(raw::Refused(status)) => {
            return Err(format!("Envoy refused the `sign` call (status {status})"))
        }
    };
    let (mut signed, mut signature, mut error) = (false, Vec::new(), String::new());
    let mut fields = Reader::new(&reply);
    loop {
        match fields.field() {
            Ok(Some((1, Field::Varint(value)))) => signed = value == 1,
            Ok(Some((2, Field::Bytes(bytes)))) => signature = bytes.to_vec(),
            Ok(Some((3, Field::Bytes(text)))) => {
                error = String::from_utf8_lossy(text).chars().take(200).collect();
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return Err("the host's `sign` answered something unreadable".into()),
        }
    }
    match (signed, signature.is_empty()) {
        (true, false) => Ok(signature),
        _ if !error.is_empty() => Err(format!("the host could not sign: {error}")),
        _ => Err("the host could not sign".into()),
    }
}
