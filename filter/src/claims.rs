//! Claim checks made in Envoy's order (time, then audience), and claim lookup for
//! output headers.

use crate::response::AuthError;
use serde_json::{Map, Value};

/// `exp`, `nbf` and `iat` against `now`, each allowed `skew` seconds of clock drift.
/// A token issued in the future is not yet valid either.
pub fn check_times(
    claims: &Map<String, Value>,
    now: u64,
    skew: u64,
) -> Result<(), (AuthError, String)> {
    if let Some(exp) = numeric_date(claims, "exp")? {
        if now > exp.saturating_add(skew) {
            return Err((AuthError::Expired, format!("exp {exp} is before now {now}")));
        }
    }
    for name in ["nbf", "iat"] {
        if let Some(start) = numeric_date(claims, name)? {
            if start > now.saturating_add(skew) {
                return Err((
                    AuthError::NotYetValid,
                    format!("{name} {start} is after now {now}"),
                ));
            }
        }
    }
    Ok(())
}

/// The token's `exp`, when it is a well-formed NumericDate.
pub fn expiry(claims: &Map<String, Value>) -> Option<u64> {
    claims.get("exp").and_then(Value::as_u64)
}

/// NumericDate as Envoy reads it: a non-negative integer. Strings, floats and
/// negatives are malformed, not ignored.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, (AuthError, String)> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            (
                AuthError::VerificationFails,
                format!("`{name}` is not a non-negative integer"),
            )
        }),
    }
}

/// The token's `aud`, a string or an array of strings.
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, (AuthError, String)> {
    let malformed = || {
        (
            AuthError::VerificationFails,
            "`aud` is not a string or an array of strings".to_string(),
        )
    };
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(aud)) => Ok(vec![aud.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(malformed))
            .collect(),
        Some(_) => Err(malformed()),
    }
}

/// An empty `allowed` list accepts any audience, as in Istio.
pub fn check_audience(
    claims: &Map<String, Value>,
    allowed: &[String],
) -> Result<(), (AuthError, String)> {
    let presented = audiences(claims)?;
    if allowed.is_empty() || presented.iter().any(|aud| allowed.iter().any(|a| a == aud)) {
        return Ok(());
    }
    Err((
        AuthError::AudienceNotAllowed,
        format!(
            "aud [{}] is not one of [{}]",
            listed(&presented),
            listed(allowed)
        ),
    ))
}

/// `` `a`, `b` ``: for messages, which the log line escapes.
fn listed(items: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect();
    quoted.join(", ")
}

/// A claim by name; `a.b` reaches into nested objects when no top-level claim is
/// literally named `a.b` (Envoy's `claim_to_headers` rule).
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// The text of a scalar claim, for headers and rule matching: strings as they
/// are, numbers and booleans as JSON writes them. Objects, arrays and null have none.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn times_respect_the_skew() {
        let now = 1_000_000;
        assert!(check_times(&claims(json!({"exp": now - 60})), now, 60).is_ok());
        assert_eq!(
            check_times(&claims(json!({"exp": now - 61})), now, 60)
                .unwrap_err()
                .0,
            AuthError::Expired
        );
        assert!(check_times(&claims(json!({"nbf": now + 60})), now, 60).is_ok());
        assert_eq!(
            check_times(&claims(json!({"nbf": now + 61})), now, 60)
                .unwrap_err()
                .0,
            AuthError::NotYetValid
        );
        assert_eq!(
            check_times(&claims(json!({"iat": now + 61})), now, 60)
                .unwrap_err()
                .0,
            AuthError::NotYetValid
        );
        assert!(check_times(&claims(json!({})), now, 60).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_dates_fail_verification() {
        for bad in [
            json!("1"),
            json!(-5),
            json!(1.5),
            json!(1e30),
            json!(null),
            json!([1]),
        ] {
            let result = check_times(&claims(json!({"exp": bad})), 10, 60);
            assert_eq!(result.unwrap_err().0, AuthError::VerificationFails);
        }
        assert!(check_times(&claims(json!({"exp": u64::MAX})), 10, 60).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn audience_string_or_array() {
        let allowed = vec!["api".to_string()];
        assert!(check_audience(&claims(json!({"aud": "api"})), &allowed).is_ok());
        assert!(check_audience(&claims(json!({"aud": ["x", "api"]})), &allowed).is_ok());
        assert_eq!(
            check_audience(&claims(json!({"aud": "x"})), &allowed)
                .unwrap_err()
                .0,
            AuthError::AudienceNotAllowed
        );
        assert_eq!(
            check_audience(&claims(json!({})), &allowed).unwrap_err().0,
            AuthError::AudienceNotAllowed
        );
        assert!(check_audience(&claims(json!({"aud": "x"})), &[]).is_ok());
        let nested = check_audience(&claims(json!({"aud": {"a": "api"}})), &allowed);
        assert_eq!(nested.unwrap_err().0, AuthError::VerificationFails);
        let mixed = check_audience(&claims(json!({"aud": ["api", 1]})), &allowed);
        assert_eq!(mixed.unwrap_err().0, AuthError::VerificationFails);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lookup_reaches_nested_claims() {
        let c = claims(json!({"a": {"b": {"c": 7}}, "x.y": "literal", "flag": true}));
        assert_eq!(lookup(&c, "a.b.c"), Some(&json!(7)));
        assert_eq!(lookup(&c, "x.y"), Some(&json!("literal")));
        assert_eq!(lookup(&c, "a.missing"), None);
        assert_eq!(scalar_text(&json!(7)).as_deref(), Some("7"));
        assert_eq!(scalar_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(scalar_text(&json!({"k": 1})), None);
    }
}
