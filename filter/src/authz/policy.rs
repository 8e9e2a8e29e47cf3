//! Authorization policies in Istio's `AuthorizationPolicy` shape, compiled once at
//! load into matchers.

use super::pattern::Pattern;
use crate::config::Fields;
use crate::peer::{IpBlock, PeerNeeds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub action: Action,
    /// Empty: the policy matches nothing (Istio's "allow-nothing").
    pub rules: Vec<Rule>,
}

/// Fields are ANDed; each list is ORed.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
    /// What of the downstream peer this rule reads.
    pub reads: PeerNeeds,
}

/// Istio's `from.source`: the end user (`requestPrincipals`) and the downstream
/// peer (mTLS `principals`, `namespaces`, addresses).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub request_principals: Vec<Pattern>,
    pub not_request_principals: Vec<Pattern>,
    pub principals: Vec<Pattern>,
    pub not_principals: Vec<Pattern>,
    pub namespaces: Vec<Pattern>,
    pub not_namespaces: Vec<Pattern>,
    pub ip_blocks: Vec<IpBlock>,
    pub not_ip_blocks: Vec<IpBlock>,
    pub remote_ip_blocks: Vec<IpBlock>,
    pub not_remote_ip_blocks: Vec<IpBlock>,
}

#[derive(Debug, Clone, Default)]
pub struct Operation {
    pub paths: Vec<Pattern>,
    pub not_paths: Vec<Pattern>,
    pub methods: Vec<Pattern>,
    pub not_methods: Vec<Pattern>,
    /// Lowercased: hosts match case-insensitively.
    pub hosts: Vec<Pattern>,
    pub not_hosts: Vec<Pattern>,
}

/// A `when` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Principal,
    Audiences,
    Presenter,
    /// `request.auth.claims[a][b]`: the path into nested claims.
    Claim(Vec<String>),
    /// `request.headers[name]`, name lowercased.
    Header(String),
    /// `source.principal`: the peer's mTLS identity.
    SourcePrincipal,
    /// `source.namespace`: the namespace in the peer's mTLS identity.
    SourceNamespace,
    /// `source.ip`: the direct downstream peer's address.
    SourceIp,
    /// `remote.ip`: the client address Envoy computed (X-Forwarded-For).
    RemoteIp,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub key: Key,
    pub test: Test,
}

/// What a condition's `values` / `notValues` are: strings, or IP blocks for the
/// address keys.
#[derive(Debug, Clone)]
pub enum Test {
    Text {
        values: Vec<Pattern>,
        not_values: Vec<Pattern>,
    },
    Ip {
        values: Vec<IpBlock>,
        not_values: Vec<IpBlock>,
    },
}

pub(crate) struct RawPolicy {
    action: Option<String>,
    rules: Vec<RawRule>,
}

struct RawRule {
    from: Vec<RawFrom>,
    to: Vec<RawTo>,
    when: Vec<RawCondition>,
}

struct RawFrom {
    source: RawSource,
}

struct RawSource {
    request_principals: Vec<String>,
    not_request_principals: Vec<String>,
    principals: Vec<String>,
    not_principals: Vec<String>,
    namespaces: Vec<String>,
    not_namespaces: Vec<String>,
    ip_blocks: Vec<String>,
    not_ip_blocks: Vec<String>,
    remote_ip_blocks: Vec<String>,
    not_remote_ip_blocks: Vec<String>,
}

struct RawTo {
    operation: RawOperation,
}

struct RawOperation {
    paths: Vec<String>,
    not_paths: Vec<String>,
    methods: Vec<String>,
    not_methods: Vec<String>,
    hosts: Vec<String>,
    not_hosts: Vec<String>,
}

struct RawCondition {
    key: String,
    values: Vec<String>,
    not_values: Vec<String>,
}

impl RawPolicy {
    pub(crate) fn read(f: &mut Fields) -> RawPolicy {
        RawPolicy {
            action: f.string("action"),
            rules: f.objects("rules", RawRule::read),
        }
    }
}

impl RawRule {
    fn read(f: &mut Fields) -> RawRule {
        RawRule {
            from: f.objects("from", RawFrom::read),
            to: f.objects("to", RawTo::read),
            when: f.objects("when", RawCondition::read),
        }
    }
}

impl RawFrom {
    fn read(f: &mut Fields) -> RawFrom {
        RawFrom {
            source: f.required_object("source", RawSource::read),
        }
    }
}

impl RawSource {
    fn read(f: &mut Fields) -> RawSource {
        RawSource {
            request_principals: f.strings("requestPrincipals"),
            not_request_principals: f.strings("notRequestPrincipals"),
            principals: f.strings("principals"),
            not_principals: f.strings("notPrincipals"),
            namespaces: f.strings("namespaces"),
            not_namespaces: f.strings("notNamespaces"),
            ip_blocks: f.strings("ipBlocks"),
            not_ip_blocks: f.strings("notIpBlocks"),
            remote_ip_blocks: f.strings("remoteIpBlocks"),
            not_remote_ip_blocks: f.strings("notRemoteIpBlocks"),
        }
    }
}

impl RawTo {
    fn read(f: &mut Fields) -> RawTo {
        RawTo {
            operation: f.required_object("operation", RawOperation::read),
        }
    }
}

impl RawOperation {
    fn read(f: &mut Fields) -> RawOperation {
        RawOperation {
            paths: f.strings("paths"),
            not_paths: f.strings("notPaths"),
            methods: f.strings("methods"),
            not_methods: f.strings("notMethods"),
            hosts: f.strings("hosts"),
            not_hosts: f.strings("notHosts"),
        }
    }
}

impl RawCondition {
    fn read(f: &mut Fields) -> RawCondition {
        RawCondition {
            key: f.required_string("key"),
            values: f.strings("values"),
            not_values: f.strings("notValues"),
        }
    }
}

/// A configuration error: (field path, problem).
pub type CompileError = (String, String);

pub(crate) fn compile(path: &str, raw: RawPolicy) -> Result<Policy, CompileError> {
    let action = match raw.action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some(other) => {
            return Err((
                format!("{path}.action"),
                format!("`{other}`: use ALLOW or DENY (AUDIT and CUSTOM are not supported)"),
            ))
        }
    };
    let rules = raw
        .rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| compile_rule(&format!("{path}.rules[{index}]"), rule))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { action, rules })
}

fn compile_rule(path: &str, raw: RawRule) -> Result<Rule, CompileError> {
    if raw.from.is_empty() && raw.to.is_empty() && raw.when.is_empty() {
        return Err((
            path.to_string(),
            "an empty rule would match every request; say what it matches".into(),
        ));
    }
    let from = raw
        .from
        .into_iter()
        .enumerate()
        .map(|(i, f)| compile_source(&format!("{path}.from[{i}].source"), f.source))
        .collect::<Result<Vec<_>, CompileError>>()?;
    let to = raw
        .to
        .into_iter()
        .enumerate()
        .map(|(i, t)| compile_operation(&format!("{path}.to[{i}].operation"), t.operation))
        .collect::<Result<Vec<_>, _>>()?;
    let when = raw
        .when
        .into_iter()
        .enumerate()
        .map(|(i, c)| compile_condition(&format!("{path}.when[{i}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rule = Rule {
        from,
        to,
        when,
        reads: PeerNeeds::default(),
    };
    rule.reads = rule.peer_needs();
    Ok(rule)
}

fn compile_source(path: &str, raw: RawSource) -> Result<Source, CompileError> {
    let texts = |field: &str, list: &[String]| patterns(&format!("{path}.{field}"), list);
    let blocks = |field: &str, list: &[String]| ip_blocks(&format!("{path}.{field}"), list);
    Ok(Source {
        request_principals: texts("requestPrincipals", &raw.request_principals)?,
        not_request_principals: texts("notRequestPrincipals", &raw.not_request_principals)?,
        principals: texts("principals", &raw.principals)?,
        not_principals: texts("notPrincipals", &raw.not_principals)?,
        namespaces: texts("namespaces", &raw.namespaces)?,
        not_namespaces: texts("notNamespaces", &raw.not_namespaces)?,
        ip_blocks: blocks("ipBlocks", &raw.ip_blocks)?,
        not_ip_blocks: blocks("notIpBlocks", &raw.not_ip_blocks)?,
        remote_ip_blocks: blocks("remoteIpBlocks", &raw.remote_ip_blocks)?,
        not_remote_ip_blocks: blocks("notRemoteIpBlocks", &raw.not_remote_ip_blocks)?,
    })
}

fn compile_operation(path: &str, raw: RawOperation) -> Result<Operation, CompileError> {
    for (field, list) in [("paths", &raw.paths), ("notPaths", &raw.not_paths)] {
        if let Some(bad) = list.iter().find(|p| p.contains('{')) {
            return Err((
                format!("{path}.{field}"),
                format!("`{bad}`: path templates are not supported"),
            ));
        }
    }
    let lower = |list: Vec<Pattern>| list.iter().map(Pattern::lowercased).collect();
    Ok(Operation {
        paths: patterns(&format!("{path}.paths"), &raw.paths)?,
        not_paths: patterns(&format!("{path}.notPaths"), &raw.not_paths)?,
        methods: patterns(&format!("{path}.methods"), &raw.methods)?,
        not_methods: patterns(&format!("{path}.notMethods"), &raw.not_methods)?,
        hosts: lower(patterns(&format!("{path}.hosts"), &raw.hosts)?),
        not_hosts: lower(patterns(&format!("{path}.notHosts"), &raw.not_hosts)?),
    })
}

fn compile_condition(path: &str, raw: RawCondition) -> Result<Condition, CompileError> {
    let key = parse_key(&raw.key).map_err(|why| (format!("{path}.key"), why))?;
    if raw.values.is_empty() && raw.not_values.is_empty() {
        return Err((path.to_string(), "needs `values` or `notValues`".into()));
    }
    let test = if matches!(key, Key::SourceIp | Key::RemoteIp) {
        Test::Ip {
            values: ip_blocks(&format!("{path}.values"), &raw.values)?,
            not_values: ip_blocks(&format!("{path}.notValues"), &raw.not_values)?,
        }
    } else {
        Test::Text {
            values: patterns(&format!("{path}.values"), &raw.values)?,
            not_values: patterns(&format!("{path}.notValues"), &raw.not_values)?,
        }
    };
    Ok(Condition { key, test })
}

fn ip_blocks(path: &str, texts: &[String]) -> Result<Vec<IpBlock>, CompileError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| IpBlock::parse(text).map_err(|why| (format!("{path}[{i}]"), why)))
        .collect()
}

impl Policy {
    /// What of the downstream peer this policy reads.
    pub fn peer_needs(&self) -> PeerNeeds {
        self.rules
            .iter()
            .fold(PeerNeeds::default(), |needs, rule| needs.union(rule.reads))
    }
}

impl Rule {
    fn peer_needs(&self) -> PeerNeeds {
        let mut needs = PeerNeeds::default();
        for source in &self.from {
            needs.principal |= !(source.principals.is_empty()
                && source.not_principals.is_empty()
                && source.namespaces.is_empty()
                && source.not_namespaces.is_empty());
            needs.direct_ip |= !(source.ip_blocks.is_empty() && source.not_ip_blocks.is_empty());
            needs.remote_ip |=
                !(source.remote_ip_blocks.is_empty() && source.not_remote_ip_blocks.is_empty());
        }
        for condition in &self.when {
            match condition.key {
                Key::SourcePrincipal | Key::SourceNamespace => needs.principal = true,
                Key::SourceIp => needs.direct_ip = true,
                Key::RemoteIp => needs.remote_ip = true,
                _ => {}
            }
        }
        needs
    }
}

fn patterns(path: &str, texts: &[String]) -> Result<Vec<Pattern>, CompileError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| Pattern::parse(text).map_err(|why| (format!("{path}[{i}]"), why)))
        .collect()
}

/// The `when` keys we support, in Istio's spelling.
pub fn parse_key(text: &str) -> Result<Key, String> {
    match text {
        "request.auth.principal" => return Ok(Key::Principal),
        "request.auth.audiences" => return Ok(Key::Audiences),
        "request.auth.presenter" => return Ok(Key::Presenter),
        "source.principal" => return Ok(Key::SourcePrincipal),
        "source.namespace" => return Ok(Key::SourceNamespace),
        "source.ip" => return Ok(Key::SourceIp),
        "remote.ip" => return Ok(Key::RemoteIp),
        _ => {}
    }
    if let Some(rest) = text.strip_prefix("request.auth.claims") {
        return bracketed(rest)
            .map(Key::Claim)
            .ok_or_else(|| format!("`{text}`: write request.auth.claims[name] or [a][b]"));
    }
    if let Some(rest) = text.strip_prefix("request.headers") {
        return match bracketed(rest).as_deref() {
            Some([name]) => Ok(Key::Header(name.to_ascii_lowercase())),
            _ => Err(format!("`{text}`: write request.headers[name]")),
        };
    }
    Err(format!(
        "`{text}` is not supported; use request.auth.principal, request.auth.audiences, \
         request.auth.presenter, request.auth.claims[...], request.headers[...], \
         source.principal, source.namespace, source.ip or remote.ip"
    ))
}

/// `[a][b]` into `["a", "b"]`; `None` unless at least one non-empty name.
fn bracketed(mut text: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    while !text.is_empty() {
        let inner = text.strip_prefix('[')?;
        let end = inner.find(']')?;
        let (name, rest) = inner.split_at(end);
        if name.is_empty() {
            return None;
        }
        names.push(name.to_string());
        text = rest.strip_prefix(']')?;
    }
    (!names.is_empty()).then_some(names)
}
