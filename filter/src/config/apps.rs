//! `apps`: per-host settings. A field an app sets replaces the top-level one for
//! its requests; one it leaves out is the top level's.

use super::oidc::RawOidc;
use super::{compile_policies, compile_public_paths, At, Config, ConfigError, Env, Fields};
use crate::apps::{App, HostPattern};
use crate::authz::policy::RawPolicy;
use crate::session::chunks;
use std::sync::Arc;

pub(super) struct RawApp {
    name: Option<String>,
    hosts: Vec<String>,
    oidc: Option<RawOidc>,
    authorization_policies: Option<Vec<RawPolicy>>,
    public_paths: Option<Vec<String>>,
    allow_missing: Option<bool>,
}

impl RawApp {
    pub(super) fn has_oidc(&self) -> bool {
        self.oidc.is_some()
    }

    pub(super) fn read(f: &mut Fields) -> RawApp {
        RawApp {
            name: f.string("name"),
            hosts: f.strings("hosts"),
            oidc: f.object("oidc", RawOidc::read),
            authorization_policies: f.optional_objects("authorizationPolicies", RawPolicy::read),
            public_paths: f.optional_strings("publicPaths"),
            allow_missing: f.bool("allowMissing"),
        }
    }
}

/// `apps[index]`, over the top-level settings already in `config`.
#[inline(never)]
pub(super) fn compile(
    config: &mut Config,
    index: usize,
    raw: &RawApp,
    env: Env,
) -> Result<App, ConfigError> {
    let apps = At::top("apps");
    let at = apps.item(index);
    // The top level's settings, each replaced below by what the app sets.
    let mut app = App {
        index: Some(index),
        name: app_name(config, &at.field("name"), raw.name.as_deref())?,
        hosts: Vec::new(),
        oidc: config.top_level.oidc.clone(),
        policies: config.top_level.policies.clone(),
        public_paths: config.top_level.public_paths.clone(),
        allow_missing: raw.allow_missing.unwrap_or(config.top_level.allow_missing),
    };
    let hosts_at = at.field("hosts");
    for (host_index, text) in raw.hosts.iter().enumerate() {
        let host_at = hosts_at.item(host_index);
        let pattern = HostPattern::parse(text).map_err(|why| host_at.error(why))?;
        if let Some(earlier) = config
            .apps
            .iter()
            .position(|app| app.hosts.contains(&pattern))
        {
            return Err(host_at.error(format!("`{text}` is already a host of apps[{earlier}]")));
        }
        app.hosts.push(pattern);
    }
    if app.hosts.is_empty() {
        return Err(hosts_at.error("at least one host is required"));
    }
    if let Some(raw_oidc) = &raw.oidc {
        let oidc_at = at.field("oidc");
        app.oidc = Some(config.compile_oidc(raw_oidc, &oidc_at, Some(&app.name), env)?);
    }
    if let Some(raw) = &raw.authorization_policies {
        app.policies = compile_policies(&at.field("authorizationPolicies"), raw)?;
    }
    if let Some(raw) = &raw.public_paths {
        app.public_paths = compile_public_paths(&at.field("publicPaths"), raw)?;
    }
    Ok(app)
}

/// A DNS label, as Kubernetes names are: it is part of stat and cookie names.
fn app_name(config: &Config, at: &At, name: Option<&str>) -> Result<String, ConfigError> {
    let name = name.unwrap_or_default();
    let label = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 63 || !label || name.starts_with('-') || name.ends_with('-')
    {
        return Err(at.error(format!(
            "`{name}` is not a name of lowercase letters, digits and inner `-` (1-63)"
        )));
    }
    if let Some(earlier) = config.apps.iter().position(|app| app.name == name) {
        return Err(at.error(format!("`{name}` is already the name of apps[{earlier}]")));
    }
    Ok(name.to_string())
}

/// Two logins whose cookies a browser would mix up: the same `cookieDomain` and a
/// cookie name equal to the other's, or to one of its chunks or its login cookie.
#[inline(never)]
pub(super) fn check_cookie_collisions(config: &Config) -> Result<(), ConfigError> {
    // Each login with its app's index (`None`: the top level's), named only in an error.
    let mut logins = Vec::new();
    if let Some(oidc) = &config.top_level.oidc {
        logins.push((None, oidc));
    }
    for app in &config.apps {
        let own = app
            .oidc
            .as_ref()
            .filter(|oidc| oidc.app.as_deref() == Some(&app.name));
        if let Some(oidc) = own {
            logins.push((Some(app.index.unwrap_or_default()), oidc));
        }
    }
    for (later_index, (later_app, later)) in logins.iter().enumerate() {
        for (earlier_app, earlier) in logins.iter().take(later_index) {
            let (a, b) = (&earlier.cookie_name, &later.cookie_name);
            let overlapping = chunks::is_set_by(a, b) || chunks::is_set_by(b, a);
            let shared = cookie_scopes_overlap(&earlier.cookie_domain, &later.cookie_domain);
            if overlapping && shared {
                return Err(ConfigError {
                    path: format!("{}.cookieName", login_path(*later_app)),
                    problem: format!(
                        "`{b}` collides with `{a}` of {} on the same cookieDomain; \
                         give each login its own cookie name",
                        login_path(*earlier_app)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A login with `redirectUri` signs in every host of its cookie domain from one
/// callback host: each host of an app that uses it must lie within that domain
/// (its cookies never reach another), and the callback host must be served by
/// this login, for the filter there to finish it. Hosts no app names are checked
/// at the request.
#[inline(never)]
pub(super) fn check_domain_sign_ins(config: &Config) -> Result<(), ConfigError> {
    for app in std::iter::once(&config.top_level).chain(&config.apps) {
        let Some(oidc) = &app.oidc else {
            continue;
        };
        let (Some(domain), Some(callback_host)) = (&oidc.domain, &oidc.redirect_host) else {
            continue;
        };
        let login = login_path(oidc.app.as_ref().and(app.index));
        for (index, host) in app.hosts.iter().enumerate() {
            if !host.lies_within(domain) {
                return Err(ConfigError {
                    path: format!("apps[{}].hosts[{index}]", app.index.unwrap_or_default()),
                    problem: format!(
                        "`{}` is not within cookieDomain `{domain}` of {login}, whose \
                         redirectUri signs in that domain",
                        host_text(host)
                    ),
                });
            }
        }
        let own_block = oidc.app.as_deref() == app.index.map(|_| app.name.as_str());
        if !own_block {
            continue;
        }
        let serving = crate::apps::select_host(config, callback_host);
        if !serving
            .oidc
            .as_ref()
            .is_some_and(|other| Arc::ptr_eq(other, oidc))
        {
            let by = match serving.index {
                Some(index) => format!("apps[{index}]"),
                None => "the top level".to_string(),
            };
            return Err(ConfigError {
                path: format!("{login}.redirectUri"),
                problem: format!(
                    "its host `{callback_host}` is served by {by}, with another login: the \
                     callback host must be one of this login's hosts"
                ),
            });
        }
    }
    Ok(())
}

fn host_text(host: &HostPattern) -> String {
    match host {
        HostPattern::Exact(name) => name.clone(),
        HostPattern::AnySubdomainOf(suffix) => format!("*{suffix}"),
    }
}

/// Whether a browser may send cookies of both scopes to one host: the same
/// domain once its leading dot is dropped and its case folded (RFC 6265 5.2.3:
/// `.example.com` and `Example.com` are one scope), one domain inside the other,
/// or a host-only cookie (no `cookieDomain`), whose host may lie in the other's
/// domain or be the other's host.
fn cookie_scopes_overlap(a: &Option<String>, b: &Option<String>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let normal = |domain: &str| domain.trim_start_matches('.').to_ascii_lowercase();
    let (a, b) = (normal(a), normal(b));
    let inside = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_suffix(outer)
                .is_some_and(|label| label.ends_with('.'))
    };
    inside(&a, &b) || inside(&b, &a)
}

/// `apps[index].oidc`, or the top level's `oidc` (`None`).
fn login_path(app: Option<usize>) -> String {
    match app {
        Some(index) => format!("apps[{index}].oidc"),
        None => "oidc".to_string(),
    }
}

#[cfg(test)]
mod tests;
