//! Requests to the token endpoint (code exchange, refresh) and their replies.

use crate::config::{ClientAuth, ClientKey, OidcConfig};
use crate::fetch::{self, HttpRequest};
use crate::oidc::client_assertion;
use crate::oidc::provider::Provider;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest token endpoint reply read; big ID tokens stay well under it.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The tokens of a reply; its `Debug` shows which came, never what they are.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("id_token", &self.id_token.is_some())
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::too_many_arguments)]
pub fn code_exchange(
    oidc: &OidcConfig,
    provider: &Provider,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    assertion: Option<&str>,
) -> HttpRequest {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    authenticated_post(oidc, provider, clusters, timeout_ms, &form, assertion)
}

pub fn refresh(
    oidc: &OidcConfig,
    provider: &Provider,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
    refresh_token: &str,
    assertion: Option<&str>,
) -> HttpRequest {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    authenticated_post(oidc, provider, clusters, timeout_ms, &form, assertion)
}

/// `client_assertion`: the signed JWT of `client_secret_jwt` and `private_key_jwt`,
/// made fresh for each request by the caller (see `oidc::client_assertion`).
fn authenticated_post(
    oidc: &OidcConfig,
    provider: &Provider,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
    form: &[(&str, &str)],
    assertion: Option<&str>,
) -> HttpRequest {
    let client = Client {
        id: &oidc.client_id,
        secret: &oidc.client_secret,
        auth: oidc.client_auth,
    };
    let url = &provider.token_endpoint;
    client_post(&client, url, clusters, timeout_ms, form, assertion)
}

/// A client of the IdP, as it authenticates at the token endpoint, and at the
/// introspection endpoint (see `introspection`).
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub auth: ClientAuth,
}

/// The `client_assertion` a request to the IdP sends for the client's method
/// (`client_secret_jwt`, `private_key_jwt`, with `aud` = `audience`): `Ok(None)`
/// for the methods that send none; `Err` when it cannot be made (no key, no
/// randomness for its `jti`, or the host would not sign).
pub fn client_assertion(
    client: &Client,
    key: Option<&ClientKey>,
    audience: &str,
    now: u64,
    host: &mut dyn crate::oidc::flow::HostCrypto,
) -> Result<Option<String>, String> {
    match (client.auth, key) {
        (ClientAuth::Basic | ClientAuth::Post, _) => return Ok(None),
        (ClientAuth::PrivateKeyJwt, None) => return Err("private_key_jwt without a key".into()),
        _ => {}
    }
    let mut jti = [0; client_assertion::JTI_BYTES];
    if !host.fill(&mut jti) {
        return Err("no randomness for the client assertion's jti".into());
    }
    match (client.auth, key) {
        (ClientAuth::PrivateKeyJwt, Some(key)) => {
            let hint = client_assertion::KeyHint {
                key_id: key.key_id.as_deref(),
                thumbprint: key.thumbprint.as_deref(),
            };
            let input = client_assertion::private_key_jwt_signing_input(
                key.algorithm,
                hint,
                client.id,
                audience,
                now,
                &jti,
            );
            let signature = host.sign(&key.pem, "sha256", input.as_bytes())?;
            client_assertion::signed_assertion(&input, key.algorithm, &signature).map(Some)
        }
        _ => Ok(Some(client_assertion::client_secret_jwt(
            client.id,
            client.secret,
            audience,
            now,
            &jti,
        ))),
    }
}

/// A form POST to `url`, authenticated as `client` with its method.
pub fn client_post(
    client: &Client,
    url: &crate::http_url::HttpUrl,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
    form: &[(&str, &str)],
    assertion: Option<&str>,
) -> HttpRequest {
    let mut pairs: Vec<(&str, &str)> = form.to_vec();
    let mut headers = Vec::new();
    match client.auth {
        ClientAuth::Basic => headers.push(("authorization".to_string(), basic_credentials(client))),
        ClientAuth::Post => {
            pairs.push(("client_id", client.id));
            pairs.push(("client_secret", client.secret));
        }
        ClientAuth::SecretJwt | ClientAuth::PrivateKeyJwt => {
            // Without an assertion (the caller could not make one), an empty one:
            // the IdP refuses the request; the secret is never the fallback.
            pairs.push(("client_id", client.id));
            pairs.push(("client_assertion_type", client_assertion::ASSERTION_TYPE));
            pairs.push(("client_assertion", assertion.unwrap_or_default()));
        }
    }
    fetch::post_form(url, clusters, timeout_ms, &pairs, headers)
}

/// A client assertion's `aud`: the token endpoint URL, which Entra ID, Okta,
/// Keycloak and oidc-provider accept, unless `clientAssertionAudience` says otherwise.
pub fn audience(oidc: &OidcConfig, provider: &Provider) -> String {
    match &oidc.client_assertion_audience {
        Some(audience) => audience.clone(),
        None => provider.token_endpoint.to_string(),
    }
}

/// RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
fn basic_credentials(client: &Client) -> String {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client.id), encode(client.secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A successful reply, or why not. The reason names the OAuth `error` code, never
/// anything that could be a token.
pub fn parse_response(status: Option<u32>, body: &[u8]) -> Result<TokenResponse, String> {
    if body.len() > MAX_REPLY_BYTES {
        return Err("token endpoint reply is too large".into());
    }
    let document: Option<Value> = crate::strict_json::parse(body).ok();
    let text = |name: &str| -> Option<String> {
        document.as_ref()?.get(name)?.as_str().map(str::to_string)
    };
    match status {
        Some(200) => {}
        Some(status) => {
            let code = text("error")
                .map(|code| {
                    code.chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect::<String>()
                })
                .unwrap_or_else(|| "no OAuth error code".into());
            return Err(format!("token endpoint answered HTTP {status} ({code})"));
        }
        None => return Err("token endpoint did not answer (timeout or reset)".into()),
    }
    if document.is_none() {
        return Err("token endpoint reply is not JSON".into());
    }
    if let Some(token_type) = text("token_type") {
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "token endpoint issued a `{token_type}` token, not a bearer token"
            ));
        }
    }
    let access_token = text("access_token").ok_or("token endpoint reply has no access_token")?;
    let expires_in = document
        .as_ref()
        .and_then(|d| d.get("expires_in"))
        .and_then(Value::as_u64);
    Ok(TokenResponse {
        access_token,
        id_token: text("id_token"),
        refresh_token: text("refresh_token"),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http_url::HttpUrl;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn oidc(method: &str) -> OidcConfig {
        let text = format!(
            r#"{{"oidc":{{"issuer":"http://idp.test","clientId":"my app","clientSecret":"s:e/c","tokenEndpointAuthMethod":"{method}",
                "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}}}}"#
        );
        let oidc = Config::parse(text.as_bytes()).unwrap().top_level.oidc;
        std::sync::Arc::unwrap_or_clone(oidc.unwrap())
    }

    fn provider() -> Provider {
        let url = |path: &str| HttpUrl::parse(&format!("http://idp.test{path}")).unwrap();
        Provider {
            issuer: "http://idp.test".into(),
            authorization_endpoint: url("/auth"),
            token_endpoint: url("/token"),
            jwks_uri: url("/jwks"),
            end_session_endpoint: None,
            callback_iss_required: false,
        }
    }

    fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn code_exchange_with_basic_auth() {
        let request = code_exchange(
            &oidc("client_secret_basic"),
            &provider(),
            &BTreeMap::new(),
            5000,
            "c0de",
            "v3r",
            "http://app/cb",
            None,
        );
        assert_eq!(header(&request, ":method"), Some("POST"));
        assert_eq!(header(&request, ":path"), Some("/token"));
        assert_eq!(request.cluster, "outbound|80||idp.test");
        let expected = format!("Basic {}", STANDARD.encode("my+app:s%3Ae%2Fc"));
        assert_eq!(header(&request, "authorization"), Some(expected.as_str()));
        let body = String::from_utf8(request.body.unwrap()).unwrap();
        assert_eq!(body, "grant_type=authorization_code&code=c0de&redirect_uri=http%3A%2F%2Fapp%2Fcb&code_verifier=v3r");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refresh_with_post_auth() {
        let request = refresh(
            &oidc("client_secret_post"),
            &provider(),
            &BTreeMap::new(),
            5000,
            "r-t",
            None,
        );
        assert_eq!(header(&request, "authorization"), None);
        let body = String::from_utf8(request.body.unwrap()).unwrap();
        assert_eq!(
            body,
            "grant_type=refresh_token&refresh_token=r-t&client_id=my+app&client_secret=s%3Ae%2Fc"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn client_secret_jwt_sends_an_assertion_never_the_secret() {
        let text = r#"{"oidc":{"issuer":"http://idp.test","clientId":"my app",
            "clientSecret":"0123456789abcdef0123456789abcdef","tokenEndpointAuthMethod":"client_secret_jwt",
            "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}}"#;
        let config = Config::parse(text.as_bytes()).unwrap();
        let jwt = config.top_level.oidc.unwrap();
        let assertion = client_assertion::client_secret_jwt(
            "my app",
            "0123456789abcdef0123456789abcdef",
            &audience(&jwt, &provider()),
            1_700_000_000,
            &[7; client_assertion::JTI_BYTES],
        );
        let request = refresh(
            &jwt,
            &provider(),
            &BTreeMap::new(),
            5000,
            "r-t",
            Some(&assertion),
        );
        assert_eq!(header(&request, "authorization"), None);
        let body = String::from_utf8(request.body.unwrap()).unwrap();
        let form: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(!body.contains("0123456789abcdef"));
        assert_eq!(form["client_id"], "my app");
        assert_eq!(
            form["client_assertion_type"],
            client_assertion::ASSERTION_TYPE
        );
        assert_eq!(form["client_assertion"], assertion);
        assert_eq!(audience(&jwt, &provider()), "http://idp.test/token");
        // Another audience where the IdP wants one.
        let auth0 = text.replace(
            r#""tokenEndpointAuthMethod""#,
            r#""clientAssertionAudience":"https://tenant.example/","tokenEndpointAuthMethod""#,
        );
        let auth0 = Config::parse(auth0.as_bytes())
            .unwrap()
            .top_level
            .oidc
            .unwrap();
        assert_eq!(audience(&auth0, &provider()), "https://tenant.example/");
        let basic_with_audience = text
            .replace("client_secret_jwt", "client_secret_basic")
            .replace(
                r#""clientId""#,
                r#""clientAssertionAudience":"x","clientId""#,
            );
        assert_eq!(
            Config::parse(basic_with_audience.as_bytes())
                .unwrap_err()
                .path,
            "oidc.clientAssertionAudience"
        );
        // A secret too short for HS256 is refused at load.
        let short = text.replace("0123456789abcdef0123456789abcdef", "short");
        let error = Config::parse(short.as_bytes()).unwrap_err();
        assert_eq!(error.path, "oidc.tokenEndpointAuthMethod");
        assert!(
            error.problem.contains("at least 32 bytes"),
            "{}",
            error.problem
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_success_and_reports_failures_without_tokens() {
        let ok = parse_response(Some(200), br#"{"access_token":"a","id_token":"i","refresh_token":"r","token_type":"Bearer","expires_in":60}"#).unwrap();
        assert_eq!(
            (
                ok.id_token.as_deref(),
                ok.refresh_token.as_deref(),
                ok.expires_in
            ),
            (Some("i"), Some("r"), Some(60))
        );
        let denied = parse_response(
            Some(400),
            br#"{"error":"invalid_grant","error_description":"secret-ish"}"#,
        )
        .unwrap_err();
        assert!(
            denied.contains("invalid_grant") && !denied.contains("secret-ish"),
            "{denied}"
        );
        assert!(parse_response(Some(200), b"<html>").is_err());
        assert!(parse_response(Some(200), br#"{"token_type":"bearer"}"#).is_err());
        assert!(parse_response(Some(200), br#"{"access_token":"a","token_type":"mac"}"#).is_err());
        assert!(parse_response(None, b"").is_err());
        assert!(parse_response(Some(503), b"upstream connect error")
            .unwrap_err()
            .contains("503"));
    }
}
