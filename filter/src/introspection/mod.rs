//! OAuth 2.0 token introspection (RFC 7662) for tokens that are not JWTs of a
//! `jwtRules` issuer: which tokens go to it ([`route`]), what an endpoint's answer
//! means ([`decision`]), and what a worker remembers of answers and calls in flight
//! ([`state`]). The host only makes the calls the core asks for.

pub mod decision;
pub mod state;

use crate::config::{ClaimToHeader, ClientAuth, ClientKey, Config};
use crate::extractor::Found;
use crate::fetch::HttpRequest;
use crate::http_url::HttpUrl;
use crate::oidc::flow::HostCrypto;
use crate::oidc::token_endpoint::{client_assertion, client_post, Client};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `source` of the [`crate::authenticator::KeyWait`] of a request waiting for
/// another request's introspection of the same token.
pub const WAIT: usize = usize::MAX;

pub const DEFAULT_CACHE_DURATION_MS: u64 = 60_000;
pub const DEFAULT_NEGATIVE_CACHE_DURATION_MS: u64 = 5_000;
/// Largest introspection reply read; bigger is a failure (fail closed).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// An `introspection` rule. Its `Debug` prints no secret.
#[derive(Clone)]
pub struct IntrospectionRule {
    pub issuer: String,
    pub endpoint: Endpoint,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// `private_key_jwt`'s key, which the host signs with.
    pub client_key: Option<ClientKey>,
    pub audiences: Vec<String>,
    /// Indices into [`Config::locations`].
    pub locations: Vec<usize>,
    pub forward_original_token: bool,
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub cache_duration_ms: u64,
    pub negative_cache_duration_ms: u64,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for IntrospectionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionRule")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("client_auth", &self.client_auth)
            .field("locations", &self.locations)
            .finish_non_exhaustive()
    }
}

/// Where a rule's introspection endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `introspectionEndpoint`.
    Url(HttpUrl),
    /// The `introspection_endpoint` of the issuer's discovery document: index into
    /// [`Config::sources`] (shared with `jwtRules` and `oidc` of that issuer).
    Discovered(usize),
}

/// The `introspection_endpoint` of a discovery document for `issuer` (which it
/// must name, as OIDC Discovery requires).
pub fn discovered_endpoint(body: &[u8], issuer: &str) -> Option<HttpUrl> {
    let document = crate::strict_json::parse(body).ok()?;
    if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return None;
    }
    let text = document.get("introspection_endpoint")?.as_str()?;
    crate::fetch::parse_http_url(text).ok()
}

/// The token of `found` that goes to introspection, and its rule: a token in a
/// rule's location that is not a JWS whose `iss` is a `jwtRules` issuer (those go
/// to `jwtRules`). A JWS of an introspection rule's own issuer goes to that rule.
///
/// `verified_jwt` says whether the verified-token cache holds a token: such a token
/// is a JWT of a `jwtRules` issuer already, and is not parsed again to learn it
/// (the cached path of a JWT must not pay for a parse because introspection rules
/// exist).
pub fn route<'f>(
    config: &Config,
    found: &'f [Found],
    verified_jwt: &mut dyn FnMut(&str) -> bool,
) -> Option<(usize, &'f Found)> {
    if config.introspection.is_empty() {
        return None;
    }
    found.iter().find_map(|item| {
        if verified_jwt(&item.token) {
            return None;
        }
        let issuer = jws_issuer(&item.token, config.max_token_bytes);
        if let Some(issuer) = &issuer {
            if config.rules.iter().any(|rule| &rule.issuer == issuer) {
                return None;
            }
        }
        let accepts = |rule: &IntrospectionRule| rule.locations.contains(&item.location);
        let own = issuer.as_ref().and_then(|issuer| {
            config
                .introspection
                .iter()
                .position(|rule| &rule.issuer == issuer && accepts(rule))
        });
        own.or_else(|| config.introspection.iter().position(accepts))
            .map(|index| (index, item))
    })
}

/// The `iss` of a token that parses as a JWS (its signature unchecked).
fn jws_issuer(token: &str, max_bytes: usize) -> Option<String> {
    let jws = crate::token::parse(token, max_bytes).ok()?;
    match jws.claims.get("iss") {
        Some(Value::String(issuer)) => Some(issuer.clone()),
        _ => None,
    }
}

/// The introspection request for `token` (RFC 7662 section 2.1), authenticated
/// as the rule's client. `host` gives the `jti` of a `client_secret_jwt`
/// assertion; `Err` when it cannot.
pub fn request(
    rule: &IntrospectionRule,
    endpoint: &HttpUrl,
    token: &str,
    clusters: &BTreeMap<String, String>,
    now: u64,
    host: &mut dyn HostCrypto,
) -> Result<HttpRequest, String> {
    let client = Client {
        id: &rule.client_id,
        secret: &rule.client_secret,
        auth: rule.client_auth,
    };
    let audience = endpoint.to_string();
    let assertion = client_assertion(&client, rule.client_key.as_ref(), &audience, now, host)?;
    let form = [("token", token), ("token_type_hint", "access_token")];
    Ok(client_post(
        &client,
        endpoint,
        clusters,
        rule.timeout_ms,
        &form,
        assertion.as_deref(),
    ))
}

#[cfg(test)]
mod tests;
