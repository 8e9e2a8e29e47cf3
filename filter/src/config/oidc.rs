//! The `oidc` block: browser login with the authorization code flow.

use super::{header_name, http_url, At, Config, ConfigError, Env, Fields, SourceKind};
use crate::apps::HostPattern;
use crate::duration;
use crate::http_url::{HttpUrl, Scheme};
use crate::oidc::domain::AllowedDomain;
use crate::session::seal::{CookieKeys, KEY_BYTES, MAX_KEYS};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
pub const DEFAULT_CALLBACK_PATH: &str = "/oauth2/callback";
pub const DEFAULT_LOGOUT_PATH: &str = "/oauth2/logout";
pub const DEFAULT_COOKIE_NAME: &str = "oidc_session";
pub const DEFAULT_SESSION_TTL_MS: u64 = 24 * 3_600_000;
/// How long before its tokens expire a session is renewed (at most half their
/// lifetime ahead): a forwarded token is never one about to expire.
pub const DEFAULT_REFRESH_BEFORE_EXPIRY_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the OIDC default).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// `client_secret_jwt`: a fresh HS256 `client_assertion` signed with the
    /// secret, which itself is never sent (see `oidc::client_assertion`).
    SecretJwt,
    /// `private_key_jwt`: a fresh `client_assertion` the host signs with the
    /// client's private key (`OidcConfig::client_key`).
    PrivateKeyJwt,
}

/// The private key of `private_key_jwt`, as the host's `sign` takes it. Its
/// `Debug` shows the algorithm and key id, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub pem: String,
    pub algorithm: crate::oidc::client_assertion::KeyAlgorithm,
    pub key_id: Option<String>,
    /// `x5t#S256` of `clientCertificateFromEnv`'s certificate.
    pub thumbprint: Option<String>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// RFC 7518 §3.2: an HS256 key at least as long as the hash.
pub const MIN_CLIENT_SECRET_JWT_BYTES: usize = 32;

/// Which token goes upstream after a browser login, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardToken {
    pub id_token: bool,
    /// `authorization` means `Authorization: Bearer <token>`; any other header gets the bare token.
    pub header: String,
}

/// `Debug` (below) prints no secret: not the client secret, not the cookie keys.
#[derive(Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub callback_path: String,
    pub logout_path: String,
    pub post_logout_redirect_uri: Option<String>,
    pub cookie_name: String,
    /// `<cookieName>_login`: the state, nonce and PKCE verifier of a login under way.
    pub login_cookie_name: String,
    /// What the session and login cookies are sealed for (their associated data):
    /// the cookie's name, and for an app's own login also the app, so that a
    /// cookie of one app never opens in another even under the same keys.
    pub session_purpose: String,
    pub login_purpose: String,
    pub cookie_domain: Option<String>,
    /// `cookieDomain` without its leading dot, lowercase: the hosts a sign-in
    /// with `redirectUri` spans.
    pub domain: Option<String>,
    /// `redirectUri` as written: the one callback of every login of this block,
    /// from any host of its domain. `None`: each host's own `<origin><callbackPath>`.
    pub redirect_uri: Option<String>,
    /// The host of `redirectUri`, lowercase.
    pub redirect_host: Option<String>,
    /// `allowedRedirectDomains` (default: the cookie domain and its subdomains):
    /// where a login that ends on the callback host may return.
    pub allowed_redirect_domains: Vec<AllowedDomain>,
    pub cookie_secure: bool,
    pub session_ttl_ms: u64,
    /// `refreshBeforeExpiry`, in seconds.
    pub refresh_before_expiry_seconds: u64,
    pub cookie_secrets: Vec<[u8; KEY_BYTES]>,
    pub cookie_keys: CookieKeys,
    /// The app whose own `oidc` block this is; `None` at the top level.
    pub app: Option<String>,
    pub client_auth: ClientAuth,
    /// `clientAssertionAudience`: the `aud` of a client assertion when the IdP
    /// wants another than its token endpoint URL (Auth0: `https://<tenant>/`).
    pub client_assertion_audience: Option<String>,
    /// `private_key_jwt`'s key (`clientPrivateKeyFromEnv`).
    pub client_key: Option<ClientKey>,
    pub forward_token: Option<ForwardToken>,
    /// Claims of a session's ID token copied to upstream headers, as for bearer tokens.
    pub output_claim_to_headers: Vec<super::ClaimToHeader>,
    pub timeout_ms: u64,
    /// Index into `Config::sources`: discovery of this issuer (endpoints and keys).
    pub source: usize,
}

impl OidcConfig {
    /// What a cookie named `name` of this block is sealed for (see `session_purpose`).
    pub fn purpose_of(&self, name: &str) -> String {
        match &self.app {
            Some(app) => format!("{name} app={app}"),
            None => name.to_string(),
        }
    }
}

/// An allowlist of fields: one added later (a secret, perhaps) stays out of every
/// `{:?}` until someone decides it is safe to print.
impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("app", &self.app)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_domain", &self.cookie_domain)
            .field("redirect_uri", &self.redirect_uri)
            .field("cookie_secrets", &self.cookie_secrets.len())
            .field("callback_path", &self.callback_path)
            .field("logout_path", &self.logout_path)
            .finish_non_exhaustive()
    }
}

pub(super) struct RawOidc {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_from_env: Option<String>,
    scopes: Option<Vec<String>>,
    callback_path: Option<String>,
    logout_path: Option<String>,
    post_logout_redirect_uri: Option<String>,
    cookie_name: Option<String>,
    cookie_domain: Option<String>,
    redirect_uri: Option<String>,
    allowed_redirect_domains: Option<Vec<String>>,
    cookie_secure: Option<bool>,
    session_ttl: Option<String>,
    refresh_before_expiry: Option<String>,
    cookie_secrets: Option<Vec<String>>,
    cookie_secrets_from_env: Option<String>,
    token_endpoint_auth_method: Option<String>,
    client_assertion_audience: Option<String>,
    client_private_key_from_env: Option<String>,
    client_key_id: Option<String>,
    client_certificate_from_env: Option<String>,
    client_assertion_alg: Option<String>,
    forward_token: Option<RawForwardToken>,
    output_claim_to_headers: Vec<super::RawClaimToHeader>,
    timeout: Option<String>,
}

pub(super) struct RawForwardToken {
    token: String,
    header: Option<String>,
}

impl RawOidc {
    pub(super) fn read(f: &mut Fields) -> RawOidc {
        RawOidc {
            issuer: f.string("issuer"),
            client_id: f.string("clientId"),
            client_secret: f.string("clientSecret"),
            client_secret_from_env: f.string("clientSecretFromEnv"),
            scopes: f.optional_strings("scopes"),
            callback_path: f.string("callbackPath"),
            logout_path: f.string("logoutPath"),
            post_logout_redirect_uri: f.string("postLogoutRedirectUri"),
            cookie_name: f.string("cookieName"),
            cookie_domain: f.string("cookieDomain"),
            redirect_uri: f.string("redirectUri"),
            allowed_redirect_domains: f.optional_strings("allowedRedirectDomains"),
            cookie_secure: f.bool("cookieSecure"),
            session_ttl: f.string("sessionTtl"),
            refresh_before_expiry: f.string("refreshBeforeExpiry"),
            cookie_secrets: f.optional_strings("cookieSecrets"),
            cookie_secrets_from_env: f.string("cookieSecretsFromEnv"),
            token_endpoint_auth_method: f.string("tokenEndpointAuthMethod"),
            client_assertion_audience: f.string("clientAssertionAudience"),
            client_private_key_from_env: f.string("clientPrivateKeyFromEnv"),
            client_key_id: f.string("clientKeyId"),
            client_certificate_from_env: f.string("clientCertificateFromEnv"),
            client_assertion_alg: f.string("clientAssertionAlg"),
            forward_token: f.object("forwardToken", RawForwardToken::read),
            output_claim_to_headers: f
                .objects("outputClaimToHeaders", super::RawClaimToHeader::read),
            timeout: f.string("timeout"),
        }
    }
}

impl RawForwardToken {
    fn read(f: &mut Fields) -> RawForwardToken {
        RawForwardToken {
            token: f.required_string("token"),
            header: f.string("header"),
        }
    }
}

fn required(at: &At, value: &Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(value) if !value.is_empty() => Ok(value.clone()),
        _ => Err(at.error("is required")),
    }
}

fn local_path(at: &At, value: Option<&str>, default: &str) -> Result<String, ConfigError> {
    let value = value.unwrap_or(default);
    if !value.starts_with('/') || value.starts_with("//") || value.contains(['?', '#']) {
        return Err(at.error(format!(
            "`{value}` must be a path starting with a single `/`, without query"
        )));
    }
    Ok(value.to_string())
}

/// `cookieDomain` (the cookies' `Domain` attribute): a host name, with or without
/// a leading dot; lowercase, without it, for matching hosts against it.
#[inline(never)]
fn cookie_domain(at: &At, text: &str) -> Result<String, ConfigError> {
    let name = text.strip_prefix('.').unwrap_or(text);
    match HostPattern::parse(name) {
        Ok(HostPattern::Exact(name)) => Ok(name),
        _ => Err(at.error(format!(
            "`{text}` is not a domain name (lowercase, no scheme or port), like `example.com`"
        ))),
    }
}

/// A 32-byte key, written in standard or URL-safe base64. The problem never
/// quotes the text: it is a secret.
/// How to make a key, said by every error about one.
const MAKE_A_KEY: &str = "make one with `openssl rand -base64 32`";

fn cookie_secret(text: &str) -> Result<[u8; KEY_BYTES], String> {
    let trimmed = text.trim_end_matches('=');
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| format!("is not base64 of {KEY_BYTES} random bytes; {MAKE_A_KEY}"))?;
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
        // `openssl rand -hex 16` (oauth2-proxy's advice) is 32 hex digits, which also
        // read as base64, but of 24 bytes.
        let hex = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
        let hint = if hex {
            " (it looks like hex, as `openssl rand -hex` makes; this filter reads base64)"
        } else {
            ""
        };
        format!(
            "must be base64 of {KEY_BYTES} random bytes, not {}{hint}; {MAKE_A_KEY}",
            bytes.len()
        )
    })
}

/// Where an `oidc` block sits: its path (`oidc`, `apps[1].oidc`), the app it
/// belongs to, and the environment its `...FromEnv` fields read.
pub(super) struct Place<'a> {
    pub at: &'a At<'a>,
    pub app: Option<&'a str>,
    pub env: Env<'a>,
}

impl<'a> Place<'a> {
    fn field(&self, name: &'a str) -> At<'a> {
        self.at.field(name)
    }

    /// The value of the variable named in field `field`: set and not blank.
    /// Errors name the variable, never its value.
    fn env_value(&self, field: &'a str, variable: &str) -> Result<String, ConfigError> {
        let at = self.field(field);
        if variable.is_empty() {
            return Err(at.error("must name an environment variable"));
        }
        match (self.env)(variable) {
            None => Err(at.error(format!("environment variable `{variable}` is not set"))),
            Some(value) if value.trim().is_empty() => {
                Err(at.error(format!("environment variable `{variable}` is empty")))
            }
            Some(value) => Ok(value),
        }
    }

    /// `clientSecret` or `clientSecretFromEnv`: exactly one.
    #[inline(never)]
    fn client_secret(
        &self,
        inline: &Option<String>,
        from_env: &Option<String>,
    ) -> Result<String, ConfigError> {
        match (inline, from_env) {
            (Some(_), Some(_)) => Err(self
                .at
                .error("set only one of `clientSecret` and `clientSecretFromEnv`")),
            (None, Some(variable)) => self
                .env_value("clientSecretFromEnv", variable)
                .map(|value| value.trim().to_string()),
            (inline, None) => required(&self.field("clientSecret"), inline),
        }
    }

    /// `cookieSecrets` or `cookieSecretsFromEnv` (keys separated by commas or
    /// whitespace): exactly one, with 1 to 8 keys.
    #[inline(never)]
    fn cookie_secrets(
        &self,
        inline: &Option<Vec<String>>,
        from_env: &Option<String>,
    ) -> Result<Vec<[u8; KEY_BYTES]>, ConfigError> {
        let value; // of the environment variable, which `texts` borrow from
        let mut texts = Vec::new();
        let (field, variable) = match (inline, from_env) {
            (Some(_), Some(_)) => {
                return Err(self
                    .at
                    .error("set only one of `cookieSecrets` and `cookieSecretsFromEnv`"))
            }
            (None, Some(variable)) => {
                value = self.env_value("cookieSecretsFromEnv", variable)?;
                for text in value.split(|c: char| c == ',' || c.is_whitespace()) {
                    if !text.is_empty() {
                        texts.push(text);
                    }
                }
                ("cookieSecretsFromEnv", Some(variable))
            }
            (inline, None) => {
                for text in inline.iter().flatten() {
                    texts.push(text.as_str());
                }
                ("cookieSecrets", None)
            }
        };
        let at = self.field(field);
        if texts.is_empty() {
            return Err(at.error("at least one base64 32-byte key is required"));
        }
        if texts.len() > MAX_KEYS {
            return Err(at.error(format!(
                "at most {MAX_KEYS} keys (each is tried on every cookie)"
            )));
        }
        let mut keys = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let key = cookie_secret(text).map_err(|problem| match &variable {
                None => at.item(index).error(problem),
                Some(variable) => at.error(format!(
                    "key {} in environment variable `{variable}` {problem}",
                    index + 1
                )),
            })?;
            keys.push(key);
        }
        Ok(keys)
    }
}

impl RawOidc {
    /// `redirectUri`: one absolute callback URL for every host of the block, on a
    /// host within `cookieDomain` (which it needs: the login cookie set on the host
    /// where a login starts must reach the callback host). `https`, except where
    /// the block speaks plain HTTP anyway (`cookieSecure: false`, for local use).
    /// No query: the callback's query is the IdP's.
    #[inline(never)]
    fn central_callback(
        &self,
        place: &Place,
        domain: Option<&str>,
        cookie_secure: bool,
    ) -> Result<Option<HttpUrl>, ConfigError> {
        let Some(text) = &self.redirect_uri else {
            return Ok(None);
        };
        let at = place.field("redirectUri");
        if self.callback_path.is_some() {
            return Err(place.field("callbackPath").error(
                "set only one of `callbackPath` and `redirectUri` (whose path is the callback path)",
            ));
        }
        let url = http_url(&at, text)?;
        if url.scheme() == Scheme::Http && cookie_secure {
            return Err(at.error(format!(
                "`{text}` must be https (http only with `cookieSecure: false`, for plain-HTTP \
                 local use)"
            )));
        }
        if url.query().is_some() {
            return Err(at.error(format!("`{text}` must have no query")));
        }
        local_path(&at, Some(url.path()), DEFAULT_CALLBACK_PATH)?;
        let Some(domain) = domain else {
            return Err(at.error(
                "needs `cookieDomain` (the domain of every host it signs in, e.g. \
                 `example.com`): the login cookie must reach the callback host",
            ));
        };
        if !crate::oidc::domain::within(url.host(), domain) {
            return Err(at.error(format!(
                "host `{}` is not within cookieDomain `{domain}`",
                url.host()
            )));
        }
        Ok(Some(url))
    }

    /// `allowedRedirectDomains`, only with `redirectUri` (without it a login
    /// returns to the host it started on); by default the cookie domain.
    #[inline(never)]
    fn allowed_redirect_domains(
        &self,
        place: &Place,
        central: &Option<HttpUrl>,
        domain: &Option<String>,
    ) -> Result<Vec<AllowedDomain>, ConfigError> {
        let at = place.field("allowedRedirectDomains");
        match (&self.allowed_redirect_domains, central, domain) {
            (Some(_), None, _) => Err(at.error(
                "only with `redirectUri`: without it every login returns to the host it \
                 started on",
            )),
            (Some(texts), Some(_), _) => {
                if texts.is_empty() {
                    return Err(at.error("at least one host or `.domain`"));
                }
                let mut allowed = Vec::with_capacity(texts.len());
                for (index, text) in texts.iter().enumerate() {
                    allowed
                        .push(AllowedDomain::parse(text).map_err(|why| at.item(index).error(why))?);
                }
                Ok(allowed)
            }
            (None, Some(_), Some(domain)) => Ok(vec![AllowedDomain::domain_and_subdomains(domain)]),
            _ => Ok(Vec::new()),
        }
    }

    /// `private_key_jwt`'s key from `clientPrivateKeyFromEnv`, with `clientKeyId`
    /// and `clientAssertionAlg`; these fields belong to that method alone.
    fn client_key(
        &self,
        place: &Place,
        client_auth: ClientAuth,
    ) -> Result<Option<ClientKey>, ConfigError> {
        let fields = KeyFields {
            private_key_from_env: self.client_private_key_from_env.as_ref(),
            key_id: self.client_key_id.as_ref(),
            certificate_from_env: self.client_certificate_from_env.as_ref(),
            assertion_alg: self.client_assertion_alg.as_ref(),
        };
        fields.client_key(place, client_auth)
    }
}

/// `private_key_jwt`'s fields of an `oidc` block or an `introspection` rule.
pub(super) struct KeyFields<'a> {
    pub private_key_from_env: Option<&'a String>,
    pub key_id: Option<&'a String>,
    pub certificate_from_env: Option<&'a String>,
    pub assertion_alg: Option<&'a String>,
}

impl KeyFields<'_> {
    /// The key from `clientPrivateKeyFromEnv`, with `clientKeyId` and
    /// `clientAssertionAlg`; these fields belong to `private_key_jwt` alone.
    pub(super) fn client_key(
        &self,
        place: &Place,
        client_auth: ClientAuth,
    ) -> Result<Option<ClientKey>, ConfigError> {
        use crate::oidc::client_assertion::{key_algorithm, KeyAlgorithm};
        let key_at = place.field("clientPrivateKeyFromEnv");
        if client_auth != ClientAuth::PrivateKeyJwt {
            for (name, set) in [
                (
                    "clientPrivateKeyFromEnv",
                    self.private_key_from_env.is_some(),
                ),
                ("clientKeyId", self.key_id.is_some()),
                (
                    "clientCertificateFromEnv",
                    self.certificate_from_env.is_some(),
                ),
                ("clientAssertionAlg", self.assertion_alg.is_some()),
            ] {
                if set {
                    return Err(place
                        .field(name)
                        .error("belongs to `tokenEndpointAuthMethod: private_key_jwt`"));
                }
            }
            return Ok(None);
        }
        let Some(variable) = self.private_key_from_env else {
            return Err(key_at.error(
                "private_key_jwt needs the client's private key: name the environment \
                 variable that holds it (PEM, PKCS#8)",
            ));
        };
        let pem = place.env_value("clientPrivateKeyFromEnv", variable)?;
        let algorithm = key_algorithm(&pem)
            .map_err(|why| key_at.error(format!("environment variable `{variable}` {why}")))?;
        match (self.assertion_alg.map(String::as_str), algorithm) {
            (None | Some("RS256"), KeyAlgorithm::Rs256)
            | (None | Some("ES256"), KeyAlgorithm::Es256) => {}
            (Some(other), _) => {
                return Err(place.field("clientAssertionAlg").error(format!(
                    "`{other}`: the key in `{variable}` signs {}",
                    algorithm.name()
                )))
            }
        }
        if let Some(key_id) = self.key_id {
            if key_id.is_empty() || !crate::request::is_safe_header_value(key_id) {
                return Err(place
                    .field("clientKeyId")
                    .error("must be the key's `kid` at the IdP"));
            }
        }
        let thumbprint = match self.certificate_from_env {
            None => None,
            Some(variable) => {
                let certificate = place.env_value("clientCertificateFromEnv", variable)?;
                let thumbprint = crate::oidc::client_assertion::certificate_thumbprint(
                    &certificate,
                )
                .map_err(|why| {
                    place
                        .field("clientCertificateFromEnv")
                        .error(format!("environment variable `{variable}` {why}"))
                })?;
                Some(thumbprint)
            }
        };
        Ok(Some(ClientKey {
            pem: pem.trim().to_string(),
            algorithm,
            key_id: self.key_id.cloned(),
            thumbprint,
        }))
    }
}

/// The half of an `oidc` block about the session (see [`RawOidc::cookie_settings`]).
struct CookieSettings {
    cookie_secure: bool,
    domain: Option<String>,
    central: Option<HttpUrl>,
    callback_path: String,
    allowed_redirect_domains: Vec<AllowedDomain>,
    logout_path: String,
    cookie_name: String,
    cookie_secrets: Vec<[u8; 32]>,
    session_ttl_ms: u64,
    refresh_before_expiry_ms: u64,
}

impl RawOidc {
    /// Where the session lives: the cookies, their paths and domain, the redirect
    /// URI and the session's lifetime. A function of its own, never inlined into
    /// `compile`, so that neither body is large for Envoy's TurboFan (see
    /// docs/performance.md, "Footprint").
    #[inline(never)]
    fn cookie_settings(&self, place: &Place) -> Result<CookieSettings, ConfigError> {
        let cookie_secure = self.cookie_secure.unwrap_or(true);
        let domain = match &self.cookie_domain {
            Some(text) => Some(cookie_domain(&place.field("cookieDomain"), text)?),
            None => None,
        };
        let central = self.central_callback(place, domain.as_deref(), cookie_secure)?;
        let callback_path = match &central {
            Some(url) => url.path().to_string(),
            None => local_path(
                &place.field("callbackPath"),
                self.callback_path.as_deref(),
                DEFAULT_CALLBACK_PATH,
            )?,
        };
        let allowed_redirect_domains = self.allowed_redirect_domains(place, &central, &domain)?;
        let logout_at = place.field("logoutPath");
        let logout_path = local_path(&logout_at, self.logout_path.as_deref(), DEFAULT_LOGOUT_PATH)?;
        if callback_path == logout_path {
            return Err(logout_at.error("must differ from callbackPath"));
        }
        if let Some(uri) = &self.post_logout_redirect_uri {
            if !uri.starts_with('/') || uri.starts_with("//") {
                http_url(&place.field("postLogoutRedirectUri"), uri)?;
            }
        }
        let cookie_name = match (&self.cookie_name, place.app) {
            (Some(name), _) => name.clone(),
            (None, Some(app)) => format!("{DEFAULT_COOKIE_NAME}_{app}"),
            (None, None) => DEFAULT_COOKIE_NAME.to_string(),
        };
        header_name(&place.field("cookieName"), &cookie_name)?;
        let cookie_secrets =
            place.cookie_secrets(&self.cookie_secrets, &self.cookie_secrets_from_env)?;
        let ttl_at = place.field("sessionTtl");
        let session_ttl_ms = match &self.session_ttl {
            None => DEFAULT_SESSION_TTL_MS,
            Some(text) => duration::parse_millis(text).map_err(|why| ttl_at.error(why))?,
        };
        if session_ttl_ms < 60_000 {
            return Err(ttl_at.error("must be at least 1m"));
        }
        let ahead_at = place.field("refreshBeforeExpiry");
        let refresh_before_expiry_ms = match &self.refresh_before_expiry {
            None => DEFAULT_REFRESH_BEFORE_EXPIRY_MS,
            Some(text) => duration::parse_millis(text).map_err(|why| ahead_at.error(why))?,
        };
        if refresh_before_expiry_ms > 3_600_000 {
            return Err(ahead_at.error("must be at most 1h"));
        }
        Ok(CookieSettings {
            cookie_secure,
            domain,
            central,
            callback_path,
            allowed_redirect_domains,
            logout_path,
            cookie_name,
            cookie_secrets,
            session_ttl_ms,
            refresh_before_expiry_ms,
        })
    }

    /// The validated block. The issuer's discovery and the headers the filter sets
    /// are registered in `config`.
    pub(super) fn compile(
        &self,
        place: &Place,
        config: &mut Config,
    ) -> Result<OidcConfig, ConfigError> {
        let issuer_at = place.field("issuer");
        let issuer = required(&issuer_at, &self.issuer)?;
        let issuer_url = http_url(&issuer_at, &issuer)?;
        let client_id = required(&place.field("clientId"), &self.client_id)?;
        let private_key_jwt = self.token_endpoint_auth_method.as_deref() == Some("private_key_jwt");
        let client_secret = match (&self.client_secret, &self.client_secret_from_env) {
            // The one method without a shared secret.
            (None, None) if private_key_jwt => String::new(),
            (inline, from_env) => place.client_secret(inline, from_env)?,
        };
        let scopes = match &self.scopes {
            Some(scopes) => scopes.clone(),
            None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
        };
        let scopes_at = place.field("scopes");
        if !scopes.iter().any(|scope| scope == "openid") {
            return Err(scopes_at.error("must include `openid`"));
        }
        if let Some(index) = scopes
            .iter()
            .position(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(scopes_at.item(index).error("must be one non-empty word"));
        }
        let cookies = self.cookie_settings(place)?;
        let client_auth = client_auth_method(
            &place.field("tokenEndpointAuthMethod"),
            self.token_endpoint_auth_method.as_deref(),
            &client_secret,
        )?;
        let client_key = self.client_key(place, client_auth)?;
        let audience_at = place.field("clientAssertionAudience");
        let client_assertion_audience = match &self.client_assertion_audience {
            None => None,
            Some(_)
                if !matches!(
                    client_auth,
                    ClientAuth::SecretJwt | ClientAuth::PrivateKeyJwt
                ) =>
            {
                return Err(audience_at.error(
                    "only client_secret_jwt and private_key_jwt send an assertion; set \
                     tokenEndpointAuthMethod",
                ))
            }
            Some(audience)
                if audience.is_empty() || !crate::request::is_safe_header_value(audience) =>
            {
                return Err(audience_at.error("must be the URL the IdP expects as `aud`"))
            }
            Some(audience) => Some(audience.clone()),
        };
        let forward_at = place.field("forwardToken");
        let forward_token = match &self.forward_token {
            Some(raw) => Some(compile_forward(&forward_at, raw)?),
            None => None,
        };
        if forward_token.is_some() && !scopes.iter().any(|scope| scope == "offline_access") {
            let warning = forward_at.error(
                "`scopes` has no `offline_access`: if the IdP then issues no refresh token, \
                 the token is forwarded only until it expires, while the session lasts \
                 until `sessionTtl`; add `offline_access` to `scopes` or shorten `sessionTtl`",
            );
            config.warnings.push(warning.to_string());
        }
        let timeout_ms = match &self.timeout {
            None => super::DEFAULT_FETCH_TIMEOUT_MS,
            Some(text) => super::fetch_timeout(&place.field("timeout"), text)?,
        };
        let output_claim_to_headers = config.claims_to_headers(
            &place.field("outputClaimToHeaders"),
            &self.output_claim_to_headers,
        )?;
        // A forwarded token in any header but `Authorization` is an identity header:
        // client copies are stripped. `Authorization` is replaced outright instead,
        // since bearer clients send their own tokens there.
        if let Some(forward) = forward_token
            .as_ref()
            .filter(|f| f.header != "authorization")
        {
            config.output_header(&forward_at.field("header"), &forward.header)?;
        }
        let source = config.add_source(
            SourceKind::Discovery {
                issuer: issuer.clone(),
                url: issuer_url,
            },
            timeout_ms,
        );
        let login_cookie_name = format!("{}_login", cookies.cookie_name);
        let purpose = |name: &str| match place.app {
            Some(app) => format!("{name} app={app}"),
            None => name.to_string(),
        };
        Ok(OidcConfig {
            issuer,
            client_id,
            client_secret,
            scopes,
            callback_path: cookies.callback_path,
            logout_path: cookies.logout_path,
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
            session_purpose: purpose(&cookies.cookie_name),
            login_purpose: purpose(&login_cookie_name),
            cookie_name: cookies.cookie_name,
            login_cookie_name,
            cookie_domain: self.cookie_domain.clone(),
            domain: cookies.domain,
            redirect_uri: cookies.central.as_ref().and(self.redirect_uri.clone()),
            redirect_host: cookies.central.map(|url| url.host().to_string()),
            allowed_redirect_domains: cookies.allowed_redirect_domains,
            cookie_secure: cookies.cookie_secure,
            session_ttl_ms: cookies.session_ttl_ms,
            refresh_before_expiry_seconds: cookies.refresh_before_expiry_ms / 1000,
            cookie_keys: CookieKeys::new(&cookies.cookie_secrets),
            cookie_secrets: cookies.cookie_secrets,
            app: place.app.map(str::to_string),
            client_auth,
            client_assertion_audience,
            client_key,
            forward_token,
            output_claim_to_headers,
            timeout_ms,
            source,
        })
    }
}

#[inline(never)]
fn compile_forward(at: &At, raw: &RawForwardToken) -> Result<ForwardToken, ConfigError> {
    let id_token = match raw.token.as_str() {
        "id_token" => true,
        "access_token" => false,
        other => {
            return Err(at
                .field("token")
                .error(format!("`{other}`: use id_token or access_token")))
        }
    };
    let header = header_name(
        &at.field("header"),
        raw.header.as_deref().unwrap_or("authorization"),
    )?;
    Ok(ForwardToken { id_token, header })
}

/// `tokenEndpointAuthMethod` (of an `oidc` block or an introspection rule), at `at`:
/// `client_secret_jwt` needs a secret HS256 can use.
pub(crate) fn client_auth_method(
    at: &At,
    method: Option<&str>,
    client_secret: &str,
) -> Result<ClientAuth, ConfigError> {
    match method {
        None | Some("client_secret_basic") => Ok(ClientAuth::Basic),
        Some("client_secret_post") => Ok(ClientAuth::Post),
        Some("client_secret_jwt") if client_secret.len() < MIN_CLIENT_SECRET_JWT_BYTES => Err(at
            .error(format!(
                "client_secret_jwt signs with HS256, which needs a client secret of at \
                 least {MIN_CLIENT_SECRET_JWT_BYTES} bytes (RFC 7518 3.2); this one has {}",
                client_secret.len()
            ))),
        Some("client_secret_jwt") => Ok(ClientAuth::SecretJwt),
        Some("private_key_jwt") => Ok(ClientAuth::PrivateKeyJwt),
        Some(other) => Err(at.error(format!(
            "`{other}`: use client_secret_basic, client_secret_post, client_secret_jwt \
             or private_key_jwt"
        ))),
    }
}
