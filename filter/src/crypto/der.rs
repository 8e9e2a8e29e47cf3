//! The DER the host's `verify_signature` takes: a JWK's key as a
//! SubjectPublicKeyInfo (RFC 5280 4.1, RFC 3279 2.3.1, RFC 5480 2), and a JWS
//! ECDSA signature (`r || s`, RFC 7518 3.4) as the ASN.1 `Ecdsa-Sig-Value`
//! (RFC 3279 2.2.3) that BoringSSL verifies.
//!
//! Only the few shapes these need: definite lengths, INTEGERs from unsigned
//! big-endian bytes. Inputs are public and already validated by the module's own
//! key and signature checks, so nothing here decides validity.

/// rsaEncryption, 1.2.840.113549.1.1.1 (with its NULL parameters).
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// id-ecPublicKey, 1.2.840.10045.2.1.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (secp256r1), 1.2.840.10045.3.1.7.
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1, 1.3.132.0.34.
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const SEQUENCE: u8 = 0x30;
/// SEC 1 2.3.3: an uncompressed point.
const UNCOMPRESSED: u8 = 0x04;

/// The NIST curves a JWK may name (`crv`) for ES256 and ES384.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// The SubjectPublicKeyInfo of an RSA key with big-endian modulus `n` and
/// exponent `e` (leading zero bytes allowed: DER drops them).
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let key = tlv(SEQUENCE, &[integer(n), integer(e)].concat());
    spki(&tlv(SEQUENCE, RSA_ENCRYPTION), &key)
}

/// The SubjectPublicKeyInfo of an EC point with big-endian coordinates `x`, `y`
/// (each as long as the curve's field).
pub fn ec_spki(curve: Curve, x: &[u8], y: &[u8]) -> Vec<u8> {
    let oid = match curve {
        Curve::P256 => P256,
        Curve::P384 => P384,
    };
    let algorithm = tlv(SEQUENCE, &[EC_PUBLIC_KEY, oid].concat());
    spki(&algorithm, &[&[UNCOMPRESSED], x, y].concat())
}

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from big-endian r, s.
pub fn ecdsa_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    tlv(SEQUENCE, &[integer(r), integer(s)].concat())
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    // The key is a BIT STRING with no unused bits.
    let bits = tlv(BIT_STRING, &[&[0u8], key].concat());
    tlv(SEQUENCE, &[algorithm, &bits].concat())
}

/// A non-negative INTEGER: minimal (no leading zero bytes), with one 0x00 where
/// the high bit is set, since DER INTEGERs are two's complement.
fn integer(unsigned: &[u8]) -> Vec<u8> {
    let zeros = unsigned.iter().take_while(|&&byte| byte == 0).count();
    let digits = unsigned.get(zeros..).unwrap_or_default();
    let mut content = Vec::with_capacity(digits.len() + 1);
    match digits.first() {
        None => content.push(0),
        Some(&first) if first & 0x80 != 0 => content.push(0),
        Some(_) => {}
    }
    content.extend_from_slice(digits);
    tlv(INTEGER, &content)
}

/// Tag, definite length (short form below 128, else long form), content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let length = content.len();
    let length_bytes = length.to_be_bytes();
    let significant = length_bytes
        .iter()
        .skip_while(|&&byte| byte == 0)
        .copied()
        .collect::<Vec<u8>>();
    let mut out = Vec::with_capacity(content.len() + 2 + significant.len());
    out.push(tag);
    if length < 0x80 {
        out.extend_from_slice(&significant);
        if significant.is_empty() {
            out.push(0);
        }
    } else {
        // At most size_of::<usize>() bytes, so this fits in the 7 bits.
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;
    use wasm_bindgen_test::wasm_bindgen_test;

    // Expected encodings from Python's `cryptography` (OpenSSL):
    // `public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)` and
    // `utils.encode_dss_signature(r, s)` for the keys in `crate::signature_probe`.
    const P384_X: &str = "f95f5e6084c19e1c28343626e1bae8d3bd39bc56716e98468490a4c61713f3c80cb4268931cb320a2ea2a7e3d9aab24c";
    const P384_Y: &str = "94da0f10fe6ae87874e8b77bb95f4635bd65c196596bbb94c7e0ec1877985cc1f6e2773898c3c6508f81ce9ac4a1d478";
    const P384_SPKI: &str = "3076301006072a8648ce3d020106052b8104002203620004f95f5e6084c19e1c28343626e1bae8d3bd39bc56716e98468490a4c61713f3c80cb4268931cb320a2ea2a7e3d9aab24c94da0f10fe6ae87874e8b77bb95f4635bd65c196596bbb94c7e0ec1877985cc1f6e2773898c3c6508f81ce9ac4a1d478";
    const P256_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004a70171f2fcf940ea57fa9d46f1f705d8cbcdd25b64ef54dfe38c8ecd04e3620d0deab2d5c357aceaf96a51b69b653567b4748d42062aba421b53d7c30cfc789c";
    const RSA_SPKI: &str = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100dadd6324b88f00cc6f973fbfdeee7c93fc49a6c192dce7091591687b0e871f8e65f1f114c4ce3acd40e8427f5c9c11bc276a2f9b22d553f545b1f9f22b2d9e6c7a10b96e9eed5847572176a406f927f7271fa259b04a7a31ce19d5cd825b87c4eed430375e0befffe014aef4d267b18a91c1b3f56892141aa3b80cf9ee21f365c9f07b01c827f6500a6c0a111e35b641ca1cb526e55060b0d58c44e00d5d7376a9e5b7661d67b23a5162126bc6d99a98c463b861a3902d4a72cbd98e928cc736e7dab7bd39faf646524532ae2cdc94e0f6597436f4cf6c64d0973d3beb1076086c1c985e9a34f0a68c480e4640e96cfc4130bab4b875da604175bb56e74dfb950203010001";
    const P256_DER_SIGNATURE: &str = "3046022100cecac0820906a683b935b898a8452190925e9d054cbf2849b5bcb9fdcd1bd6aa0221008b0faa656e4d94aff97e04426d52b0ddf8755834ebc9965b5b139b1277f63cfd";

    #[wasm_bindgen_test(unsupported = test)]
    fn rsa_spki_is_what_openssl_writes() {
        use crate::signature_probe::vectors::{RSA_E, RSA_N};
        assert_eq!(rsa_spki(&hex(RSA_N), &hex(RSA_E)), hex(RSA_SPKI));
        // Leading zero bytes of n and e (JWKs may carry them) change nothing.
        let padded_n = [vec![0, 0], hex(RSA_N)].concat();
        let padded_e = [vec![0], hex(RSA_E)].concat();
        assert_eq!(rsa_spki(&padded_n, &padded_e), hex(RSA_SPKI));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ec_spki_is_what_openssl_writes() {
        use crate::signature_probe::vectors::{P256_X, P256_Y};
        assert_eq!(
            ec_spki(Curve::P256, &hex(P256_X), &hex(P256_Y)),
            hex(P256_SPKI)
        );
        assert_eq!(
            ec_spki(Curve::P384, &hex(P384_X), &hex(P384_Y)),
            hex(P384_SPKI)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ecdsa_signature_pads_high_bits_as_openssl_does() {
        use crate::signature_probe::vectors::P256_SIGNATURE;
        let raw = hex(P256_SIGNATURE);
        let (r, s) = raw.split_at(32);
        // Both r and s have the high bit set here: each INTEGER gets a 0x00.
        assert_eq!(ecdsa_signature(r, s), hex(P256_DER_SIGNATURE));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn integers_are_minimal() {
        assert_eq!(integer(&[0, 0, 0x7f]), [INTEGER, 1, 0x7f]);
        assert_eq!(integer(&[0, 0, 0x80]), [INTEGER, 2, 0, 0x80]);
        assert_eq!(integer(&[0x01, 0x00]), [INTEGER, 2, 1, 0]);
        assert_eq!(integer(&[0, 0]), [INTEGER, 1, 0]);
        assert_eq!(integer(&[]), [INTEGER, 1, 0]);
        // r with leading zero bytes: shorter than the field.
        let mut r = [0u8; 32];
        r[31] = 5;
        assert_eq!(
            ecdsa_signature(&r, &[0x80; 32]),
            [
                &[SEQUENCE, 3 + 35, INTEGER, 1, 5, INTEGER, 33, 0][..],
                &[0x80; 32][..]
            ]
            .concat()
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lengths_take_the_long_form_from_128() {
        assert_eq!(tlv(0x04, &[]), [0x04, 0]);
        assert_eq!(tlv(0x04, &[9; 127])[..2], [0x04, 127]);
        assert_eq!(tlv(0x04, &[9; 128])[..3], [0x04, 0x81, 128]);
        assert_eq!(tlv(0x04, &[9; 256])[..4], [0x04, 0x82, 1, 0]);
    }
}
