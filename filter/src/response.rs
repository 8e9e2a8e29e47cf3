//! Deny responses, with the statuses and texts of Envoy's `jwt_authn`, which Istio
//! users already see and alert on.

use crate::request::Headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    VerificationFails,
    Expired,
    NotYetValid,
    UnknownIssuer,
    KidAlgMismatch,
    AudienceNotAllowed,
    JwksFetchFailed,
    /// Introspection said the token is not active (RFC 7662 `active: false`).
    Inactive,
    /// No positive answer from the introspection endpoint (down, slow, 5xx,
    /// unreadable, backing off, or too many calls in flight): `503`, fail closed.
    IntrospectionUnavailable,
    /// The parse failures below have their own texts in Envoy's jwt_verify_lib
    /// (`status.cc`), which jwt_authn sends as the body.
    BadFormat,
    HeaderBadBase64,
    HeaderBadJson,
    HeaderBadAlg,
    AlgNotSupported,
    HeaderBadKid,
    PayloadBadBase64,
    PayloadBadJson,
    ClaimNotString(StringClaim),
    ClaimNotInteger(TimeClaim),
    ClaimOutOfRange(TimeClaim),
    AudNotStringList,
    SignatureBadBase64,
    Ed25519WrongLength,
}

/// Claims Envoy requires to be strings when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringClaim {
    Iss,
    Sub,
    Jti,
}

/// NumericDate claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeClaim {
    Iat,
    Nbf,
    Exp,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "Jwt is missing",
            Self::VerificationFails => "Jwt verification fails",
            Self::Expired => "Jwt is expired",
            Self::NotYetValid => "Jwt not yet valid",
            Self::UnknownIssuer => "Jwt issuer is not configured",
            Self::KidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            Self::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Self::JwksFetchFailed => "Jwks remote fetch is failed",
            Self::Inactive => "Token is not active",
            Self::IntrospectionUnavailable => "Token introspection is unavailable",
            Self::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            Self::HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            Self::HeaderBadJson => "Jwt header is an invalid JSON",
            Self::HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            Self::AlgNotSupported => "Jwt header [alg] is not supported",
            Self::HeaderBadKid => "Jwt header [kid] field is not a string",
            Self::PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            Self::PayloadBadJson => "Jwt payload is an invalid JSON",
            Self::ClaimNotString(StringClaim::Iss) => "Jwt payload [iss] field is not a string",
            Self::ClaimNotString(StringClaim::Sub) => "Jwt payload [sub] field is not a string",
            Self::ClaimNotString(StringClaim::Jti) => "Jwt payload [jti] field is not a string",
            Self::ClaimNotInteger(TimeClaim::Iat) => "Jwt payload [iat] field is not an integer",
            Self::ClaimNotInteger(TimeClaim::Nbf) => "Jwt payload [nbf] field is not an integer",
            Self::ClaimNotInteger(TimeClaim::Exp) => "Jwt payload [exp] field is not an integer",
            Self::ClaimOutOfRange(TimeClaim::Iat) => {
                "Jwt payload [iat] field is not a positive 64 bit integer"
            }
            Self::ClaimOutOfRange(TimeClaim::Nbf) => {
                "Jwt payload [nbf] field is not a positive 64 bit integer"
            }
            Self::ClaimOutOfRange(TimeClaim::Exp) => {
                "Jwt payload [exp] field is not a positive 64 bit integer"
            }
            Self::AudNotStringList => "Jwt payload [aud] field is not a string or string list",
            Self::SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            Self::Ed25519WrongLength => "Jwt ED25519 signature is wrong length",
        }
    }

    pub fn status(self) -> u32 {
        match self {
            Self::AudienceNotAllowed => 403,
            Self::IntrospectionUnavailable => 503,
            _ => 401,
        }
    }
}

/// A local reply the host sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub error: AuthError,
    pub status: u32,
    pub body: &'static str,
    pub headers: Vec<(String, String)>,
    /// Why, for the log line; never contains the token.
    pub detail: String,
}

/// Longest piece of request-controlled text in a log line.
const MAX_LOGGED_CHARS: usize = 160;

/// The one log line for a refused request: status, the text the client got, the
/// method, host and path (never the query, where tokens may travel), and why: a
/// gateway's operator sees which host was refused. Request text is escaped so a
/// crafted path or claim cannot forge log lines.
pub fn denial_log_line(status: u32, body: &str, detail: &str, request: &Headers) -> String {
    let method = request.get(":method").unwrap_or("-");
    let host = request
        .get(":authority")
        .or_else(|| request.get("host"))
        .unwrap_or_default();
    let path = crate::path::without_query(request.path());
    format!(
        "denied {status} \"{body}\" {} {}{}: {}",
        loggable(method),
        loggable(host),
        loggable(path),
        loggable(detail)
    )
}

/// A note of the core's (AUDIT and dry-run policies) as one safe log line.
pub fn note_log_line(note: &str) -> String {
    loggable(note)
}

/// Printable ASCII as is, the rest escaped (`\n`, `\"`, `\u{e9}`): one line, no
/// terminal control sequences.
fn loggable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_LOGGED_CHARS) {
        match c {
            '"' | '\\' => out.extend(['\\', c]),
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.extend(other.escape_unicode()),
        }
    }
    if text.chars().nth(MAX_LOGGED_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Longest request URL echoed in `WWW-Authenticate`, so the reply stays small.
const MAX_REALM_BYTES: usize = 1024;

pub fn deny(error: AuthError, detail: impl Into<String>, request: &Headers) -> Denial {
    // Envoy's jwt_authn sends the challenge with its 403 too; so do we. A 503
    // says nothing against the token: no challenge, a hint to retry instead.
    let last = if error == AuthError::IntrospectionUnavailable {
        ("retry-after".to_string(), "1".to_string())
    } else {
        (
            "www-authenticate".to_string(),
            www_authenticate(error, request),
        )
    };
    let headers = vec![("content-type".to_string(), "text/plain".to_string()), last];
    Denial {
        error,
        status: error.status(),
        body: error.message(),
        headers,
        detail: detail.into(),
    }
}

/// `Bearer realm="<url>"`, plus `error="invalid_token"` when a token was presented,
/// as Envoy writes it (RFC 6750 section 3).
fn www_authenticate(error: AuthError, request: &Headers) -> String {
    let realm = realm(request);
    if error == AuthError::Missing {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    }
}

/// The request URL without its query (which may hold the token itself), with
/// anything that could break out of the quoted string removed.
fn realm(request: &Headers) -> String {
    let scheme = request
        .get("x-forwarded-proto")
        .or_else(|| request.get(":scheme"))
        .unwrap_or("http");
    let host = request
        .get(":authority")
        .or_else(|| request.get("host"))
        .unwrap_or("");
    let path = request.path();
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let url = format!("{scheme}://{host}{path}");
    url.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= MAX_REALM_BYTES).then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn request(path: &str) -> Headers {
        Headers::new(vec![
            (":scheme".into(), "http".into()),
            (":authority".into(), "app.test:8080".into()),
            (":path".into(), path.into()),
        ])
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn missing_token_has_no_error_attribute() {
        let denial = deny(AuthError::Missing, "", &request("/a?access_token=secret"));
        assert_eq!(denial.status, 401);
        assert_eq!(denial.body, "Jwt is missing");
        let value = &denial.headers[1].1;
        assert_eq!(value, "Bearer realm=\"http://app.test:8080/a\"");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn invalid_tokens_carry_invalid_token() {
        let denial = deny(AuthError::Expired, "", &request("/x"));
        assert_eq!(
            denial.headers[1].1,
            "Bearer realm=\"http://app.test:8080/x\", error=\"invalid_token\""
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn introspection_answers_inactive_401_and_unavailable_503_without_a_challenge() {
        let inactive = deny(AuthError::Inactive, "", &request("/x"));
        assert_eq!(
            (inactive.status, inactive.body),
            (401, "Token is not active")
        );
        assert!(inactive.headers[1].1.ends_with("error=\"invalid_token\""));
        let unavailable = deny(AuthError::IntrospectionUnavailable, "", &request("/x"));
        assert_eq!(unavailable.status, 503);
        assert_eq!(unavailable.body, "Token introspection is unavailable");
        assert_eq!(
            unavailable.headers[1],
            ("retry-after".to_string(), "1".to_string())
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn audience_denial_is_403_with_envoys_challenge() {
        let denial = deny(AuthError::AudienceNotAllowed, "", &request("/"));
        assert_eq!(denial.status, 403);
        let challenge = "Bearer realm=\"http://app.test:8080/\", error=\"invalid_token\"";
        assert_eq!(denial.headers[1].1, challenge);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn realm_cannot_break_out_of_its_quotes() {
        let denial = deny(AuthError::Missing, "", &request("/a\"b\\c\r\nx"));
        assert_eq!(
            denial.headers[1].1,
            "Bearer realm=\"http://app.test:8080/abcx\""
        );
        let long = deny(
            AuthError::Missing,
            "",
            &request(&format!("/{}", "a".repeat(5000))),
        );
        assert!(long.headers[1].1.len() < 1100);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_log_line_has_no_query_and_no_forged_lines() {
        let mut pairs = vec![
            (":method".to_string(), "GET".to_string()),
            (":authority".to_string(), "app.test:8080".to_string()),
        ];
        pairs.push((
            ":path".into(),
            "/api/x?access_token=secret.token.value".into(),
        ));
        let line = denial_log_line(
            401,
            "Jwt is expired",
            "exp 1 is before now 2",
            &Headers::new(pairs),
        );
        assert_eq!(
            line,
            r#"denied 401 "Jwt is expired" GET app.test:8080/api/x: exp 1 is before now 2"#
        );
        let forged = denial_log_line(
            401,
            "Jwt issuer is not configured",
            "issuer `a\nfake line`",
            &request("/"),
        );
        assert!(!forged.contains('\n'), "{forged}");
        assert!(forged.contains(r"a\nfake line"));
        let odd = denial_log_line(401, "x", "q\"\\\u{1b}[31m\u{e9}", &request("/"));
        assert!(odd.ends_with(r#": q\"\\\u{1b}[31m\u{e9}"#), "{odd}");
        let long = denial_log_line(401, "x", &"y".repeat(10_000), &request("/"));
        assert!(long.len() < 400, "{}", long.len());
    }
}
