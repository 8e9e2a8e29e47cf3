//! Authorization with Istio `AuthorizationPolicy` semantics, on the identity that
//! authentication established (bearer token or session) and the request.
//!
//! Order, as in Istio: any matching DENY policy denies; then, if ALLOW policies
//! exist, one of them must match; otherwise the request is allowed.

pub mod pattern;
pub mod policy;

use crate::claims;
use crate::path;
use crate::request::Headers;
use pattern::Pattern;
use policy::{Action, Condition, Key, Operation, Policy, Rule, Source};
use serde_json::{Map, Value};

/// The text Istio users see on an RBAC denial.
pub const DENIED_BODY: &str = "RBAC: access denied";

/// Claims Istio treats as space-delimited strings by default.
const DEFAULT_SPACE_DELIMITED: [&str; 2] = ["scope", "permission"];

/// Who the request is, as authentication established it.
pub struct Identity<'a> {
    pub claims: &'a Map<String, Value>,
    /// Extra claims (beyond `scope` and `permission`) whose string value is a
    /// space-separated list.
    pub space_delimited: &'a [String],
}

/// `Ok` when allowed; `Err` names what denied it, for the log.
pub fn authorize(
    policies: &[Policy],
    identity: &Identity,
    headers: &Headers,
) -> Result<(), String> {
    let request = RequestView::new(identity, headers);
    for (index, policy) in policies.iter().enumerate() {
        if policy.action == Action::Deny
            && policy.rules.iter().any(|rule| request.matches_rule(rule))
        {
            return Err(format!(
                "DENY policy authorizationPolicies[{index}] matched"
            ));
        }
    }
    let mut allows = policies
        .iter()
        .filter(|policy| policy.action == Action::Allow)
        .peekable();
    if allows.peek().is_none() {
        return Ok(());
    }
    if allows.any(|policy| policy.rules.iter().any(|rule| request.matches_rule(rule))) {
        Ok(())
    } else {
        Err("no ALLOW policy matched".into())
    }
}

struct RequestView<'a> {
    identity: &'a Identity<'a>,
    headers: &'a Headers,
    principal: Option<String>,
    /// Normalized, so `//admin` or `/x/../admin` cannot slip past `/admin*`.
    path: String,
    method: &'a str,
    host: String,
}

impl<'a> RequestView<'a> {
    fn new(identity: &'a Identity<'a>, headers: &'a Headers) -> Self {
        let text = |name: &str| identity.claims.get(name).and_then(Value::as_str);
        let principal = match (text("iss"), text("sub")) {
            (Some(iss), Some(sub)) => Some(format!("{iss}/{sub}")),
            _ => None,
        };
        Self {
            identity,
            headers,
            principal,
            path: path::normalized(headers.path()),
            method: headers.get(":method").unwrap_or("GET"),
            host: headers
                .get(":authority")
                .or_else(|| headers.get("host"))
                .unwrap_or("")
                .to_ascii_lowercase(),
        }
    }

    fn matches_rule(&self, rule: &Rule) -> bool {
        (rule.from.is_empty() || rule.from.iter().any(|source| self.matches_source(source)))
            && (rule.to.is_empty()
                || rule
                    .to
                    .iter()
                    .any(|operation| self.matches_operation(operation)))
            && rule
                .when
                .iter()
                .all(|condition| self.matches_condition(condition))
    }

    fn matches_source(&self, source: &Source) -> bool {
        let principal: Vec<&str> = self.principal.as_deref().into_iter().collect();
        included(&source.principals, &principal) && excluded(&source.not_principals, &principal)
    }

    fn matches_operation(&self, operation: &Operation) -> bool {
        let host_without_port = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(host, _)| host);
        let hosts = [self.host.as_str(), host_without_port];
        included(&operation.paths, &[self.path.as_str()])
            && excluded(&operation.not_paths, &[self.path.as_str()])
            && included(&operation.methods, &[self.method])
            && excluded(&operation.not_methods, &[self.method])
            && included(&operation.hosts, &hosts)
            && excluded(&operation.not_hosts, &hosts)
    }

    fn matches_condition(&self, condition: &Condition) -> bool {
        let values = self.values_of(&condition.key);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        included(&condition.values, &values) && excluded(&condition.not_values, &values)
    }

    fn values_of(&self, key: &Key) -> Vec<String> {
        let claims = self.identity.claims;
        match key {
            Key::Principal => self.principal.clone().into_iter().collect(),
            Key::Audiences => claim_values(claims.get("aud"), false),
            Key::Presenter => claim_values(claims.get("azp"), false),
            Key::Header(name) => self.headers.get_all(name).map(str::to_string).collect(),
            Key::Claim(path) => {
                let split =
                    path.len() == 1 && path.first().is_some_and(|name| self.space_delimited(name));
                claim_values(nested(claims, path), split)
            }
        }
    }

    fn space_delimited(&self, name: &str) -> bool {
        DEFAULT_SPACE_DELIMITED.contains(&name)
            || self.identity.space_delimited.iter().any(|c| c == name)
    }
}

/// An empty list is "not set" and matches; otherwise some value must match.
fn included(patterns: &[Pattern], values: &[&str]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| values.iter().any(|v| p.matches(v)))
}

/// No value may match any of the `not` patterns (an absent value matches none).
fn excluded(patterns: &[Pattern], values: &[&str]) -> bool {
    !patterns.iter().any(|p| values.iter().any(|v| p.matches(v)))
}

fn nested<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = claims.get(first)?;
    for name in rest {
        current = current.as_object()?.get(name)?;
    }
    Some(current)
}

/// A claim's values as strings: a list's elements, a string (split on spaces when
/// space-delimited), and numbers and booleans as JSON writes them (`true`, `42`).
fn claim_values(value: Option<&Value>, split: bool) -> Vec<String> {
    match value {
        Some(Value::String(text)) if split => text.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(claims::scalar_text).collect(),
        Some(value) => claims::scalar_text(value).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
