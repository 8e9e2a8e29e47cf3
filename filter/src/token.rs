//! Compact JWS parsing and every structural check made before any cryptography.
//!
//! Nothing here is trusted yet: the result carries the claims only so that the
//! authenticator can pick the issuer's rule and check times in Envoy's order.

use crate::response::{AuthError, StringClaim, TimeClaim};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Algorithms jwt_verify_lib implements that this filter has no keys for: Envoy
/// answers them with `KidAlgMismatch`, not as unsupported.
const ALGORITHMS_WITHOUT_KEYS: [&str; 4] = ["HS256", "HS384", "HS512", "ES512"];

/// The JWS algorithms this filter verifies. Names are case-sensitive (RFC 7518).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// Why a token was rejected before verification; [`FormatError::auth_error`] gives
/// the status Envoy's jwt_verify_lib reports for the same fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    TooLarge,
    /// A JWE header (`enc`, `zip`) on a three-segment token.
    Encrypted,
    /// Not three non-empty segments (a five-segment JWE included).
    SegmentCount,
    Base64(&'static str),
    Header(String),
    Payload(String),
    /// `alg` missing or not a string.
    BadAlgorithm,
    Algorithm(String),
    /// An `alg` Envoy implements but no key of ours can serve (HMAC, ES512).
    NoKeyForAlgorithm(String),
    BadKid,
    /// A registered claim of the wrong type or range.
    Claim(AuthError),
    CriticalHeader,
    UnencodedPayload,
}

impl FormatError {
    /// The jwt_authn status for this fault. Faults Envoy does not check (JWE headers,
    /// `crit`, `b64`, size) are `Jwt verification fails`.
    pub fn auth_error(&self) -> AuthError {
        match self {
            Self::TooLarge | Self::Encrypted | Self::CriticalHeader | Self::UnencodedPayload => {
                AuthError::VerificationFails
            }
            Self::SegmentCount => AuthError::BadFormat,
            Self::Base64("header") => AuthError::HeaderBadBase64,
            Self::Base64("payload") => AuthError::PayloadBadBase64,
            Self::Base64(_) => AuthError::SignatureBadBase64,
            Self::Header(_) => AuthError::HeaderBadJson,
            Self::Payload(_) => AuthError::PayloadBadJson,
            Self::BadAlgorithm => AuthError::HeaderBadAlg,
            Self::Algorithm(_) => AuthError::AlgNotSupported,
            Self::NoKeyForAlgorithm(_) => AuthError::KidAlgMismatch,
            Self::BadKid => AuthError::HeaderBadKid,
            Self::Claim(error) => *error,
        }
    }
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "token is larger than maxTokenBytes"),
            Self::Encrypted => write!(f, "token has a JWE header; only JWS is accepted"),
            Self::SegmentCount => write!(f, "token does not have three non-empty segments"),
            Self::Base64(segment) => write!(f, "{segment} is not unpadded base64url"),
            Self::Header(why) => write!(f, "header: {why}"),
            Self::Payload(why) => write!(f, "payload: {why}"),
            Self::BadAlgorithm => write!(f, "header: `alg` is missing or not a string"),
            Self::Algorithm(alg) => write!(f, "algorithm `{alg}` is not accepted"),
            Self::NoKeyForAlgorithm(alg) => write!(f, "no key can verify algorithm `{alg}`"),
            Self::BadKid => write!(f, "header: `kid` is not a string"),
            Self::Claim(error) => write!(f, "payload: {}", error.message()),
            Self::CriticalHeader => write!(f, "header has `crit` extensions we do not understand"),
            Self::UnencodedPayload => write!(f, "header asks for an unencoded payload (b64)"),
        }
    }
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub struct Jws<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `base64url(header) '.' base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The payload segment as sent, for `outputPayloadToHeader`.
    pub payload_segment: &'a str,
    pub signature: Vec<u8>,
}

pub fn parse(token: &str, max_bytes: usize) -> Result<Jws<'_>, FormatError> {
    if token.len() > max_bytes {
        return Err(FormatError::TooLarge);
    }
    let (header_segment, payload_segment, signature_segment) = split_segments(token)?;
    let header = strict_object(header_segment, "header", FormatError::Header)?;
    let (algorithm, kid) = check_header(&header)?;
    let claims = strict_object(payload_segment, "payload", FormatError::Payload)?;
    check_claim_types(&claims)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_segment)
        .map_err(|_| FormatError::Base64("signature"))?;
    let signing_input_len = header_segment.len() + 1 + payload_segment.len();
    let signing_input = token
        .get(..signing_input_len)
        .ok_or(FormatError::SegmentCount)?;
    Ok(Jws {
        algorithm,
        kid,
        claims,
        signing_input,
        payload_segment,
        signature,
    })
}

fn split_segments(token: &str) -> Result<(&str, &str, &str), FormatError> {
    let segments: Vec<&str> = token.split('.').collect();
    // As jwt_verify_lib: exactly three sections, none of them empty.
    match segments.as_slice() {
        [header, payload, signature] if segments.iter().all(|s| !s.is_empty()) => {
            Ok((header, payload, signature))
        }
        _ => Err(FormatError::SegmentCount),
    }
}

fn strict_object(
    segment: &str,
    what: &'static str,
    invalid_json: fn(String) -> FormatError,
) -> Result<Map<String, Value>, FormatError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| FormatError::Base64(what))?;
    crate::strict_json::parse_object(&bytes).map_err(invalid_json)
}

/// The registered claims' types, checked in jwt_verify_lib's order: `iss`, `sub`,
/// `iat`, `nbf`, `exp`, `jti`, `aud`.
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), FormatError> {
    let string_claim = |name: &str, claim: StringClaim| match claims.get(name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(FormatError::Claim(AuthError::ClaimNotString(claim))),
    };
    string_claim("iss", StringClaim::Iss)?;
    string_claim("sub", StringClaim::Sub)?;
    for (name, claim) in [
        ("iat", TimeClaim::Iat),
        ("nbf", TimeClaim::Nbf),
        ("exp", TimeClaim::Exp),
    ] {
        if let Some(value) = claims.get(name) {
            check_numeric_date(value, claim)?;
        }
    }
    string_claim("jti", StringClaim::Jti)?;
    match claims.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(FormatError::Claim(AuthError::AudNotStringList)),
    }
}

/// A NumericDate must be a non-negative integer below 2^64. Envoy truncates other
/// numbers; we refuse fractions as "not an integer" rather than guess.
fn check_numeric_date(value: &Value, claim: TimeClaim) -> Result<(), FormatError> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    let Value::Number(number) = value else {
        return Err(FormatError::Claim(AuthError::ClaimNotInteger(claim)));
    };
    if number.as_u64().is_some() {
        return Ok(());
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    if number.is_i64() || !(0.0..TWO_POW_64).contains(&float) {
        Err(FormatError::Claim(AuthError::ClaimOutOfRange(claim)))
    } else {
        Err(FormatError::Claim(AuthError::ClaimNotInteger(claim)))
    }
}

fn check_header(header: &Map<String, Value>) -> Result<(Algorithm, Option<String>), FormatError> {
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err(FormatError::BadAlgorithm);
    };
    let algorithm = Algorithm::from_name(alg).ok_or_else(|| {
        if ALGORITHMS_WITHOUT_KEYS.contains(&alg.as_str()) {
            FormatError::NoKeyForAlgorithm(alg.clone())
        } else {
            FormatError::Algorithm(alg.clone())
        }
    })?;
    // jwt_verify_lib checks `kid` right after `alg`.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(FormatError::BadKid),
    };
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(FormatError::Encrypted);
    }
    // We implement no JWS extension, so any critical one must be refused (RFC 7515 4.1.11).
    if header.contains_key("crit") {
        return Err(FormatError::CriticalHeader);
    }
    if header
        .get("b64")
        .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err(FormatError::UnencodedPayload);
    }
    Ok((algorithm, kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_a_well_formed_token() {
        let text = token(
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            r#"{"iss":"a"}"#,
        );
        let jws = parse(&text, 16384).unwrap();
        assert_eq!(jws.algorithm, Algorithm::Es256);
        assert_eq!(jws.kid.as_deref(), Some("k1"));
        assert_eq!(jws.claims["iss"], "a");
        assert_eq!(jws.signature, b"sig");
        assert!(text.starts_with(jws.signing_input));
        assert_eq!(jws.signing_input.matches('.').count(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_unsigned_and_symmetric_algorithms() {
        for alg in ["none", "None", "NONE", "rs256", ""] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            let error = parse(&text, 16384).unwrap_err();
            assert_eq!(error, FormatError::Algorithm(alg.into()));
            assert_eq!(error.auth_error(), AuthError::AlgNotSupported);
        }
        // Envoy implements these, so it reports that no key fits them.
        for alg in ["HS256", "HS512", "ES512"] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            let error = parse(&text, 16384).unwrap_err();
            assert_eq!(error, FormatError::NoKeyForAlgorithm(alg.into()));
            assert_eq!(error.auth_error(), AuthError::KidAlgMismatch);
        }
        for header in [r#"{"typ":"JWT"}"#, r#"{"alg":7}"#, r#"{"alg":null}"#] {
            let error = parse(&token(header, "{}"), 16384).unwrap_err();
            assert_eq!(error.auth_error(), AuthError::HeaderBadAlg, "{header}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_structural_tricks() {
        let ok_header = r#"{"alg":"RS256"}"#;
        let cases = [
            (
                token(r#"{"alg":"RS256","crit":["exp"]}"#, "{}"),
                FormatError::CriticalHeader,
            ),
            (
                token(r#"{"alg":"RS256","b64":false}"#, "{}"),
                FormatError::UnencodedPayload,
            ),
            ("a.b.c.d.e".to_string(), FormatError::SegmentCount),
            ("a..c".to_string(), FormatError::SegmentCount),
            (
                format!("{}.{}.", b64(ok_header), b64("{}")),
                FormatError::SegmentCount,
            ),
            (
                token(r#"{"alg":"RS256","enc":"A256GCM"}"#, "{}"),
                FormatError::Encrypted,
            ),
            ("a.b".to_string(), FormatError::SegmentCount),
            ("a.b.c.d".to_string(), FormatError::SegmentCount),
            (
                format!("{}.{}.c=", b64(ok_header), b64("{}")),
                FormatError::Base64("signature"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(&text, 16384).unwrap_err(), expected, "{text}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_bad_json_and_padding() {
        let padded = format!("{}=.{}.{}", b64(r#"{"alg":"RS256"}"#), b64("{}"), b64("s"));
        assert_eq!(
            parse(&padded, 16384).unwrap_err(),
            FormatError::Base64("header")
        );
        let duplicate = token(r#"{"alg":"RS256","alg":"none"}"#, "{}");
        assert!(matches!(
            parse(&duplicate, 16384),
            Err(FormatError::Header(_))
        ));
        let array_payload = token(r#"{"alg":"RS256"}"#, "[]");
        assert!(matches!(
            parse(&array_payload, 16384),
            Err(FormatError::Payload(_))
        ));
        let numeric_kid = token(r#"{"alg":"RS256","kid":7}"#, "{}");
        assert_eq!(parse(&numeric_kid, 16384).unwrap_err(), FormatError::BadKid);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn segment_faults_have_envoys_statuses() {
        let header = b64(r#"{"alg":"RS256"}"#);
        let payload = b64("{}");
        let cases = [
            ("a.b".to_string(), AuthError::BadFormat),
            (
                format!("{header}=.{payload}.c2ln"),
                AuthError::HeaderBadBase64,
            ),
            (
                format!("{header}.{payload}+.c2ln"),
                AuthError::PayloadBadBase64,
            ),
            (
                format!("{header}.{payload}.c2ln="),
                AuthError::SignatureBadBase64,
            ),
            (
                format!("{}.{payload}.c2ln", b64("[1]")),
                AuthError::HeaderBadJson,
            ),
            (
                format!("{header}.{}.c2ln", b64("x")),
                AuthError::PayloadBadJson,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse(&text, 16384).unwrap_err().auth_error(),
                expected,
                "{text}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn registered_claims_must_have_envoys_types() {
        use AuthError::*;
        let cases = [
            (r#"{"iss":42}"#, ClaimNotString(StringClaim::Iss)),
            (r#"{"sub":42}"#, ClaimNotString(StringClaim::Sub)),
            (r#"{"jti":{}}"#, ClaimNotString(StringClaim::Jti)),
            (r#"{"exp":"1"}"#, ClaimNotInteger(TimeClaim::Exp)),
            (r#"{"nbf":1.5}"#, ClaimNotInteger(TimeClaim::Nbf)),
            (r#"{"iat":null}"#, ClaimNotInteger(TimeClaim::Iat)),
            (r#"{"exp":-1}"#, ClaimOutOfRange(TimeClaim::Exp)),
            (
                r#"{"nbf":18446744073709551616}"#,
                ClaimOutOfRange(TimeClaim::Nbf),
            ),
            (r#"{"iat":-0.5}"#, ClaimOutOfRange(TimeClaim::Iat)),
            (r#"{"aud":{"a":"b"}}"#, AudNotStringList),
            (r#"{"aud":["a",1]}"#, AudNotStringList),
            // jwt_verify_lib's order: iss before exp.
            (r#"{"exp":"x","iss":1}"#, ClaimNotString(StringClaim::Iss)),
        ];
        for (payload, expected) in cases {
            let text = token(r#"{"alg":"RS256"}"#, payload);
            let error = parse(&text, 16384).unwrap_err();
            assert_eq!(error, FormatError::Claim(expected), "{payload}");
        }
        let fine = r#"{"iss":"i","sub":"s","jti":"j","iat":0,"nbf":1,"exp":18446744073709551615,"aud":["a"]}"#;
        assert!(parse(&token(r#"{"alg":"RS256"}"#, fine), 16384).is_ok());
        // serde_json refuses 1e400, as Envoy's JSON parser does.
        let huge = token(r#"{"alg":"RS256"}"#, r#"{"exp":1e400}"#);
        assert_eq!(
            parse(&huge, 16384).unwrap_err().auth_error(),
            AuthError::PayloadBadJson
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn enforces_the_size_limit() {
        let text = token(
            r#"{"alg":"RS256"}"#,
            &format!(r#"{{"x":"{}"}}"#, "a".repeat(100)),
        );
        assert_eq!(parse(&text, 50).unwrap_err(), FormatError::TooLarge);
    }
}
