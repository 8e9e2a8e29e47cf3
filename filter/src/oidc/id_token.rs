//! ID token validation after the code exchange (OIDC Core 3.1.3.7): signature with
//! the issuer's keys, `iss`, `aud`, `azp`, `nonce`, `exp` and `iat`.

use crate::claims;
use crate::jwks::KeySet;
use crate::response::AuthError;
use crate::signature_backend::SignatureBackend;
use crate::token;
use crate::verifier;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// The reason given when no key of the set fits the ID token: the IdP has probably
/// rotated its keys, and a refetch will find the new one.
pub const UNKNOWN_KEY: &str = "ID token: signed with a key that is not in the JWKS";

pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: u64,
    pub skew: u64,
    pub max_bytes: usize,
    /// Who checks RS* and ES* signatures (the host or the module).
    pub backend: &'a SignatureBackend,
}

/// The ID token's claims, or why it is not acceptable (for the log; the browser
/// only sees that the login failed).
pub fn validate(
    id_token: &str,
    keys: &KeySet,
    expect: &Expectations,
) -> Result<Map<String, Value>, String> {
    check(id_token, keys, expect, true)
}

/// For ID tokens from a refresh, which need not carry a nonce (OIDC Core 12.2).
pub fn validate_without_nonce(
    id_token: &str,
    keys: &KeySet,
    expect: &Expectations,
) -> Result<Map<String, Value>, String> {
    check(id_token, keys, expect, false)
}

fn check(
    id_token: &str,
    keys: &KeySet,
    expect: &Expectations,
    nonce_required: bool,
) -> Result<Map<String, Value>, String> {
    let jws = token::parse(id_token, expect.max_bytes).map_err(|e| format!("ID token: {e}"))?;
    verifier::verify_with_set(keys, &jws, expect.backend).map_err(|error| match error {
        AuthError::KidAlgMismatch => UNKNOWN_KEY.to_string(),
        other => format!("ID token: {}", other.message()),
    })?;
    let claims = jws.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err("ID token `iss` is not the configured issuer".into());
    }
    let audiences = claims::audiences(&claims).map_err(|(_, why)| why)?;
    if !audiences.contains(&expect.client_id) {
        return Err("ID token `aud` does not contain the client id".into());
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == expect.client_id => {}
        None if audiences.len() == 1 => {}
        None => return Err("ID token has several audiences and no `azp`".into()),
        Some(_) => return Err("ID token `azp` is not the client id".into()),
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let nonce_matches =
        !nonce.is_empty() && bool::from(nonce.as_bytes().ct_eq(expect.nonce.as_bytes()));
    if nonce_required && !nonce_matches {
        return Err("ID token `nonce` does not match this login".into());
    }
    if !claims.contains_key("exp") || !claims.contains_key("iat") {
        return Err("ID token lacks `exp` or `iat`".into());
    }
    claims::check_times(&claims, expect.now, expect.skew)
        .map_err(|(_, why)| format!("ID token: {why}"))?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::{key_set_of, TestKey};
    use crate::token::Algorithm;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    const NOW: u64 = 1_700_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "http://idp",
            client_id: "app",
            nonce: "n-123",
            now: NOW,
            skew: 60,
            max_bytes: 16384,
            backend: &SignatureBackend::MODULE,
        }
    }

    fn good_claims() -> Value {
        json!({"iss": "http://idp", "aud": "app", "sub": "alice", "nonce": "n-123", "exp": NOW + 300, "iat": NOW})
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn accepts_a_matching_token() {
        let key = TestKey::new(Algorithm::Rs256, "k");
        let claims = validate(&key.mint(&good_claims()), &key_set_of(&[&key]), &expect()).unwrap();
        assert_eq!(claims["sub"], "alice");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_every_mismatch() {
        let key = TestKey::new(Algorithm::Es256, "k");
        let keys = key_set_of(&[&key]);
        let cases = [
            json!({"iss": "http://other"}),
            json!({"aud": "someone-else"}),
            json!({"aud": ["app", "other"]}),
            json!({"aud": ["app", "other"], "azp": "other"}),
            json!({"azp": "other"}),
            json!({"nonce": "n-124"}),
            json!({"nonce": null}),
            json!({"exp": NOW - 61}),
            json!({"iat": NOW + 61}),
            json!({"exp": null}),
        ];
        for change in cases {
            let mut claims = good_claims();
            for (name, value) in change.as_object().unwrap() {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(name);
                } else {
                    claims[name] = value.clone();
                }
            }
            assert!(
                validate(&key.mint(&claims), &keys, &expect()).is_err(),
                "{change}"
            );
        }
        let mut multi = good_claims();
        multi["aud"] = json!(["app", "other"]);
        multi["azp"] = json!("app");
        assert!(validate(&key.mint(&multi), &keys, &expect()).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unknown_kid_is_reported_as_such_so_keys_can_be_refetched() {
        let key = TestKey::new(Algorithm::Rs256, "old");
        let rotated = TestKey::new(Algorithm::Rs256, "new");
        let error = validate(
            &rotated.mint(&good_claims()),
            &key_set_of(&[&key]),
            &expect(),
        )
        .unwrap_err();
        assert_eq!(error, UNKNOWN_KEY);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_a_token_signed_by_another_key() {
        let key = TestKey::new(Algorithm::Rs256, "k");
        let other = TestKey::other_rsa(Algorithm::Rs256, "k");
        assert!(validate(&other.mint(&good_claims()), &key_set_of(&[&key]), &expect()).is_err());
    }
}
