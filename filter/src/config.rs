//! Plugin configuration: Istio `jwtRules` plus the few settings Envoy needs that Istio
//! derives itself. Parsed and validated once at load; a bad field is an error that
//! names it, never a silent default.

mod apps;
mod at;
mod fields;
mod introspection;
mod oidc;

pub use oidc::{ClientAuth, ClientKey, ForwardToken, OidcConfig};

use crate::apps::App;
use crate::authz::pattern::Pattern;
use crate::authz::policy::{self, Policy, RawPolicy};
use crate::cache::Limits;
use crate::duration;
use crate::http_url::HttpUrl;
use crate::jwks::{self, KeySet};
use crate::peer::PeerNeeds;
use crate::signature_backend::{SignatureBackend, SignatureVerification};
pub(crate) use at::At;
pub(crate) use fields::Fields;
use std::collections::BTreeMap;
use std::fmt;
use std::mem::take;
use std::sync::Arc;

pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_JWKS_CACHE_DURATION_MS: u64 = 600_000;
pub const DEFAULT_JWKS_MIN_REFETCH_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_JWKS_BYTES: usize = 128 * 1024;
const MAX_FETCH_TIMEOUT_MS: u64 = 60_000;
const MAX_CLOCK_SKEW_SECONDS: u64 = 3_600;
/// Per worker VM. A verified-token entry holds the claims (~0.5–2 KB for real
/// tokens); a session entry holds a whole session (up to a few KB).
pub const DEFAULT_TOKEN_CACHE: Limits = Limits {
    max_entries: 8192,
    max_bytes: 4 * 1024 * 1024,
};
pub const DEFAULT_SESSION_CACHE: Limits = Limits {
    max_entries: 2048,
    max_bytes: 4 * 1024 * 1024,
};
const CACHE_ENTRIES_MAX: usize = 1_000_000;
const CACHE_BYTES_MAX: usize = 256 * 1024 * 1024;
const TOKEN_BYTES_RANGE: (usize, usize) = (256, 1024 * 1024);
const JWKS_BYTES_RANGE: (usize, usize) = (1024, 4 * 1024 * 1024);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where in the configuration, e.g. `jwtRules[0].fromHeaders[1].name`.
    pub path: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// The VM's environment variables (WASI), for secrets given by name.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where a token may be found. Header names are kept lowercase, as Envoy passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header { name: String, prefix: String },
    Param(String),
    Cookie(String),
}

/// Where a rule's keys come from.
#[derive(Debug, Clone)]
pub enum RuleKeys {
    Inline(KeySet),
    /// Index into [`Config::sources`].
    Remote(usize),
}

/// A JWKS fetched over HTTP, shared by every rule that names the same URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Jwks(HttpUrl),
    /// `jwks_uri` is read from `<issuer>/.well-known/openid-configuration` first.
    Discovery {
        issuer: String,
        url: HttpUrl,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    pub kind: SourceKind,
    pub timeout_ms: u64,
}

impl RemoteSource {
    /// A stable name, also the shared-data key that all worker VMs use.
    pub fn id(&self) -> String {
        match &self.kind {
            SourceKind::Jwks(url) => format!("jwks {url}"),
            // The issuer as configured (not the URL's normal form with a `/` added):
            // the log shows what the operator wrote.
            SourceKind::Discovery { issuer, .. } => format!("discovery {issuer}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

#[derive(Debug, Clone)]
pub struct JwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: RuleKeys,
    /// Indices into [`Config::locations`].
    pub locations: Vec<usize>,
    pub forward_original_token: bool,
    pub output_payload_to_header: Option<String>,
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub space_delimited_claims: Vec<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub rules: Vec<JwtRule>,
    pub sources: Vec<RemoteSource>,
    /// Every location of every rule, without repeats, in configuration order.
    pub locations: Vec<TokenLocation>,
    /// URL authority (`host:port` or `host`) to Envoy cluster name.
    pub clusters: BTreeMap<String, String>,
    pub clock_skew_seconds: u64,
    pub jwks_cache_duration_ms: u64,
    pub jwks_min_refetch_interval_ms: u64,
    pub max_token_bytes: usize,
    pub max_jwks_bytes: usize,
    /// Headers the filter sets; client-sent copies are always removed.
    pub output_headers: Vec<String>,
    /// The top-level `outputClaimToHeaders`: for every identity, a session of any
    /// login or a token of any rule; the login's or rule's own list is applied after
    /// it (so it wins for a header both name).
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// The session cookie name of every login (the top level's and each app's):
    /// none of their cookies, chunks or login cookies ever goes upstream, whichever
    /// app a request is for (a `cookieDomain` shares them across hosts).
    pub login_cookie_names: Vec<String>,
    /// `oidc`, `authorizationPolicies`, `publicPaths` and `allowMissing`: for
    /// requests that match no app.
    pub top_level: App,
    /// `apps`, each with the top-level settings it does not set itself.
    pub apps: Vec<App>,
    /// `bypassCorsPreflight` (default on, as Istio sets it): CORS preflights skip
    /// authentication; the policies still judge them, as anonymous requests.
    pub bypass_cors_preflight: bool,
    /// What of the downstream peer any app's policies read; the host reads only that.
    pub peer_needs: PeerNeeds,
    /// The (namespace, key) of every `experimental.envoy.filters.*` condition of
    /// any app: the dynamic metadata the host reads for each request.
    pub metadata_keys: Vec<(String, String)>,
    /// Every rule's `spaceDelimitedClaims`, for authorization.
    pub space_delimited_claims: Vec<String>,
    pub token_cache: Limits,
    pub session_cache: Limits,
    /// What loaded but is almost certainly not what the operator meant, for the
    /// log at load (a `spiffe://` principal, which never matches).
    pub warnings: Vec<String>,
    /// `testOnlyCrashHeader`: a request with this header makes the VM trap, so
    /// tests can see what Envoy's `failure_policy` does. Never set it in production.
    pub test_only_crash_header: Option<String>,
    /// `signatureVerification`: who may verify RS* and ES* signatures.
    pub signature_verification: SignatureVerification,
    /// Who does, once the host has been probed at load (`host::root`); until
    /// then, and in every test, the module.
    pub signature_backend: SignatureBackend,
    /// `introspection`: rules for tokens checked at an introspection endpoint.
    pub introspection: Vec<crate::introspection::IntrospectionRule>,
    /// `introspectionCache`: answers kept per worker.
    pub introspection_cache: Limits,
}

struct RawConfig {
    jwt_rules: Vec<RawJwtEntry>,
    oidc: Option<oidc::RawOidc>,
    authorization_policies: Vec<RawPolicy>,
    public_paths: Vec<String>,
    allow_missing: bool,
    apps: Vec<apps::RawApp>,
    bypass_cors_preflight: bool,
    clusters: BTreeMap<String, String>,
    clock_skew_seconds: Option<u64>,
    jwks_cache_duration: Option<String>,
    jwks_min_refetch_interval: Option<String>,
    max_token_bytes: Option<usize>,
    max_jwks_bytes: Option<usize>,
    verified_token_cache: Option<RawCacheLimits>,
    session_cache: Option<RawCacheLimits>,
    test_only_crash_header: Option<String>,
    output_claim_to_headers: Vec<RawClaimToHeader>,
    signature_verification: Option<String>,
    introspection: Vec<introspection::RawIntrospectionRule>,
    introspection_cache: Option<RawCacheLimits>,
}

/// `maxEntries: 0` turns a cache off.
struct RawCacheLimits {
    max_entries: Option<usize>,
    max_bytes: Option<usize>,
}

/// Istio's `JWTRule`, field for field (security.istio.io/v1 RequestAuthentication).
struct RawJwtRule {
    issuer: Option<String>,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    jwks_uri_snake_case: Option<String>,
    jwks: Option<String>,
    from_headers: Vec<RawHeaderLocation>,
    from_params: Vec<String>,
    from_cookies: Vec<String>,
    forward_original_token: bool,
    output_payload_to_header: Option<String>,
    output_claim_to_headers: Vec<RawClaimToHeader>,
    space_delimited_claims: Vec<String>,
    timeout: Option<String>,
}

struct RawHeaderLocation {
    name: String,
    prefix: String,
}

struct RawClaimToHeader {
    header: String,
    claim: String,
}

impl RawConfig {
    fn read(f: &mut Fields) -> RawConfig {
        RawConfig {
            jwt_rules: f.objects("jwtRules", RawJwtEntry::read),
            oidc: f.object("oidc", oidc::RawOidc::read),
            authorization_policies: f.objects("authorizationPolicies", RawPolicy::read),
            public_paths: f.strings("publicPaths"),
            allow_missing: f.bool("allowMissing").unwrap_or(false),
            apps: f.objects("apps", apps::RawApp::read),
            bypass_cors_preflight: f.bool("bypassCorsPreflight").unwrap_or(true),
            clusters: f.string_map("clusters"),
            clock_skew_seconds: f.unsigned("clockSkewSeconds"),
            jwks_cache_duration: f.string("jwksCacheDuration"),
            jwks_min_refetch_interval: f.string("jwksMinRefetchInterval"),
            max_token_bytes: f.size("maxTokenBytes"),
            max_jwks_bytes: f.size("maxJwksBytes"),
            verified_token_cache: f.object("verifiedTokenCache", RawCacheLimits::read),
            session_cache: f.object("sessionCache", RawCacheLimits::read),
            test_only_crash_header: f.string("testOnlyCrashHeader"),
            output_claim_to_headers: f.objects("outputClaimToHeaders", RawClaimToHeader::read),
            signature_verification: f.string("signatureVerification"),
            introspection: f.objects("introspection", introspection::RawIntrospectionRule::read),
            introspection_cache: f.object("introspectionCache", RawCacheLimits::read),
        }
    }
}

impl RawCacheLimits {
    fn read(f: &mut Fields) -> RawCacheLimits {
        RawCacheLimits {
            max_entries: f.size("maxEntries"),
            max_bytes: f.size("maxBytes"),
        }
    }
}

/// A `jwtRules` entry: a rule, or a whole `RequestAuthentication` resource pasted
/// as it is (`apiVersion`, `kind`, `metadata`, `spec.jwtRules`), whose rules count
/// as if listed here.
enum RawJwtEntry {
    Rule(Box<RawJwtRule>),
    Resource {
        api_version: Option<String>,
        kind: Option<String>,
        rules: Vec<RawJwtRule>,
    },
}

impl RawJwtEntry {
    fn read(f: &mut Fields) -> RawJwtEntry {
        if !["spec", "kind", "apiVersion", "metadata"]
            .iter()
            .any(|name| f.has(name))
        {
            return RawJwtEntry::Rule(Box::new(RawJwtRule::read(f)));
        }
        let api_version = f.string("apiVersion");
        let kind = f.string("kind");
        // The name and namespace play no part; `kubectl get -o yaml` adds `status`.
        f.ignore("metadata");
        f.ignore("status");
        let rules = f.required_object("spec", |f| {
            // As an AuthorizationPolicy's: the WasmPlugin's own selector decides.
            for ignored in ["selector", "targetRef", "targetRefs"] {
                f.ignore(ignored);
            }
            f.objects("jwtRules", RawJwtRule::read)
        });
        RawJwtEntry::Resource {
            api_version,
            kind,
            rules,
        }
    }
}

impl RawJwtRule {
    fn read(f: &mut Fields) -> RawJwtRule {
        RawJwtRule {
            issuer: f.string("issuer"),
            audiences: f.strings("audiences"),
            jwks_uri: f.string("jwksUri"),
            jwks_uri_snake_case: f.string("jwks_uri"),
            jwks: f.string("jwks"),
            from_headers: f.objects("fromHeaders", RawHeaderLocation::read),
            from_params: f.strings("fromParams"),
            from_cookies: f.strings("fromCookies"),
            forward_original_token: f.bool("forwardOriginalToken").unwrap_or(false),
            output_payload_to_header: f.string("outputPayloadToHeader"),
            output_claim_to_headers: f.objects("outputClaimToHeaders", RawClaimToHeader::read),
            space_delimited_claims: f.strings("spaceDelimitedClaims"),
            timeout: f.string("timeout"),
        }
    }
}

/// A pasted Istio resource's `apiVersion` (`security.istio.io/v1` or `v1beta1`)
/// and `kind` (`expected`; `elsewhere` says where the other kind goes).
pub(crate) fn check_istio_resource(
    at: &At,
    api_version: Option<&str>,
    kind: Option<&str>,
    expected: &str,
    elsewhere: &str,
) -> Result<(), ConfigError> {
    match api_version {
        Some("security.istio.io/v1" | "security.istio.io/v1beta1") => {}
        other => {
            return Err(at.field("apiVersion").error(format!(
                "`{}`: use security.istio.io/v1 (or v1beta1)",
                other.unwrap_or_default()
            )))
        }
    }
    if kind != Some(expected) {
        return Err(at
            .field("kind")
            .error(format!("must be {expected} ({elsewhere})")));
    }
    Ok(())
}

impl RawHeaderLocation {
    fn read(f: &mut Fields) -> RawHeaderLocation {
        RawHeaderLocation {
            name: f.required_string("name"),
            prefix: f.string("prefix").unwrap_or_default(),
        }
    }
}

impl RawClaimToHeader {
    fn read(f: &mut Fields) -> RawClaimToHeader {
        RawClaimToHeader {
            header: f.required_string("header"),
            claim: f.required_string("claim"),
        }
    }
}

impl Config {
    /// A configuration that names no environment variable.
    pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
        Self::parse_with_env(text, &|_| None)
    }

    /// `env` looks up the variables that `...FromEnv` fields name.
    pub fn parse_with_env(text: &[u8], env: Env) -> Result<Config, ConfigError> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err(At::Root.error("the plugin configuration is empty; it needs `jwtRules`"));
        }
        let value = crate::strict_json::parse(text).map_err(|e| {
            let object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            At::Root.error(if object {
                e.to_string()
            } else {
                format!(
                    "the plugin configuration must be JSON, an object `{{...}}` \
                     (YAML is not read; a WasmPlugin's `pluginConfig` is turned into JSON \
                     by Istio): {e}"
                )
            })
        })?;
        let raw = Fields::new(At::Root, value).read(RawConfig::read)?;
        Self::from_raw(raw, env)
    }

    /// Fields are borrowed or taken out of `raw` (never moved) and set on `config` one
    /// by one, so every early return drops the same two values: one shared clean-up,
    /// not one per field (which was about 5 KB of the module). The rules, `oidc`
    /// blocks and apps are compiled from borrowed raw values for the same reason.
    ///
    /// Each step is a function of its own that is never inlined: Envoy's V8 compiles
    /// the whole module with TurboFan when it loads it, and its memory and time grow
    /// faster than a function's size (see docs/performance.md, "Footprint"). Inlined
    /// into one body, this was the module's largest function.
    #[inline(never)]
    fn from_raw(mut raw: RawConfig, env: Env) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.read_limits(&mut raw)?;
        config.read_top_level(&mut raw)?;
        let any_oidc = raw.oidc.is_some() || raw.apps.iter().any(apps::RawApp::has_oidc);
        let any_introspection = !raw.introspection.is_empty();
        if raw.jwt_rules.is_empty() && !any_oidc && !any_introspection {
            return Err(At::top("jwtRules").error(
                "at least one rule (or an `oidc` block, or an `introspection` rule) is required",
            ));
        }
        config.output_claim_to_headers = config.claims_to_headers(
            &At::top("outputClaimToHeaders"),
            &raw.output_claim_to_headers,
        )?;
        config.compile_logins_and_apps(&raw, env)?;
        config.collect_policy_needs();
        config.compile_jwt_rules(&raw.jwt_rules)?;
        if config.rules.is_empty() && !any_oidc && !any_introspection {
            return Err(
                At::top("jwtRules").error("the RequestAuthentication resources here hold no rule")
            );
        }
        let introspection_at = At::top("introspection");
        for (index, raw_rule) in raw.introspection.iter().enumerate() {
            config.add_introspection_rule(&introspection_at.item(index), raw_rule, env)?;
        }
        Ok(config)
    }

    /// The clusters, the clock skew and the JWKS and size limits.
    #[inline(never)]
    fn read_limits(&mut self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        self.clusters = validate_clusters(take(&mut raw.clusters))?;
        self.clock_skew_seconds = bounded(
            &At::top("clockSkewSeconds"),
            raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS),
            0,
            MAX_CLOCK_SKEW_SECONDS,
        )?;
        self.jwks_cache_duration_ms = optional_duration(
            &At::top("jwksCacheDuration"),
            raw.jwks_cache_duration.as_deref(),
            DEFAULT_JWKS_CACHE_DURATION_MS,
        )?;
        self.jwks_min_refetch_interval_ms = optional_duration(
            &At::top("jwksMinRefetchInterval"),
            raw.jwks_min_refetch_interval.as_deref(),
            DEFAULT_JWKS_MIN_REFETCH_INTERVAL_MS,
        )?;
        self.max_token_bytes = bounded_size(
            &At::top("maxTokenBytes"),
            raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES),
            TOKEN_BYTES_RANGE,
        )?;
        self.max_jwks_bytes = bounded_size(
            &At::top("maxJwksBytes"),
            raw.max_jwks_bytes.unwrap_or(DEFAULT_MAX_JWKS_BYTES),
            JWKS_BYTES_RANGE,
        )?;
        Ok(())
    }

    /// The top level's policies and paths, the caches, and the switches.
    #[inline(never)]
    fn read_top_level(&mut self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        self.top_level.policies = compile_policies(
            &At::top("authorizationPolicies"),
            &raw.authorization_policies,
        )?;
        self.top_level.public_paths =
            compile_public_paths(&At::top("publicPaths"), &raw.public_paths)?;
        self.top_level.allow_missing = raw.allow_missing;
        self.bypass_cors_preflight = raw.bypass_cors_preflight;
        self.token_cache = cache_limits(
            &At::top("verifiedTokenCache"),
            raw.verified_token_cache.as_ref(),
            DEFAULT_TOKEN_CACHE,
        )?;
        self.session_cache = cache_limits(
            &At::top("sessionCache"),
            raw.session_cache.as_ref(),
            DEFAULT_SESSION_CACHE,
        )?;
        self.test_only_crash_header = match take(&mut raw.test_only_crash_header) {
            Some(name) if name.is_empty() || name.starts_with(':') => {
                return Err(At::top("testOnlyCrashHeader").error("must be a plain header name"));
            }
            name => name.map(|name| name.to_ascii_lowercase()),
        };
        self.signature_verification = match raw.signature_verification.as_deref() {
            None | Some("auto") => SignatureVerification::Auto,
            Some("host") => SignatureVerification::Host,
            Some("module") => SignatureVerification::Module,
            Some(other) => {
                return Err(At::top("signatureVerification")
                    .error(format!("`{other}` is not `auto`, `host` or `module`")))
            }
        };
        if self.jwks_cache_duration_ms < 1_000 {
            return Err(At::top("jwksCacheDuration").error("must be at least 1s"));
        }
        self.introspection_cache = cache_limits(
            &At::top("introspectionCache"),
            raw.introspection_cache.as_ref(),
            crate::introspection::state::DEFAULT_CACHE_LIMITS,
        )?;
        Ok(())
    }

    /// The top level's `oidc` block and the apps, with the checks across them.
    #[inline(never)]
    fn compile_logins_and_apps(&mut self, raw: &RawConfig, env: Env) -> Result<(), ConfigError> {
        if let Some(raw_oidc) = &raw.oidc {
            let at = At::top("oidc");
            self.top_level.oidc = Some(self.compile_oidc(raw_oidc, &at, None, env)?);
        }
        for (index, raw_app) in raw.apps.iter().enumerate() {
            let app = apps::compile(self, index, raw_app, env)?;
            self.apps.push(app);
        }
        apps::check_cookie_collisions(self)?;
        apps::check_domain_sign_ins(self)?;
        for app in std::iter::once(&self.top_level).chain(&self.apps) {
            if let Some(oidc) = &app.oidc {
                if !self.login_cookie_names.contains(&oidc.cookie_name) {
                    self.login_cookie_names.push(oidc.cookie_name.clone());
                }
            }
        }
        Ok(())
    }

    /// What every app's policies need from the peer and the metadata, and the
    /// warnings about principals that never match.
    #[inline(never)]
    fn collect_policy_needs(&mut self) {
        for app in std::iter::once(&self.top_level).chain(&self.apps) {
            let at = match app.index {
                Some(index) => format!("apps[{index}].authorizationPolicies"),
                None => "authorizationPolicies".to_string(),
            };
            for policy in app.policies.iter() {
                self.peer_needs = self.peer_needs.union(policy.peer_needs());
                for key in policy.metadata_keys() {
                    if !self.metadata_keys.contains(&key) {
                        self.metadata_keys.push(key);
                    }
                }
                for principal in policy.principals_with_a_scheme() {
                    let bare = principal.get("spiffe://".len()..).unwrap_or_default();
                    let warning = format!(
                        "{at}: principal `{principal}` never matches: Istio's principals \
                         have no `spiffe://`; write `{bare}`"
                    );
                    if !self.warnings.contains(&warning) {
                        self.warnings.push(warning);
                    }
                }
            }
        }
    }

    /// `jwtRules`: rules and pasted `RequestAuthentication` resources.
    #[inline(never)]
    fn compile_jwt_rules(&mut self, entries: &[RawJwtEntry]) -> Result<(), ConfigError> {
        let rules = At::top("jwtRules");
        // Where each rule was written, for the duplicate-issuer message.
        let mut written_at: Vec<String> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let at = rules.item(index);
            match entry {
                RawJwtEntry::Rule(raw_rule) => {
                    self.add_jwt_rule(&at, raw_rule, &mut written_at)?;
                }
                RawJwtEntry::Resource {
                    api_version,
                    kind,
                    rules: resource_rules,
                } => {
                    check_istio_resource(
                        &at,
                        api_version.as_deref(),
                        kind.as_deref(),
                        "RequestAuthentication",
                        "AuthorizationPolicy goes in authorizationPolicies",
                    )?;
                    let spec = at.field("spec");
                    let inner = spec.field("jwtRules");
                    for (index, raw_rule) in resource_rules.iter().enumerate() {
                        self.add_jwt_rule(&inner.item(index), raw_rule, &mut written_at)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A rule of `jwtRules` (or of a pasted resource's), at `at`.
    fn add_jwt_rule(
        &mut self,
        at: &At,
        raw_rule: &RawJwtRule,
        written_at: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let rule = self.add_rule(at, raw_rule)?;
        if let Some(earlier) = self.rules.iter().position(|r| r.issuer == rule.issuer) {
            let earlier = written_at.get(earlier).cloned().unwrap_or_default();
            return Err(at.field("issuer").error(format!(
                "`{}` is already configured in {earlier}",
                rule.issuer
            )));
        }
        for claim in &rule.space_delimited_claims {
            if !self.space_delimited_claims.contains(claim) {
                self.space_delimited_claims.push(claim.clone());
            }
        }
        self.rules.push(rule);
        written_at.push(at.to_string());
        Ok(())
    }

    /// An `oidc` block at `path`; `app` names the app it belongs to, if any.
    fn compile_oidc(
        &mut self,
        raw: &oidc::RawOidc,
        at: &At,
        app: Option<&str>,
        env: Env,
    ) -> Result<Arc<OidcConfig>, ConfigError> {
        raw.compile(&oidc::Place { at, app, env }, self)
            .map(Arc::new)
    }

    /// The settings for a request with these headers (see [`crate::apps`]); `None`
    /// for an authority that is not `host[:port]`.
    pub fn app_for(&self, headers: &crate::request::Headers) -> Option<&App> {
        crate::apps::select(self, headers)
    }

    /// A rule, read from `raw` without taking it apart: moving its fields out added
    /// clean-up code for the rest on every early return.
    #[inline(never)]
    fn add_rule(&mut self, at: &At, raw: &RawJwtRule) -> Result<JwtRule, ConfigError> {
        let issuer = match &raw.issuer {
            Some(issuer) if !issuer.is_empty() => issuer,
            _ => return Err(at.field("issuer").error("is required")),
        };
        if let Some(index) = raw.audiences.iter().position(String::is_empty) {
            return Err(at.field("audiences").item(index).error("must not be empty"));
        }
        let timeout_ms = match &raw.timeout {
            None => DEFAULT_FETCH_TIMEOUT_MS,
            Some(text) => fetch_timeout(&at.field("timeout"), text)?,
        };
        let keys = self.rule_keys(at, raw, issuer, timeout_ms)?;
        let locations = self.locations_of(
            at,
            &raw.from_headers,
            &raw.from_params,
            &raw.from_cookies,
            true,
        )?;
        let output_payload_to_header = match raw.output_payload_to_header.as_deref() {
            None | Some("") => None,
            Some(name) => Some(self.output_header(&at.field("outputPayloadToHeader"), name)?),
        };
        let output_claim_to_headers = self.claims_to_headers(
            &at.field("outputClaimToHeaders"),
            &raw.output_claim_to_headers,
        )?;
        Ok(JwtRule {
            issuer: issuer.clone(),
            audiences: raw.audiences.clone(),
            keys,
            locations,
            forward_original_token: raw.forward_original_token,
            output_payload_to_header,
            output_claim_to_headers,
            space_delimited_claims: raw.space_delimited_claims.clone(),
            timeout_ms,
        })
    }

    /// `outputClaimToHeaders` of a rule or an `oidc` block, at `at`.
    fn claims_to_headers(
        &mut self,
        at: &At,
        raw: &[RawClaimToHeader],
    ) -> Result<Vec<ClaimToHeader>, ConfigError> {
        let mut claims = Vec::with_capacity(raw.len());
        for (index, item) in raw.iter().enumerate() {
            let at = at.item(index);
            if item.claim.is_empty() {
                return Err(at.field("claim").error("must not be empty"));
            }
            let header = self.output_header(&at.field("header"), &item.header)?;
            claims.push(ClaimToHeader {
                header,
                claim: item.claim.clone(),
            });
        }
        Ok(claims)
    }

    #[inline(never)]
    fn rule_keys(
        &mut self,
        at: &At,
        raw: &RawJwtRule,
        issuer: &str,
        timeout_ms: u64,
    ) -> Result<RuleKeys, ConfigError> {
        let uri = match (&raw.jwks_uri, &raw.jwks_uri_snake_case) {
            (Some(_), Some(_)) => {
                return Err(at.error("set only one of `jwksUri` and `jwks_uri`"));
            }
            (Some(uri), None) => Some(("jwksUri", uri)),
            (None, Some(uri)) => Some(("jwks_uri", uri)),
            (None, None) => None,
        };
        let kind = match (uri, &raw.jwks) {
            (Some(_), Some(_)) => {
                return Err(at.error("set only one of `jwksUri` and `jwks`"));
            }
            (None, Some(text)) => {
                return jwks::parse_jwks(text.as_bytes(), self.max_jwks_bytes)
                    .map(RuleKeys::Inline)
                    .map_err(|why| at.field("jwks").error(why));
            }
            (Some((field, uri)), None) => SourceKind::Jwks(http_url(&at.field(field), uri)?),
            (None, None) => {
                let issuer_url = crate::fetch::parse_http_url(issuer).map_err(|_| {
                    at.error(
                        "has no `jwksUri` or `jwks`, and its issuer is not an http(s) URL \
                         to discover them from",
                    )
                })?;
                SourceKind::Discovery {
                    issuer: issuer.to_string(),
                    url: issuer_url,
                }
            }
        };
        Ok(RuleKeys::Remote(self.add_source(kind, timeout_ms)))
    }

    /// Sources are shared by every rule (and `oidc` block) naming the same URL.
    fn add_source(&mut self, kind: SourceKind, timeout_ms: u64) -> usize {
        let sources = &mut self.sources;
        if let Some(index) = sources.iter().position(|source| source.kind == kind) {
            if let Some(source) = sources.get_mut(index) {
                source.timeout_ms = source.timeout_ms.max(timeout_ms);
            }
            return index;
        }
        sources.push(RemoteSource { kind, timeout_ms });
        sources.len() - 1
    }

    /// A rule's token locations, registered in order as each is checked (an
    /// error fails the whole configuration, so none is left half-registered).
    /// Without any: `Authorization: Bearer`, and `?access_token=` for a JWT rule.
    fn locations_of(
        &mut self,
        at: &At,
        from_headers: &[RawHeaderLocation],
        from_params: &[String],
        from_cookies: &[String],
        default_param: bool,
    ) -> Result<Vec<usize>, ConfigError> {
        let mut indices = Vec::new();
        let headers_at = at.field("fromHeaders");
        for (index, header) in from_headers.iter().enumerate() {
            let name = header_name(&headers_at.item(index).field("name"), &header.name)?;
            indices.push(self.add_location(TokenLocation::Header {
                name,
                prefix: header.prefix.clone(),
            }));
        }
        let params_at = at.field("fromParams");
        for (index, param) in from_params.iter().enumerate() {
            non_empty(&params_at.item(index), param)?;
            indices.push(self.add_location(TokenLocation::Param(param.clone())));
        }
        let cookies_at = at.field("fromCookies");
        for (index, cookie) in from_cookies.iter().enumerate() {
            cookie_name(&cookies_at.item(index), cookie)?;
            indices.push(self.add_location(TokenLocation::Cookie(cookie.clone())));
        }
        if indices.is_empty() {
            // Istio's defaults: `Authorization: Bearer <token>`, then `?access_token=`.
            indices.push(self.add_location(TokenLocation::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            }));
            if default_param {
                indices.push(self.add_location(TokenLocation::Param("access_token".into())));
            }
        }
        Ok(indices)
    }

    fn add_location(&mut self, location: TokenLocation) -> usize {
        match self.locations.iter().position(|known| *known == location) {
            Some(index) => index,
            None => {
                self.locations.push(location);
                self.locations.len() - 1
            }
        }
    }

    /// A header the filter sets (its client-sent copies are removed): validated,
    /// lowercased, registered once.
    fn output_header(&mut self, at: &At, name: &str) -> Result<String, ConfigError> {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if name.is_empty() || !valid {
            return Err(at.error(format!(
                "`{name}` is not a valid header name ([-_A-Za-z0-9]+)"
            )));
        }
        let name = name.to_ascii_lowercase();
        if !self.output_headers.contains(&name) {
            self.output_headers.push(name.clone());
        }
        Ok(name)
    }
}

fn compile_policies(at: &At, raw: &[RawPolicy]) -> Result<Arc<[Policy]>, ConfigError> {
    policy::compile_all(at, raw).map(Arc::from)
}

fn compile_public_paths(at: &At, raw: &[String]) -> Result<Arc<[Pattern]>, ConfigError> {
    let mut patterns = Vec::with_capacity(raw.len());
    for (index, text) in raw.iter().enumerate() {
        let at = at.item(index);
        if text != "*" && !text.starts_with('/') && !text.starts_with('*') {
            return Err(at.error(format!(
                "`{text}` is not a path pattern (start it with `/`)"
            )));
        }
        patterns.push(Pattern::parse(text).map_err(|why| at.error(why))?);
    }
    Ok(patterns.into())
}

/// Checked and with lowercase keys, in one pass of `insert`s. Collecting into a new
/// map instead sorts the entries and bulk-builds the tree: 6.7 KB of the module
/// (with the sort, instantiated for this map alone) for a handful of entries. (A
/// key that lowercases to an earlier one replaces its value, as with `collect`.)
#[inline(never)]
fn validate_clusters(
    clusters: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let at = At::top("clusters");
    let mut lowercased = BTreeMap::new();
    for (authority, cluster) in clusters {
        if authority.is_empty() || authority.contains('/') {
            return Err(at
                .field(&authority)
                .error("keys are URL authorities: `host` or `host:port`"));
        }
        if cluster.is_empty() {
            return Err(at.field(&authority).error("cluster name must not be empty"));
        }
        lowercased.insert(authority.to_ascii_lowercase(), cluster);
    }
    Ok(lowercased)
}

fn http_url(at: &At, text: &str) -> Result<HttpUrl, ConfigError> {
    crate::fetch::parse_http_url(text).map_err(|why| at.error(format!("`{text}` {why}")))
}

fn header_name(at: &At, name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty() && name.bytes().all(is_token_byte);
    if !valid {
        return Err(at.error(format!("`{name}` is not a valid HTTP header name")));
    }
    Ok(name.to_ascii_lowercase())
}

fn cookie_name(at: &At, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(at.error(format!("`{name}` is not a valid cookie name")));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn non_empty(at: &At, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(at.error("must not be empty"));
    }
    Ok(())
}

/// A timeout of the filter's own calls: 1 ms to 60 s.
fn fetch_timeout(at: &At, text: &str) -> Result<u64, ConfigError> {
    let millis = duration::parse_millis(text).map_err(|why| at.error(why))?;
    if millis == 0 || millis > MAX_FETCH_TIMEOUT_MS {
        return Err(at.error("must be between 1ms and 60s"));
    }
    Ok(millis)
}

fn bounded(at: &At, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if value < min || value > max {
        return Err(at.error(format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

fn bounded_size(at: &At, value: usize, (min, max): (usize, usize)) -> Result<usize, ConfigError> {
    // One check and message for both widths (`usize` to `u64` is lossless).
    bounded(at, value as u64, min as u64, max as u64).map(|_| value)
}

fn cache_limits(
    at: &At,
    raw: Option<&RawCacheLimits>,
    default: Limits,
) -> Result<Limits, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    Ok(Limits {
        max_entries: bounded_size(
            &at.field("maxEntries"),
            raw.max_entries.unwrap_or(default.max_entries),
            (0, CACHE_ENTRIES_MAX),
        )?,
        max_bytes: bounded_size(
            &at.field("maxBytes"),
            raw.max_bytes.unwrap_or(default.max_bytes),
            (64 * 1024, CACHE_BYTES_MAX),
        )?,
    })
}

fn optional_duration(at: &At, text: Option<&str>, default_ms: u64) -> Result<u64, ConfigError> {
    match text {
        None => Ok(default_ms),
        Some(text) => duration::parse_millis(text).map_err(|why| at.error(why)),
    }
}

#[cfg(test)]
mod tests;
