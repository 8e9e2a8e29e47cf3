//! Where an app's settings are chosen: the app in `apps` whose `hosts` match the
//! request's host most specifically, as Envoy chooses a virtual host (port
//! ignored, case-insensitive), else the top-level settings. One gateway thus
//! fronts several apps, each with its own login and rules.

use crate::authority;
use crate::authz::pattern::Pattern;
use crate::authz::policy::Policy;
use crate::config::{Config, OidcConfig};
use crate::request::Headers;
use std::sync::Arc;

/// A `hosts` entry: `example.com` exactly, or `*.example.com` for any subdomain
/// (at any depth, as Istio's `hosts` match) but not `example.com` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    AnySubdomainOf(String),
}

impl HostPattern {
    /// `text` as written in `hosts`: lowercase letters, digits, `-` and `.`, with an
    /// optional leading `*.`; no port, no scheme.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(format!(
                "`{text}` is not a host name (lowercase, no port), or `*.` and one"
            ));
        }
        Ok(if wildcard {
            HostPattern::AnySubdomainOf(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    /// How specific a match is, for choosing among apps: an exact name beats any
    /// wildcard, and a longer suffix beats a shorter one (Envoy's order).
    pub fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::AnySubdomainOf(suffix) => suffix.len(),
        }
    }

    /// Whether every host this pattern matches is `domain` or one of its
    /// subdomains (`domain` lowercase, without a leading dot).
    pub fn lies_within(&self, domain: &str) -> bool {
        match self {
            HostPattern::Exact(name) => crate::oidc::domain::within(name, domain),
            HostPattern::AnySubdomainOf(suffix) => suffix
                .strip_prefix('.')
                .is_some_and(|name| crate::oidc::domain::within(name, domain)),
        }
    }

    /// `host` is the authority without its port, in any case; a trailing dot is
    /// part of it (`example.com.` is not `example.com`, as in Envoy's routes).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::AnySubdomainOf(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// What judges a request: one app's settings, or the top level's. Its `Debug`
/// prints no secret (see `OidcConfig`'s).
#[derive(Clone, Default)]
pub struct App {
    /// Position in `apps`, for its counters; `None` for the top-level settings.
    pub index: Option<usize>,
    pub name: String,
    pub hosts: Vec<HostPattern>,
    /// Shared with the apps that inherit it, so inheriting copies nothing (`Arc`:
    /// the fuzz targets share one configuration between threads).
    pub oidc: Option<Arc<OidcConfig>>,
    /// `authorizationPolicies`, compiled.
    pub policies: Arc<[Policy]>,
    /// Paths that skip authentication and authorization.
    pub public_paths: Arc<[Pattern]>,
    /// `allowMissing`: a request with no credential is anonymous and goes to the
    /// policies (Istio's semantics) instead of getting `401 Jwt is missing`.
    pub allow_missing: bool,
}

/// Named fields only: the login's own `Debug` hides its secrets, and the
/// policies would only be noise in a log line.
impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .field("oidc", &self.oidc)
            .field("policies", &self.policies.len())
            .field("public_paths", &self.public_paths)
            .field("allow_missing", &self.allow_missing)
            .finish()
    }
}

/// The settings for a request with these headers: the app whose `hosts` match
/// the request's host most specifically, as Envoy picks a virtual host (an exact
/// name, else the longest `*.suffix`), else the top level (Envoy's `*`). The port
/// is ignored (Istio's route tables list `host` and `host:*` alike). `None` when
/// the authority is not `host[:port]` (see [`crate::authority`]): the request is
/// refused before anything else is consulted.
pub fn select<'a>(config: &'a Config, headers: &Headers) -> Option<&'a App> {
    let host = authority::of_request(headers)?.host;
    Some(select_host(config, host))
}

/// The settings for `host` (without its port), as [`select`] chooses them.
pub fn select_host<'a>(config: &'a Config, host: &str) -> &'a App {
    let mut best: Option<(&App, usize)> = None;
    for app in &config.apps {
        for pattern in &app.hosts {
            if !pattern.matches(host) {
                continue;
            }
            // Strictly more specific: two apps cannot both match a host equally
            // (a host pattern belongs to one app), so the first found stays.
            let specificity = pattern.specificity();
            if best.is_none_or(|(_, known)| specificity > known) {
                best = Some((app, specificity));
            }
        }
    }
    best.map_or(&config.top_level, |(app, _)| app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn exact_hosts_match_in_any_case_only_themselves() {
        let grafana = pattern("grafana.example.com");
        assert!(grafana.matches("grafana.example.com"));
        assert!(grafana.matches("Grafana.EXAMPLE.com"));
        assert!(!grafana.matches("grafana.example.com.evil"));
        assert!(!grafana.matches("xgrafana.example.com"));
        assert!(!grafana.matches("example.com"));
        assert!(!grafana.matches(""));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn wildcards_match_subdomains_at_any_depth_but_not_the_domain() {
        let any = pattern("*.example.com");
        assert!(any.matches("a.example.com"));
        assert!(any.matches("A.b.Example.COM"));
        assert!(!any.matches("example.com"));
        assert!(!any.matches(".example.com"));
        assert!(!any.matches("badexample.com"));
        assert!(!any.matches("a.example.com.evil"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn host_patterns_are_names_without_ports_or_schemes() {
        for bad in [
            "",
            "*",
            "*.",
            "Example.com",
            "example.com:443",
            "https://example.com",
            "a..b",
            "*.*.example.com",
            "a.*.example.com",
            "exa mple.com",
            ".example.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            pattern("*.example.com"),
            HostPattern::AnySubdomainOf(".example.com".into())
        );
        assert_eq!(pattern("localhost"), HostPattern::Exact("localhost".into()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_trailing_dot_is_part_of_the_host() {
        assert!(!pattern("example.com").matches("example.com."));
        assert!(!pattern("*.example.com").matches("a.example.com."));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn exact_names_beat_wildcards_and_longer_suffixes_beat_shorter() {
        let exact = pattern("api.docs.example.com").specificity();
        let long = pattern("*.docs.example.com").specificity();
        let short = pattern("*.example.com").specificity();
        assert!(exact > long && long > short, "{exact} {long} {short}");
    }
}
