//! `introspection`: rules for tokens checked at an OAuth 2.0 introspection
//! endpoint (RFC 7662), beside `jwtRules`. Token locations, audiences and header
//! output are written as in `jwtRules`; the client credentials as in `oidc`.

use super::oidc::{KeyFields, Place};
use super::SourceKind;
use super::{fetch_timeout, http_url, At, Config, ConfigError, Env, Fields};
use super::{RawClaimToHeader, RawHeaderLocation, DEFAULT_FETCH_TIMEOUT_MS};
use crate::duration;
use crate::introspection::{
    Endpoint, IntrospectionRule, DEFAULT_CACHE_DURATION_MS, DEFAULT_NEGATIVE_CACHE_DURATION_MS,
};

/// At most a day: a revoked token is honoured until its entry expires.
const MAX_CACHE_DURATION_MS: u64 = 86_400_000;

pub(super) struct RawIntrospectionRule {
    issuer: Option<String>,
    introspection_endpoint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_from_env: Option<String>,
    token_endpoint_auth_method: Option<String>,
    client_private_key_from_env: Option<String>,
    client_key_id: Option<String>,
    client_certificate_from_env: Option<String>,
    client_assertion_alg: Option<String>,
    audiences: Vec<String>,
    pub(super) from_headers: Vec<RawHeaderLocation>,
    pub(super) from_params: Vec<String>,
    pub(super) from_cookies: Vec<String>,
    forward_original_token: bool,
    output_claim_to_headers: Vec<RawClaimToHeader>,
    cache_duration: Option<String>,
    negative_cache_duration: Option<String>,
    timeout: Option<String>,
}

impl RawIntrospectionRule {
    pub(super) fn read(f: &mut Fields) -> RawIntrospectionRule {
        RawIntrospectionRule {
            issuer: f.string("issuer"),
            introspection_endpoint: f.string("introspectionEndpoint"),
            client_id: f.string("clientId"),
            client_secret: f.string("clientSecret"),
            client_secret_from_env: f.string("clientSecretFromEnv"),
            token_endpoint_auth_method: f.string("tokenEndpointAuthMethod"),
            client_private_key_from_env: f.string("clientPrivateKeyFromEnv"),
            client_key_id: f.string("clientKeyId"),
            client_certificate_from_env: f.string("clientCertificateFromEnv"),
            client_assertion_alg: f.string("clientAssertionAlg"),
            audiences: f.strings("audiences"),
            from_headers: f.objects("fromHeaders", RawHeaderLocation::read),
            from_params: f.strings("fromParams"),
            from_cookies: f.strings("fromCookies"),
            forward_original_token: f.bool("forwardOriginalToken").unwrap_or(false),
            output_claim_to_headers: f.objects("outputClaimToHeaders", RawClaimToHeader::read),
            cache_duration: f.string("cacheDuration"),
            negative_cache_duration: f.string("negativeCacheDuration"),
            timeout: f.string("timeout"),
        }
    }
}

fn required(at: &At, value: &Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(value) if !value.is_empty() => Ok(value.clone()),
        _ => Err(at.error("is required")),
    }
}

fn cache_duration(at: &At, text: Option<&str>, default_ms: u64) -> Result<u64, ConfigError> {
    let millis = match text {
        None => default_ms,
        Some(text) => duration::parse_millis(text).map_err(|why| at.error(why))?,
    };
    if millis > MAX_CACHE_DURATION_MS {
        return Err(at.error("must be at most 24h"));
    }
    Ok(millis)
}

/// `clientSecret` or `clientSecretFromEnv`: exactly one. Errors name the
/// variable, never its value.
fn client_secret(at: &At, raw: &RawIntrospectionRule, env: Env) -> Result<String, ConfigError> {
    match (&raw.client_secret, &raw.client_secret_from_env) {
        (Some(_), Some(_)) => {
            Err(at.error("set only one of `clientSecret` and `clientSecretFromEnv`"))
        }
        (None, Some(variable)) => {
            let at = at.field("clientSecretFromEnv");
            if variable.is_empty() {
                return Err(at.error("must name an environment variable"));
            }
            match env(variable) {
                None => Err(at.error(format!("environment variable `{variable}` is not set"))),
                Some(value) if value.trim().is_empty() => {
                    Err(at.error(format!("environment variable `{variable}` is empty")))
                }
                Some(value) => Ok(value.trim().to_string()),
            }
        }
        (inline, None) => required(&at.field("clientSecret"), inline),
    }
}

impl Config {
    /// `introspection[index]`, at `at`.
    #[inline(never)]
    pub(super) fn add_introspection_rule(
        &mut self,
        at: &At,
        raw: &RawIntrospectionRule,
        env: Env,
    ) -> Result<(), ConfigError> {
        let issuer = required(&at.field("issuer"), &raw.issuer)?;
        if let Some(earlier) = self
            .introspection
            .iter()
            .position(|rule| rule.issuer == issuer)
        {
            return Err(at.field("issuer").error(format!(
                "`{issuer}` is already configured in introspection[{earlier}]"
            )));
        }
        let endpoint_at = at.field("introspectionEndpoint");
        let timeout_ms = match &raw.timeout {
            None => DEFAULT_FETCH_TIMEOUT_MS,
            Some(text) => fetch_timeout(&at.field("timeout"), text)?,
        };
        let endpoint = match &raw.introspection_endpoint {
            Some(text) => Endpoint::Url(http_url(&endpoint_at, text)?),
            None => {
                let url = crate::fetch::parse_http_url(&issuer).map_err(|_| {
                    endpoint_at
                        .error("is required: the issuer is not an http(s) URL to discover it from")
                })?;
                let kind = SourceKind::Discovery {
                    issuer: issuer.clone(),
                    url,
                };
                Endpoint::Discovered(self.add_source(kind, timeout_ms))
            }
        };
        let client_id = required(&at.field("clientId"), &raw.client_id)?;
        let private_key_jwt = raw.token_endpoint_auth_method.as_deref() == Some("private_key_jwt");
        let client_secret = match (&raw.client_secret, &raw.client_secret_from_env) {
            // The one method without a shared secret.
            (None, None) if private_key_jwt => String::new(),
            _ => client_secret(at, raw, env)?,
        };
        let client_auth = super::oidc::client_auth_method(
            &at.field("tokenEndpointAuthMethod"),
            raw.token_endpoint_auth_method.as_deref(),
            &client_secret,
        )?;
        let key_fields = KeyFields {
            private_key_from_env: raw.client_private_key_from_env.as_ref(),
            key_id: raw.client_key_id.as_ref(),
            certificate_from_env: raw.client_certificate_from_env.as_ref(),
            assertion_alg: raw.client_assertion_alg.as_ref(),
        };
        let place = Place { at, app: None, env };
        let client_key = key_fields.client_key(&place, client_auth)?;
        if let Some(index) = raw.audiences.iter().position(String::is_empty) {
            return Err(at.field("audiences").item(index).error("must not be empty"));
        }
        let cache_duration_ms = cache_duration(
            &at.field("cacheDuration"),
            raw.cache_duration.as_deref(),
            DEFAULT_CACHE_DURATION_MS,
        )?;
        let negative_cache_duration_ms = cache_duration(
            &at.field("negativeCacheDuration"),
            raw.negative_cache_duration.as_deref(),
            DEFAULT_NEGATIVE_CACHE_DURATION_MS,
        )?;
        let locations = self.locations_of(
            at,
            &raw.from_headers,
            &raw.from_params,
            &raw.from_cookies,
            false,
        )?;
        let output_claim_to_headers = self.claims_to_headers(
            &at.field("outputClaimToHeaders"),
            &raw.output_claim_to_headers,
        )?;
        self.introspection.push(IntrospectionRule {
            issuer,
            endpoint,
            client_id,
            client_secret,
            client_auth,
            client_key,
            audiences: raw.audiences.clone(),
            locations,
            forward_original_token: raw.forward_original_token,
            output_claim_to_headers,
            cache_duration_ms,
            negative_cache_duration_ms,
            timeout_ms,
        });
        Ok(())
    }
}
