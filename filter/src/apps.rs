//! Where an app's settings are chosen: the first app in `apps` whose `hosts` match
//! the request's `:authority` (port ignored, case-insensitive), else the top-level
//! settings. One gateway thus fronts several apps, each with its own login and rules.

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

    /// `host` is the authority without its port, in any case.
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

/// What judges a request: one app's settings, or the top level's.
#[derive(Debug, Clone, Default)]
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

/// The host of an authority: `Example.com:8443` → `Example.com`, `[::1]:80` → `[::1]`.
/// A trailing dot (a fully qualified name) is dropped.
pub fn host_of(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.rfind(':') {
            Some(colon) => authority.get(..colon).unwrap_or(authority),
            None => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The settings for a request with these headers.
pub fn select<'a>(config: &'a Config, headers: &Headers) -> &'a App {
    if config.apps.is_empty() {
        return &config.top_level;
    }
    let host = host_of(headers.get(":authority").unwrap_or_default());
    config
        .apps
        .iter()
        .find(|app| app.hosts.iter().any(|pattern| pattern.matches(host)))
        .unwrap_or(&config.top_level)
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
    fn the_port_and_a_trailing_dot_are_not_part_of_the_host() {
        assert_eq!(host_of("example.com:8443"), "example.com");
        assert_eq!(host_of("example.com."), "example.com");
        assert_eq!(host_of("example.com.:80"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("[::1"), "[::1");
        assert_eq!(host_of(""), "");
        assert_eq!(host_of(":80"), "");
    }
}
