//! Client authentication with a JWT (RFC 7523 §2.2, OIDC Core §9): the
//! `client_assertion` the filter sends to the token endpoint instead of the bare
//! client secret. `client_secret_jwt` signs it with HMAC-SHA256 under the client
//! secret, here; the secret itself never leaves Envoy.
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
