//! Authorization with Istio `AuthorizationPolicy` semantics, on the identity that
//! authentication established (bearer token or session) and the request.
//!
//! Order, as in Istio: any matching DENY policy denies; then, if ALLOW policies
//! exist, one of them must match; otherwise the request is allowed.
//!
//! A path not in normal form is judged twice, as the upstream will serve it and
//! as Envoy routes it (see [`path::policy_readings`]): denied if either reading is.

pub mod path_pattern;
pub mod pattern;
pub mod policy;

use crate::path;
use crate::peer::metadata::MetadataValue;
use crate::peer::{Ip, IpBlock, Peer};
use crate::request::Forwarded;
use path_pattern::PathPattern;
use pattern::{
    NamespacePattern, Pattern, PrincipalPattern, ServiceAccountPattern, TrustDomainPattern,
};
use policy::{
    Action, Condition, Key, Matchers, MetadataPattern, Operation, Policy, Rule, Source, Test,
};
use serde_json::{Map, Value};

/// The text Istio users see on an RBAC denial.
pub const DENIED_BODY: &str = "RBAC: access denied";

/// Claims Istio treats as space-delimited strings by default.
const DEFAULT_SPACE_DELIMITED: [&str; 2] = ["scope", "permission"];

/// Who the request is, as authentication established it. No claims: anonymous.
pub struct Identity<'a> {
    pub claims: &'a Map<String, Value>,
    /// Extra claims (beyond `scope` and `permission`) whose string value is a
    /// space-separated list.
    pub space_delimited: &'a [String],
}

/// `Ok` when allowed; `Err` names what denied it, for the log. `request` is the
/// request as it will be forwarded (after the filter's header edits).
pub fn authorize(
    policies: &[Policy],
    identity: &Identity,
    request: Forwarded,
    peer: &Peer,
) -> Result<(), String> {
    let (normal, as_sent) = path::policy_readings(request.path());
    let mut view = RequestView::new(identity, request, peer, normal);
    judge(policies, &view)?;
    if let Some(as_sent) = as_sent {
        view.path = as_sent.to_string();
        judge(policies, &view).map_err(|why| format!("{why} (path as sent)"))?;
    }
    Ok(())
}

/// Whether some credential could get this request allowed: the policies judged
/// with the most favourable identity imaginable, every test of who the user is
/// (`requestPrincipals`, `request.auth.*`, and, since the filter writes claim
/// headers, `request.headers[...]`) taken as matching in an ALLOW rule and as not
/// matching in a DENY rule. The request's own facts (path, method, host, peer,
/// addresses) are judged as they are. False means no token or session can change
/// the outcome: a denial is then `403`, not a `401` or a login that cannot help.
/// True may be optimistic (no single identity may meet every test at once), which
/// only keeps the answer a client already got before.
pub fn could_allow_with_a_credential(policies: &[Policy], request: Forwarded, peer: &Peer) -> bool {
    let no_claims = Map::new();
    let identity = Identity {
        claims: &no_claims,
        space_delimited: &[],
    };
    let (normal, as_sent) = path::policy_readings(request.path());
    let mut view = RequestView::new(&identity, request, peer, normal);
    view.best_case_identity = true;
    if judge(policies, &view).is_err() {
        return false;
    }
    if let Some(as_sent) = as_sent {
        view.path = as_sent.to_string();
        return judge(policies, &view).is_ok();
    }
    true
}

/// Istio's order over one reading of the request, for the enforced policies
/// (AUDIT and dry-run policies never decide: see [`observe`]).
fn judge(policies: &[Policy], request: &RequestView) -> Result<(), String> {
    judge_these(policies, request, Policy::enforced)
}

fn judge_these(
    policies: &[Policy],
    request: &RequestView,
    counts: fn(&Policy) -> bool,
) -> Result<(), String> {
    for (index, policy) in policies.iter().enumerate() {
        if counts(policy) && policy.action == Action::Deny && matches_policy(policy, request) {
            return Err(format!("DENY policy {} matched", name_of(policy, index)));
        }
    }
    let mut allows = policies
        .iter()
        .filter(|policy| counts(policy) && policy.action == Action::Allow)
        .peekable();
    if allows.peek().is_none() {
        return Ok(());
    }
    if allows.any(|policy| {
        policy
            .rules
            .iter()
            .any(|rule| request.matches_rule(rule, Action::Allow))
    }) {
        Ok(())
    } else {
        Err("no ALLOW policy matched".into())
    }
}

fn matches_policy(policy: &Policy, request: &RequestView) -> bool {
    let action = match policy.action {
        // An AUDIT policy reads an unknown address as a DENY does: better one log
        // line too many than a missed audit.
        Action::Audit => Action::Deny,
        action => action,
    };
    policy
        .rules
        .iter()
        .any(|rule| request.matches_rule(rule, action))
}

fn name_of(policy: &Policy, index: usize) -> String {
    match policy.name.as_str() {
        "" => format!("authorizationPolicies[{index}]"),
        name => name.to_string(),
    }
}

/// What the policies that never decide make of a request: the AUDIT policies
/// that match it, and the verdict of the dry-run policies (Istio's shadow
/// rules) as if they were enforced alone. Judged on the path as Envoy routes
/// it too, as the enforced policies are.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Names of the AUDIT policies that matched.
    pub audited: Vec<String>,
    /// `Some(Err(why))`: the dry-run policies would deny; `Some(Ok)`: allow;
    /// `None`: there are none.
    pub dry_run: Option<Result<(), String>>,
}

pub fn observe(
    policies: &[Policy],
    identity: &Identity,
    request: Forwarded,
    peer: &Peer,
) -> Observation {
    let mut observation = Observation::default();
    if policies.iter().all(Policy::enforced) {
        return observation;
    }
    let (normal, as_sent) = path::policy_readings(request.path());
    let mut view = RequestView::new(identity, request, peer, normal);
    let mut readings = vec![None];
    if let Some(as_sent) = as_sent {
        readings.push(Some(as_sent));
    }
    for reading in readings {
        if let Some(path) = reading {
            view.path = path.to_string();
        }
        for (index, policy) in policies.iter().enumerate() {
            let audit = policy.action == Action::Audit && !policy.dry_run;
            let name = name_of(policy, index);
            if audit && matches_policy(policy, &view) && !observation.audited.contains(&name) {
                observation.audited.push(name);
            }
        }
        if policies.iter().any(|policy| policy.dry_run) {
            let verdict = judge_these(policies, &view, |policy| {
                policy.dry_run && policy.action != Action::Audit
            });
            if !matches!(observation.dry_run, Some(Err(_))) {
                observation.dry_run = Some(verdict);
            }
        }
    }
    observation
}

struct RequestView<'a> {
    identity: &'a Identity<'a>,
    request: Forwarded<'a>,
    peer: &'a Peer,
    /// The token's (`iss`, `sub`), when both are strings: what `requestPrincipals`
    /// and `request.auth.principal` match, each side on its own, as in Istio.
    iss_sub: Option<(&'a str, &'a str)>,
    /// One reading of the path (see [`authorize`]): normalized, so `//admin` or
    /// `/x/../admin` cannot slip past `/admin*`, or as sent.
    path: String,
    method: &'a str,
    /// The whole authority, lowercased: Istio's `hosts` match all of it, so
    /// `example.com` is not `example.com:8080` (Istio advises `example.com:*`).
    authority: String,
    /// Judge tests of the identity as the most favourable identity would meet
    /// them (see [`could_allow_with_a_credential`]).
    best_case_identity: bool,
    /// The peer's names as principal patterns see them ([`Peer::principal_values`])
    /// and as namespace patterns do ([`Peer::names`]): derived once per request,
    /// not per rule. Empty (no allocation) for a peer without names.
    principal_values: Vec<&'a str>,
    peer_names: Vec<String>,
}

impl<'a> RequestView<'a> {
    fn new(
        identity: &'a Identity<'a>,
        request: Forwarded<'a>,
        peer: &'a Peer,
        path: String,
    ) -> Self {
        let text = |name: &str| identity.claims.get(name).and_then(Value::as_str);
        let authority = request
            .get(":authority")
            .or_else(|| request.get("host"))
            .unwrap_or("");
        Self {
            identity,
            request,
            peer,
            iss_sub: text("iss").zip(text("sub")),
            path,
            method: request.get(":method").unwrap_or("GET"),
            authority: authority.to_ascii_lowercase(),
            best_case_identity: false,
            principal_values: peer.principal_values(),
            peer_names: peer.names(),
        }
    }

    fn destination_port(&self) -> Option<u16> {
        self.peer.destination.map(|(_, port)| port)
    }

    /// A rule that reads an address Envoy could not tell (see `peer::addresses`),
    /// or principals of a certificate that could not be read, fails closed: it
    /// matches in a DENY policy and not in an ALLOW policy.
    fn matches_rule(&self, rule: &Rule, action: Action) -> bool {
        let unknown = (rule.reads.direct_ip && self.peer.direct_ip.is_none())
            || (rule.reads.destination && self.peer.destination.is_none())
            || (rule.reads.remote_ip && self.peer.remote_ip.is_none())
            || (rule.reads.principal && self.peer.principals_unknown)
            || (rule.reads.metadata && self.peer.metadata_unknown);
        if unknown {
            return action == Action::Deny;
        }
        (rule.from.is_empty()
            || rule
                .from
                .iter()
                .any(|source| self.matches_source(source, action)))
            && (rule.to.is_empty()
                || rule
                    .to
                    .iter()
                    .any(|operation| self.matches_operation(operation)))
            && rule
                .when
                .iter()
                .all(|condition| self.matches_condition(condition, action))
    }

    fn matches_source(&self, source: &Source, action: Action) -> bool {
        let end_user = if self.best_case_identity && source.request_principals.is_set() {
            action == Action::Allow
        } else {
            admits(&source.request_principals, self.iss_sub.as_slice())
        };
        end_user
            && admits(&source.principals, &self.principal_values)
            && admits(&source.namespaces, &self.peer_names)
            && admits(&source.service_accounts, &self.peer.principals)
            && admits(&source.trust_domains, &self.peer.principals)
            && admits(&source.ip_blocks, self.peer.direct_ip.as_slice())
            && admits(&source.remote_ip_blocks, self.peer.remote_ip.as_slice())
    }

    fn matches_operation(&self, operation: &Operation) -> bool {
        admits(&operation.paths, &[self.path.as_str()])
            && admits(&operation.methods, &[self.method])
            && admits(&operation.hosts, &[self.authority.as_str()])
            && admits(&operation.ports, self.destination_port().as_slice())
    }

    fn matches_condition(&self, condition: &Condition, action: Action) -> bool {
        if self.best_case_identity && condition.key.reads_identity() {
            return action == Action::Allow;
        }
        match &condition.test {
            Test::Ip(blocks) => {
                let ip = match condition.key {
                    Key::RemoteIp => self.peer.remote_ip,
                    Key::DestinationIp => self.peer.destination.map(|(ip, _)| ip),
                    _ => self.peer.direct_ip,
                };
                admits(blocks, ip.as_slice())
            }
            Test::Port(ports) => admits(ports, self.destination_port().as_slice()),
            Test::Principal(patterns) => admits(patterns, self.iss_sub.as_slice()),
            Test::Namespace(patterns) => admits(patterns, &self.peer_names),
            Test::ServiceAccount(patterns) => admits(patterns, &self.peer.principals),
            Test::TrustDomain(patterns) => admits(patterns, &self.peer.principals),
            Test::Metadata(patterns) => {
                let value = match &condition.key {
                    Key::Metadata { namespace, key } => {
                        self.peer.metadata.iter().find_map(|((n, k), value)| {
                            (n == namespace && k == key).then_some(value)
                        })
                    }
                    _ => None,
                };
                admits(patterns, value.as_slice())
            }
            Test::Text(patterns) => {
                let mut found = Vec::new();
                self.values_of(&condition.key, &mut found);
                admits(patterns, &found)
            }
        }
    }

    /// The request's values of `key`, added to `found`. (Pushed one by one: a
    /// `collect` per key kind cost more code.)
    fn values_of(&self, key: &Key, found: &mut Vec<String>) {
        let claims = self.identity.claims;
        let one: Option<&str> = match key {
            // Matched as `Test::Principal`; as text it reads `iss/sub`.
            Key::Principal => {
                if let Some((iss, sub)) = self.iss_sub {
                    found.push(format!("{iss}/{sub}"));
                }
                return;
            }
            Key::Audiences => return claim_values(claims.get("aud"), false, found),
            Key::Presenter => return claim_values(claims.get("azp"), false, found),
            Key::Header(name) => {
                for value in self.request.get_all(name) {
                    found.push(value.to_string());
                }
                return;
            }
            Key::Claim(path) => {
                let split =
                    path.len() == 1 && path.first().is_some_and(|name| self.space_delimited(name));
                return claim_values(nested(claims, path), split, found);
            }
            Key::SourcePrincipal
            | Key::SourceNamespace
            | Key::SourceServiceAccount
            | Key::SourceTrustDomain => {
                // Namespaces, service accounts and trust domains are matched as
                // their own tests; as text, the values principal patterns see.
                for value in &self.principal_values {
                    found.push(value.to_string());
                }
                return;
            }
            Key::ConnectionSni => self.peer.sni.as_deref(),
            // Matched as `Test::Metadata`.
            Key::Metadata { .. } => None,
            Key::SourceIp | Key::RemoteIp | Key::DestinationIp | Key::DestinationPort => None,
        };
        if let Some(value) = one {
            found.push(value.to_string());
        }
    }

    fn space_delimited(&self, name: &str) -> bool {
        DEFAULT_SPACE_DELIMITED.contains(&name)
            || self.identity.space_delimited.iter().any(|c| c == name)
    }
}

/// A pattern of a policy field, matched against the request's values of it.
trait Matcher<V: ?Sized> {
    fn matches_value(&self, value: &V) -> bool;
}

impl Matcher<&str> for Pattern {
    fn matches_value(&self, value: &&str) -> bool {
        self.matches(value)
    }
}

impl Matcher<String> for Pattern {
    fn matches_value(&self, value: &String) -> bool {
        self.matches(value)
    }
}

impl Matcher<&str> for PathPattern {
    fn matches_value(&self, value: &&str) -> bool {
        self.matches(value)
    }
}

impl Matcher<(&str, &str)> for PrincipalPattern {
    fn matches_value(&self, value: &(&str, &str)) -> bool {
        self.matches(*value)
    }
}

/// The peer's identities (without `spiffe://`) against an identity pattern.
macro_rules! identity_matcher {
    ($($pattern:ty),*) => {$(
        impl Matcher<String> for $pattern {
            fn matches_value(&self, value: &String) -> bool {
                self.matches(value)
            }
        }
    )*};
}

identity_matcher!(NamespacePattern, ServiceAccountPattern, TrustDomainPattern);

/// Envoy's `string_match` on a string value, `list_match` (`[v]`) on a list.
impl Matcher<&MetadataValue> for MetadataPattern {
    fn matches_value(&self, value: &&MetadataValue) -> bool {
        match (self.in_list, value) {
            (false, MetadataValue::Text(text)) => self.pattern.matches(text),
            (true, MetadataValue::List(items)) => {
                items.iter().any(|item| self.pattern.matches(item))
            }
            _ => false,
        }
    }
}

impl Matcher<u16> for u16 {
    fn matches_value(&self, value: &u16) -> bool {
        self == value
    }
}

impl Matcher<Ip> for IpBlock {
    fn matches_value(&self, value: &Ip) -> bool {
        self.contains(value)
    }
}

/// Some value matches `values` (an empty list is "not set" and matches), and
/// none matches `not_values` (an absent value matches none).
fn admits<V, M: Matcher<V>>(matchers: &Matchers<M>, found: &[V]) -> bool {
    let any = |list: &[M]| {
        list.iter()
            .any(|m| found.iter().any(|v| m.matches_value(v)))
    };
    (matchers.values.is_empty() || any(&matchers.values)) && !any(&matchers.not_values)
}

fn nested<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = claims.get(first)?;
    for name in rest {
        current = current.as_object()?.get(name)?;
    }
    Some(current)
}

/// A claim's values as Envoy's RBAC reads the metadata `jwt_authn` writes (a
/// string matcher over the value, or over each element of a list): strings only
/// (split on spaces when space-delimited). Numbers, booleans, objects and null
/// are no string, so they match no value, exactly as in Istio.
fn claim_values(value: Option<&Value>, split: bool, found: &mut Vec<String>) {
    match value {
        Some(Value::String(text)) if split => {
            for word in text.split_whitespace() {
                found.push(word.to_string());
            }
        }
        Some(Value::String(text)) => found.push(text.clone()),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::String(text) = item {
                    found.push(text.clone());
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
