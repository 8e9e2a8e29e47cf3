//! Client authentication with a JWT (RFC 7523 §2.2, OIDC Core §9): the
//! `client_assertion` the filter sends to the token endpoint instead of the bare
//! client secret. `client_secret_jwt` signs it with HMAC-SHA256 under the client
//! secret, here; the secret itself never leaves Envoy. `private_key_jwt` has the
//! host sign it (Envoy's `sign`, BoringSSL) with the client's private key: the
//! module only reads which kind of key it is and turns the host's ECDSA signature
//! into JWS form; it never computes with the private key.
//!
//! The claims, as OIDC Core §9 requires them: `iss` and `sub` the client id, `aud`
//! the token endpoint URL (the audience Entra ID, Okta, Keycloak and oidc-provider
//! all accept), a fresh random `jti` for each request (IdPs refuse a reused one),
//! `iat` now and `exp` a minute later.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The form field naming the assertion's type (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: long enough for the call, short enough that a
/// captured one is soon useless.
pub const LIFETIME_SECONDS: u64 = 60;
/// Random bytes in a `jti`.
pub const JTI_BYTES: usize = 16;

/// The claims of an assertion for `client_id` at `audience`, as JSON text.
pub fn claims(client_id: &str, audience: &str, now: u64, jti: &[u8; JTI_BYTES]) -> String {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "iat": now,
        "exp": now.saturating_add(LIFETIME_SECONDS),
    })
    .to_string()
}

/// A `client_secret_jwt` assertion: the claims signed with HS256 under `secret`.
pub fn client_secret_jwt(
    client_id: &str,
    secret: &str,
    audience: &str,
    now: u64,
    jti: &[u8; JTI_BYTES],
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(client_id, audience, now, jti));
    let signing_input = format!("{header}.{payload}");
    let mac = hmac_sha256(secret.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The algorithms of a `private_key_jwt` assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, an RSA key.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Es256 => "ES256",
        }
    }
}

/// How the IdP finds the client's public key: a `kid`, and (Entra ID) the
/// certificate's SHA-256 thumbprint, `x5t#S256`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyHint<'a> {
    pub key_id: Option<&'a str>,
    pub thumbprint: Option<&'a str>,
}

/// The signing input (`header.payload`) of a `private_key_jwt` assertion.
pub fn private_key_jwt_signing_input(
    algorithm: KeyAlgorithm,
    hint: KeyHint,
    client_id: &str,
    audience: &str,
    now: u64,
    jti: &[u8; JTI_BYTES],
) -> String {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), algorithm.name().into());
    header.insert("typ".into(), "JWT".into());
    if let Some(key_id) = hint.key_id {
        header.insert("kid".into(), key_id.into());
    }
    if let Some(thumbprint) = hint.thumbprint {
        header.insert("x5t#S256".into(), thumbprint.into());
    }
    let header = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims(client_id, audience, now, jti));
    format!("{header}.{payload}")
}

/// The assertion from its signing input and the host's signature: RSA's as it is,
/// ECDSA's DER (what BoringSSL returns) as JWS's fixed-width `r‖s`.
pub fn signed_assertion(
    signing_input: &str,
    algorithm: KeyAlgorithm,
    host_signature: &[u8],
) -> Result<String, String> {
    let signature = match algorithm {
        KeyAlgorithm::Rs256 if (128..=1024).contains(&host_signature.len()) => {
            host_signature.to_vec()
        }
        KeyAlgorithm::Rs256 => return Err("the host's RSA signature has an odd length".into()),
        KeyAlgorithm::Es256 => ecdsa_der_to_jws(host_signature, 32)
            .ok_or("the host's ECDSA signature is not a DER pair of integers")?,
    };
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// An ECDSA signature `SEQUENCE { INTEGER r, INTEGER s }` as `r‖s`, each
/// `width` bytes. `None` unless the DER is exactly that, with positive integers
/// that fit.
fn ecdsa_der_to_jws(der: &[u8], width: usize) -> Option<Vec<u8>> {
    let (tag, body, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(2 * width);
    let mut remaining = body;
    for _ in 0..2 {
        let (tag, integer, rest) = tlv(remaining)?;
        remaining = rest;
        // Positive: a leading 0x00 only before a high bit, and no sign bit.
        let digits = match integer {
            [0, next, ..] if next & 0x80 != 0 => integer.get(1..)?,
            [first, ..] if first & 0x80 == 0 && *first != 0 => integer,
            _ => return None,
        };
        if tag != 0x02 || digits.len() > width {
            return None;
        }
        out.resize(out.len() + width - digits.len(), 0);
        out.extend_from_slice(digits);
    }
    remaining.is_empty().then_some(out)
}

/// One DER element: (tag, contents, what follows). Definite lengths up to 64 KiB.
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&length, rest) = rest.split_first()?;
            (usize::from(length), rest)
        }
        0x82 => {
            let (high, rest) = rest.split_first()?;
            let (low, rest) = rest.split_first()?;
            (usize::from(*high) << 8 | usize::from(*low), rest)
        }
        _ => return None,
    };
    if length > rest.len() {
        return None;
    }
    let (contents, after) = rest.split_at(length);
    Some((tag, contents, after))
}

/// rsaEncryption, id-ecPublicKey and the P-256 curve, as DER object identifiers.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Which algorithm an unencrypted PKCS#8 PEM private key (`BEGIN PRIVATE KEY`)
/// signs with: an RSA key RS256, a P-256 key ES256. Only the key's algorithm
/// identifier is read; the key itself goes to the host as it is.
pub fn key_algorithm(pem: &str) -> Result<KeyAlgorithm, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let body = pem
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .ok_or_else(|| {
            let hint =
                if pem.contains("BEGIN RSA PRIVATE KEY") || pem.contains("BEGIN EC PRIVATE KEY") {
                    " (this is a traditional key: convert it with `openssl pkcs8 -topk8 -nocrypt`)"
                } else if pem.contains("ENCRYPTED PRIVATE KEY") {
                    " (an encrypted key cannot be used: the filter has no passphrase)"
                } else {
                    ""
                };
            format!("is not an unencrypted PKCS#8 PEM private key (`{BEGIN}`){hint}")
        })?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "has a PEM body that is not base64".to_string())?;
    let unreadable = || "is not a PKCS#8 private key".to_string();
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE { OID, params }, key OCTET STRING }
    let (0x30, info, _) = tlv(&der).ok_or_else(unreadable)? else {
        return Err(unreadable());
    };
    let (0x02, _, rest) = tlv(info).ok_or_else(unreadable)? else {
        return Err(unreadable());
    };
    let (0x30, algorithm, _) = tlv(rest).ok_or_else(unreadable)? else {
        return Err(unreadable());
    };
    let (0x06, oid, params) = tlv(algorithm).ok_or_else(unreadable)? else {
        return Err(unreadable());
    };
    if oid == RSA_ENCRYPTION {
        return Ok(KeyAlgorithm::Rs256);
    }
    if oid == EC_PUBLIC_KEY {
        return match tlv(params) {
            Some((0x06, curve, _)) if curve == PRIME256V1 => Ok(KeyAlgorithm::Es256),
            _ => Err("is an EC key on a curve other than P-256 (ES256 needs P-256)".into()),
        };
    }
    Err("is neither an RSA nor a P-256 key".into())
}

/// The `x5t#S256` of a PEM certificate (`BEGIN CERTIFICATE`): the base64url
/// SHA-256 of its DER, what Entra ID matches a certificate credential by.
pub fn certificate_thumbprint(pem: &str) -> Result<String, String> {
    let der = pem_body(pem, "CERTIFICATE")
        .ok_or("is not a PEM certificate (`-----BEGIN CERTIFICATE-----`)")?;
    match tlv(&der) {
        Some((0x30, _, [])) => Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(&der))),
        _ => Err("holds a PEM block that is not one DER certificate".into()),
    }
}

/// The bytes of the one PEM block `label` that makes up `pem`.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem.trim().strip_prefix(&begin)?.strip_suffix(&end)?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

const BLOCK_BYTES: usize = 64;

/// HMAC-SHA256 (RFC 2104). The SHA-256 in use (`sha2`, soft, compact) has no
/// secret-dependent branches or table lookups, and neither has this wrapper.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK_BYTES];
    if key.len() > BLOCK_BYTES {
        let digest = Sha256::digest(key);
        for (slot, byte) in block.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
    } else {
        for (slot, byte) in block.iter_mut().zip(key) {
            *slot = *byte;
        }
    }
    let pad = |with: u8| block.map(|byte| byte ^ with);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// RFC 4231 §4: test cases 1, 2, 3, 4, 6 (a key longer than a block) and 7.
    #[wasm_bindgen_test(unsupported = test)]
    fn hmac_sha256_matches_rfc_4231() {
        let long_key = vec![0xaa; 131];
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                long_key.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                long_key,
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hmac_sha256(&key, &message).to_vec(), hex(expected));
        }
        // A key of exactly one block is used as it is, not hashed (Python's hmac).
        let block_key: Vec<u8> = (0..64).collect();
        assert_eq!(
            hmac_sha256(&block_key, b"a 64-byte key is used as it is").to_vec(),
            hex("0e7eb58c11fa4fc3146402302ca79178ee33737d71a2bb0bcff4debcc05bfada")
        );
    }

    /// A PKCS#8 PEM whose algorithm identifier is `algorithm` (OID and params as
    /// DER), around an empty key: all `key_algorithm` reads. (No real private key
    /// in the source.)
    fn pkcs8_pem(algorithm: &[u8]) -> String {
        let der_of = |tag: u8, body: &[u8]| [&[tag, body.len() as u8][..], body].concat();
        let info = [
            der_of(0x02, &[0]),
            der_of(0x30, algorithm),
            der_of(0x04, &[]),
        ]
        .concat();
        let body = base64::engine::general_purpose::STANDARD.encode(der_of(0x30, &info));
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    fn oid(bytes: &[u8]) -> Vec<u8> {
        [&[0x06, bytes.len() as u8][..], bytes].concat()
    }

    /// A DER element with its length in the short or the long form, as needed.
    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let length = match body.len() {
            n @ 0..=0x7f => vec![n as u8],
            n @ 0x80..=0xff => vec![0x81, n as u8],
            n => vec![0x82, (n >> 8) as u8, n as u8],
        };
        [&[tag][..], &length, body].concat()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_and_certificates_of_real_sizes_read() {
        // An RSA-2048 PKCS#8 key is some 1,200 bytes: lengths in both long forms.
        for key_bytes in [200, 1_190] {
            let info = [
                der(0x02, &[0]),
                der(0x30, &[oid(RSA_ENCRYPTION), vec![0x05, 0x00]].concat()),
                der(0x04, &vec![0x5a; key_bytes]),
            ]
            .concat();
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
                base64::engine::general_purpose::STANDARD.encode(der(0x30, &info))
            );
            assert_eq!(key_algorithm(&pem), Ok(KeyAlgorithm::Rs256), "{key_bytes}");
        }
        let certificate = der(0x30, &vec![0x5a; 700]);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
            base64::engine::general_purpose::STANDARD.encode(&certificate)
        );
        assert_eq!(
            certificate_thumbprint(&pem),
            Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(&certificate)))
        );
        // A length that runs past the bytes: not a certificate.
        let cut = &certificate[..certificate.len() - 1];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
            base64::engine::general_purpose::STANDARD.encode(cut)
        );
        assert!(certificate_thumbprint(&pem).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_key_says_which_algorithm() {
        let rsa = pkcs8_pem(&[oid(RSA_ENCRYPTION), vec![0x05, 0x00]].concat());
        assert_eq!(key_algorithm(&rsa), Ok(KeyAlgorithm::Rs256));
        let p256 = pkcs8_pem(&[oid(EC_PUBLIC_KEY), oid(PRIME256V1)].concat());
        assert_eq!(key_algorithm(&p256), Ok(KeyAlgorithm::Es256));
        let secp384r1 = [0x2b, 0x81, 0x04, 0x00, 0x22];
        let p384 = pkcs8_pem(&[oid(EC_PUBLIC_KEY), oid(&secp384r1)].concat());
        assert!(key_algorithm(&p384).unwrap_err().contains("P-256"));
        let ed25519 = pkcs8_pem(&oid(&[0x2b, 0x65, 0x70]));
        assert!(key_algorithm(&ed25519).unwrap_err().contains("neither"));
        assert!(key_algorithm(
            "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----"
        )
        .unwrap_err()
        .contains("openssl pkcs8"));
        assert!(key_algorithm(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----"
        )
        .unwrap_err()
        .contains("passphrase"));
        assert!(
            key_algorithm("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            key_algorithm("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----")
                .unwrap_err()
                .contains("PKCS#8")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_certificate_thumbprint_is_the_sha256_of_its_der() {
        // Any single DER SEQUENCE stands for a certificate here.
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert_eq!(
            certificate_thumbprint(&pem),
            Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(der)))
        );
        assert!(certificate_thumbprint(
            "-----BEGIN CERTIFICATE-----\nAAA=\n-----END CERTIFICATE-----"
        )
        .is_err());
        assert!(certificate_thumbprint("not a certificate").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ecdsa_der_becomes_fixed_width_r_and_s() {
        let int = |bytes: &[u8]| [&[0x02, bytes.len() as u8][..], bytes].concat();
        let seq = |parts: &[Vec<u8>]| {
            let body = parts.concat();
            [&[0x30, body.len() as u8][..], &body].concat()
        };
        // A high bit gets a 0x00 pad in DER; a short integer is left-padded in JWS.
        let high = [&[0x00][..], &[0x80; 32]].concat();
        let der = seq(&[int(&high), int(&[0x01, 0x02])]);
        let mut expected = vec![0x80; 32];
        expected.extend(vec![0; 30]);
        expected.extend([0x01, 0x02]);
        assert_eq!(ecdsa_der_to_jws(&der, 32), Some(expected));
        for bad in [
            seq(&[int(&[0x01])]),                                   // one integer
            seq(&[int(&[0x01]), int(&[0x01]), int(&[1])]),          // three
            seq(&[int(&[0x80]), int(&[0x01])]),                     // negative
            seq(&[int(&[0x00, 0x01]), int(&[0x01])]),               // a needless 0x00
            seq(&[int(&[0x00]), int(&[0x01])]),                     // zero
            seq(&[int(&[0x01; 33]), int(&[0x01])]),                 // too wide
            seq(&[int(&[]), int(&[0x01])]),                         // empty
            [seq(&[int(&[0x01]), int(&[0x01])]), vec![0]].concat(), // trailing byte
            vec![0x30, 0x05, 0x02, 0x01],                           // cut short
        ] {
            assert_eq!(ecdsa_der_to_jws(&bad, 32), None, "{bad:02x?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_private_key_jwt_is_the_hosts_signature_over_the_claims() {
        let jti = [9u8; JTI_BYTES];
        let input = private_key_jwt_signing_input(
            KeyAlgorithm::Es256,
            KeyHint {
                key_id: Some("key-1"),
                thumbprint: Some("dGh1bWI"),
            },
            "app",
            "https://idp.test/token",
            1_700_000_000,
            &jti,
        );
        let (header, payload) = input.split_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "key-1", "x5t#S256": "dGh1bWI"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://idp.test/token");
        assert_eq!(claims["iss"], "app");
        let der = [&[0x30, 0x06, 0x02, 0x01, 0x07, 0x02, 0x01, 0x09][..]].concat();
        let jwt = signed_assertion(&input, KeyAlgorithm::Es256, &der).unwrap();
        let signature = URL_SAFE_NO_PAD
            .decode(jwt.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!((signature.len(), signature[31], signature[63]), (64, 7, 9));
        assert!(signed_assertion(&input, KeyAlgorithm::Es256, &[1, 2, 3]).is_err());
        assert!(signed_assertion(&input, KeyAlgorithm::Rs256, &[1; 64]).is_err());
        let rsa = signed_assertion(&input, KeyAlgorithm::Rs256, &[1; 256]).unwrap();
        assert!(rsa.starts_with(&input));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_client_secret_jwt_carries_the_claims_oidc_asks_for() {
        let jti = [7u8; JTI_BYTES];
        let jwt = client_secret_jwt(
            "my app",
            "0123456789abcdef0123456789abcdef",
            "https://idp.test/token",
            1_700_000_000,
            &jti,
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "my app", "sub": "my app", "aud": "https://idp.test/token",
                "jti": URL_SAFE_NO_PAD.encode(jti), "iat": 1_700_000_000u64, "exp": 1_700_000_060u64,
            })
        );
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let mac = hmac_sha256(
            b"0123456789abcdef0123456789abcdef",
            signing_input.as_bytes(),
        );
        assert_eq!(decode(parts[2]), mac.to_vec());
        // Another jti, another assertion.
        assert_ne!(
            jwt,
            client_secret_jwt(
                "my app",
                "0123456789abcdef0123456789abcdef",
                "https://idp.test/token",
                1_700_000_000,
                &[8u8; JTI_BYTES],
            )
        );
    }
}
