//! `apps`: per-host settings. A field an app sets replaces the top-level one for
//! its requests; one it leaves out is the top level's.

use super::oidc::RawOidc;
use super::{compile_policies, compile_public_paths, error, Config, ConfigError, Env, Fields};
use crate::apps::{App, HostPattern};
use crate::authz::policy::RawPolicy;
use crate::session::chunks;

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
pub(super) fn compile(
    config: &mut Config,
    index: usize,
    raw: RawApp,
    env: Env,
) -> Result<App, ConfigError> {
    let path = format!("apps[{index}]");
    let name = app_name(config, &path, raw.name)?;
    let mut hosts = Vec::new();
    for (host_index, text) in raw.hosts.iter().enumerate() {
        let host_path = format!("{path}.hosts[{host_index}]");
        let pattern = HostPattern::parse(text).map_err(|why| error(&host_path, why))?;
        if let Some(earlier) = config
            .apps
            .iter()
            .position(|app| app.hosts.contains(&pattern))
        {
            return Err(error(
                host_path,
                format!("`{text}` is already a host of apps[{earlier}]"),
            ));
        }
        hosts.push(pattern);
    }
    if hosts.is_empty() {
        return Err(error(
            format!("{path}.hosts"),
            "at least one host is required",
        ));
    }
    let oidc = match raw.oidc {
        Some(raw_oidc) => Some(
            config
                .compile_oidc(raw_oidc, &format!("{path}.oidc"), Some(&name), env)?
                .into(),
        ),
        None => config.top_level.oidc.clone(),
    };
    let policies = match raw.authorization_policies {
        Some(raw) => compile_policies(&format!("{path}.authorizationPolicies"), raw)?.into(),
        None => config.top_level.policies.clone(),
    };
    let public_paths = match raw.public_paths {
        Some(raw) => compile_public_paths(&format!("{path}.publicPaths"), &raw)?.into(),
        None => config.top_level.public_paths.clone(),
    };
    Ok(App {
        index: Some(index),
        name,
        hosts,
        oidc,
        policies,
        public_paths,
        allow_missing: raw.allow_missing.unwrap_or(config.top_level.allow_missing),
    })
}

/// A DNS label, as Kubernetes names are: it is part of stat and cookie names.
fn app_name(config: &Config, path: &str, name: Option<String>) -> Result<String, ConfigError> {
    let name = name.unwrap_or_default();
    let label = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 63 || !label || name.starts_with('-') || name.ends_with('-')
    {
        return Err(error(
            format!("{path}.name"),
            format!("`{name}` is not a name of lowercase letters, digits and inner `-` (1-63)"),
        ));
    }
    if let Some(earlier) = config.apps.iter().position(|app| app.name == name) {
        return Err(error(
            format!("{path}.name"),
            format!("`{name}` is already the name of apps[{earlier}]"),
        ));
    }
    Ok(name)
}

/// Two logins whose cookies a browser would mix up: the same `cookieDomain` and a
/// cookie name equal to the other's, or to one of its chunks or its login cookie.
pub(super) fn check_cookie_collisions(config: &Config) -> Result<(), ConfigError> {
    let mut logins = vec![("oidc".to_string(), config.top_level.oidc.as_ref())];
    for app in &config.apps {
        let own = app
            .oidc
            .as_ref()
            .filter(|oidc| oidc.app.as_deref() == Some(&app.name));
        logins.push((format!("apps[{}].oidc", app.index.unwrap_or_default()), own));
    }
    let logins: Vec<_> = logins
        .into_iter()
        .filter_map(|(path, oidc)| Some((path, oidc?)))
        .collect();
    for (later_index, (later_path, later)) in logins.iter().enumerate() {
        for (earlier_path, earlier) in logins.iter().take(later_index) {
            let (a, b) = (&earlier.cookie_name, &later.cookie_name);
            let overlapping = chunks::is_set_by(a, b) || chunks::is_set_by(b, a);
            if overlapping && earlier.cookie_domain == later.cookie_domain {
                return Err(error(
                    format!("{later_path}.cookieName"),
                    format!(
                        "`{b}` collides with `{a}` of {earlier_path} on the same cookieDomain; \
                         give each login its own cookie name"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
