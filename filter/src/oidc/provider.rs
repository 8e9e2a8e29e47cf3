//! The provider metadata read from `<issuer>/.well-known/openid-configuration`.

use crate::http_url::HttpUrl;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: HttpUrl,
    pub token_endpoint: HttpUrl,
    pub jwks_uri: HttpUrl,
    pub end_session_endpoint: Option<HttpUrl>,
    /// Every login callback must carry `iss` (RFC 9207): the document's
    /// `authorization_response_iss_parameter_supported` is there and not `false`.
    pub callback_iss_required: bool,
}

/// Parses a discovery document for `issuer` (OIDC Discovery 1.0 section 4.3: the
/// document must name the same issuer). Every endpoint must be an http(s) URL.
pub fn parse(body: &[u8], issuer: &str) -> Result<Provider, String> {
    let document: Value = crate::strict_json::parse(body)
        .map_err(|e| format!("discovery document is not JSON: {e}"))?;
    let published = document
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if published != issuer {
        return Err(format!(
            "discovery document names issuer `{published}`, not `{issuer}`"
        ));
    }
    let endpoint = |name: &str| -> Result<HttpUrl, String> {
        let text = document
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("discovery document has no `{name}`"))?;
        crate::fetch::parse_http_url(text).map_err(|why| format!("`{name}` {why}"))
    };
    Ok(Provider {
        issuer: issuer.to_string(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        end_session_endpoint: endpoint("end_session_endpoint").ok(),
        // RFC 9207: absent means false. Any other value than `false` (`"true"`,
        // `1`, `null`) is read as a promise to send `iss`: holding the IdP to it
        // fails closed and costs only logins, where refusing the whole document
        // would also stop the bearer tokens that share its keys.
        callback_iss_required: document
            .get("authorization_response_iss_parameter_supported")
            .is_some_and(|value| value != false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const ISSUER: &str = "http://127.0.0.1:9000";

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_endpoints() {
        let body = br#"{"issuer":"http://127.0.0.1:9000","authorization_endpoint":"http://127.0.0.1:9000/auth",
            "token_endpoint":"http://127.0.0.1:9000/token","jwks_uri":"http://127.0.0.1:9000/jwks",
            "end_session_endpoint":"http://127.0.0.1:9000/session/end"}"#;
        let provider = parse(body, ISSUER).unwrap();
        assert_eq!(provider.token_endpoint.path(), "/token");
        assert_eq!(
            provider.end_session_endpoint.unwrap().path(),
            "/session/end"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn end_session_is_optional_but_the_rest_is_not() {
        let minimal =
            br#"{"issuer":"http://127.0.0.1:9000","authorization_endpoint":"http://a/auth",
            "token_endpoint":"http://a/token","jwks_uri":"http://a/jwks"}"#;
        assert_eq!(parse(minimal, ISSUER).unwrap().end_session_endpoint, None);
        let no_token = br#"{"issuer":"http://127.0.0.1:9000","authorization_endpoint":"http://a/auth","jwks_uri":"http://a/j"}"#;
        assert!(parse(no_token, ISSUER)
            .unwrap_err()
            .contains("token_endpoint"));
        let wrong_issuer = br#"{"issuer":"http://evil","authorization_endpoint":"http://a/auth","token_endpoint":"http://a/t","jwks_uri":"http://a/j"}"#;
        assert!(parse(wrong_issuer, ISSUER).is_err());
        let javascript = br#"{"issuer":"http://127.0.0.1:9000","authorization_endpoint":"javascript:alert(1)","token_endpoint":"http://a/t","jwks_uri":"http://a/j"}"#;
        assert!(parse(javascript, ISSUER).is_err());
        assert!(parse(b"<html>", ISSUER).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_whether_callbacks_carry_iss() {
        let cases = [
            ("", false),
            ("false", false),
            ("true", true),
            // Not booleans: held to the promise (fails closed, logins only).
            (r#""true""#, true),
            (r#""false""#, true),
            ("null", true),
            ("0", true),
            ("{}", true),
        ];
        for (value, required) in cases {
            let flag = if value.is_empty() {
                String::new()
            } else {
                format!(r#","authorization_response_iss_parameter_supported":{value}"#)
            };
            let body = format!(
                r#"{{"issuer":"{ISSUER}","authorization_endpoint":"http://a/auth",
                "token_endpoint":"http://a/token","jwks_uri":"http://a/jwks"{flag}}}"#
            );
            let provider = parse(body.as_bytes(), ISSUER).unwrap();
            assert_eq!(provider.callback_iss_required, required, "{value}");
        }
    }
}
