//! Compact JWS parsing and every structural check made before any cryptography.
//!
//! Nothing here is trusted yet: the result carries the claims only so that the
//! authenticator can pick the issuer's rule and check times in Envoy's order.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

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

/// Why a token was rejected before verification. Envoy answers all of these with
/// `Jwt verification fails`; the detail is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    TooLarge,
    Encrypted,
    SegmentCount,
    Base64(&'static str),
    Header(String),
    Payload(String),
    Algorithm(String),
    CriticalHeader,
    UnencodedPayload,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "token is larger than maxTokenBytes"),
            Self::Encrypted => write!(f, "token is a JWE (five segments); only JWS is accepted"),
            Self::SegmentCount => write!(f, "token does not have three segments"),
            Self::Base64(segment) => write!(f, "{segment} is not unpadded base64url"),
            Self::Header(why) => write!(f, "header: {why}"),
            Self::Payload(why) => write!(f, "payload: {why}"),
            Self::Algorithm(alg) => write!(f, "algorithm `{alg}` is not accepted"),
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
    let header = strict_object(header_segment, "header").map_err(FormatError::Header)?;
    let (algorithm, kid) = check_header(&header)?;
    let claims = strict_object(payload_segment, "payload").map_err(FormatError::Payload)?;
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
    match segments.as_slice() {
        [header, payload, signature] => Ok((header, payload, signature)),
        [_, _, _, _, _] => Err(FormatError::Encrypted),
        _ => Err(FormatError::SegmentCount),
    }
}

fn strict_object(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| format!("{what} is not unpadded base64url"))?;
    crate::strict_json::parse_object(&bytes)
}

fn check_header(header: &Map<String, Value>) -> Result<(Algorithm, Option<String>), FormatError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(FormatError::Header("`alg` is not a string".into())),
        None => return Err(FormatError::Header("`alg` is missing".into())),
    };
    let algorithm = Algorithm::from_name(alg).ok_or_else(|| FormatError::Algorithm(alg.clone()))?;
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
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(FormatError::Header("`kid` is not a string".into())),
    };
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
        for alg in ["none", "None", "NONE", "HS256", "HS512", "rs256", ""] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                parse(&text, 16384).unwrap_err(),
                FormatError::Algorithm(alg.into())
            );
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
            ("a.b.c.d.e".to_string(), FormatError::Encrypted),
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
        assert!(matches!(parse(&padded, 16384), Err(FormatError::Header(_))));
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
        assert!(matches!(
            parse(&numeric_kid, 16384),
            Err(FormatError::Header(_))
        ));
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
