//! Authorization policies in Istio's `AuthorizationPolicy` shape, compiled once at
//! load into matchers.

use super::path_pattern::PathPattern;
use super::pattern::{
    NamespacePattern, Pattern, PrincipalPattern, ServiceAccountPattern, TrustDomainPattern,
};
use crate::config::{check_istio_resource, At, ConfigError, Fields};
use crate::peer::{IpBlock, PeerNeeds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    /// Never changes the decision; a match is counted and logged.
    Audit,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub action: Action,
    /// Empty: the policy matches nothing (Istio's "allow-nothing").
    pub rules: Vec<Rule>,
    /// `istio.io/dry-run: "true"`: evaluated, counted and logged as "would
    /// allow/deny", never enforced.
    pub dry_run: bool,
    /// What the log calls it: `<namespace>/<name>` of a pasted resource, else
    /// `authorizationPolicies[i]`.
    pub name: String,
}

impl Policy {
    /// Whether this policy takes part in the decision (not AUDIT, not dry-run).
    pub fn enforced(&self) -> bool {
        !self.dry_run && self.action != Action::Audit
    }
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

/// One field and its `not` form (`paths` / `notPaths`): when `values` is set, some
/// value of the request must match it; no value may match `not_values`.
#[derive(Debug, Clone)]
pub struct Matchers<M> {
    pub values: Vec<M>,
    pub not_values: Vec<M>,
}

impl<M> Default for Matchers<M> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            not_values: Vec::new(),
        }
    }
}

impl<M> Matchers<M> {
    pub fn is_set(&self) -> bool {
        !(self.values.is_empty() && self.not_values.is_empty())
    }
}

/// Istio's `from.source`: the end user (`requestPrincipals`) and the downstream
/// peer (mTLS `principals`, `namespaces`, addresses).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub request_principals: Matchers<PrincipalPattern>,
    pub principals: Matchers<Pattern>,
    pub namespaces: Matchers<NamespacePattern>,
    pub service_accounts: Matchers<ServiceAccountPattern>,
    pub trust_domains: Matchers<TrustDomainPattern>,
    pub ip_blocks: Matchers<IpBlock>,
    pub remote_ip_blocks: Matchers<IpBlock>,
}

#[derive(Debug, Clone, Default)]
pub struct Operation {
    /// Istio's string patterns or path templates (`{*}`, `{**}`).
    pub paths: Matchers<PathPattern>,
    pub methods: Matchers<Pattern>,
    /// Lowercased: hosts match case-insensitively.
    pub hosts: Matchers<Pattern>,
    /// The connection's local port (Envoy's `destination_port`).
    pub ports: Matchers<u16>,
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
    /// `source.serviceAccount`: `<namespace>/<name>` of the peer's identity.
    SourceServiceAccount,
    /// `source.trustDomain`: the trust domain of the peer's identity.
    SourceTrustDomain,
    /// `source.ip`: the direct downstream peer's address.
    SourceIp,
    /// `remote.ip`: the client address Envoy computed (X-Forwarded-For).
    RemoteIp,
    /// `destination.ip`: the connection's local address.
    DestinationIp,
    /// `destination.port`: the connection's local port.
    DestinationPort,
    /// `connection.sni`: the TLS server name the client asked for.
    ConnectionSni,
    /// `experimental.envoy.filters.<namespace>[<key>]`: the dynamic metadata
    /// another filter wrote, namespace `envoy.filters.<namespace>`, key `<key>`.
    Metadata {
        namespace: String,
        key: String,
    },
}

impl Key {
    /// Whether the key's value depends on who the user is: their token or session
    /// (headers too, since the filter writes claims into them).
    pub fn reads_identity(&self) -> bool {
        matches!(
            self,
            Key::Principal | Key::Audiences | Key::Presenter | Key::Claim(_) | Key::Header(_)
        )
    }
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
    Text(Matchers<Pattern>),
    Ip(Matchers<IpBlock>),
    /// `destination.port`: port numbers.
    Port(Matchers<u16>),
    /// `request.auth.principal`: issuer and subject matched apart, as Istio does.
    Principal(Matchers<PrincipalPattern>),
    /// `source.namespace`: any `/ns/<value>/` of the peer's identity.
    Namespace(Matchers<NamespacePattern>),
    ServiceAccount(Matchers<ServiceAccountPattern>),
    TrustDomain(Matchers<TrustDomainPattern>),
    /// `experimental.envoy.filters.*`: `v` for a string value, `[v]` for a list
    /// with an element `v`, as Istio translates them.
    Metadata(Matchers<MetadataPattern>),
}

/// One value of an `experimental.envoy.filters.*` condition.
#[derive(Debug, Clone)]
pub struct MetadataPattern {
    /// Written `[v]`: Envoy's `list_match` (some string element matches).
    pub in_list: bool,
    pub pattern: Pattern,
}

impl MetadataPattern {
    pub fn parse(text: &str) -> Result<MetadataPattern, String> {
        match text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            Some(inner) => Ok(MetadataPattern {
                in_list: true,
                pattern: Pattern::parse(inner)?,
            }),
            None => Ok(MetadataPattern {
                in_list: false,
                pattern: Pattern::parse(text)?,
            }),
        }
    }
}

pub(crate) struct RawPolicy {
    action: Option<String>,
    rules: Vec<RawRule>,
    /// Set when a whole `AuthorizationPolicy` resource was pasted: its `spec`'s
    /// fields are the ones above.
    resource: Option<RawResource>,
}

/// `apiVersion`, `kind` and the `metadata` that matters of a pasted resource.
struct RawResource {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<RawMetadata>,
}

struct RawMetadata {
    name: Option<String>,
    namespace: Option<String>,
    annotations: std::collections::BTreeMap<String, String>,
}

impl RawMetadata {
    fn read(f: &mut Fields) -> RawMetadata {
        let metadata = RawMetadata {
            name: f.string("name"),
            namespace: f.string("namespace"),
            annotations: f.string_map("annotations"),
        };
        // labels, uid, resourceVersion, ...: what `kubectl get -o yaml` adds.
        f.ignore_the_rest();
        metadata
    }
}

/// The dry-run annotation, read as Istio reads it (Go's `strconv.ParseBool`).
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

#[derive(Clone)]
struct RawRule {
    from: Vec<RawFrom>,
    to: Vec<RawTo>,
    when: Vec<RawCondition>,
}

#[derive(Clone)]
struct RawFrom {
    source: RawSource,
}

#[derive(Clone)]
struct RawSource {
    request_principals: Vec<String>,
    not_request_principals: Vec<String>,
    principals: Vec<String>,
    not_principals: Vec<String>,
    namespaces: Vec<String>,
    not_namespaces: Vec<String>,
    service_accounts: Vec<String>,
    not_service_accounts: Vec<String>,
    trust_domains: Vec<String>,
    not_trust_domains: Vec<String>,
    ip_blocks: Vec<String>,
    not_ip_blocks: Vec<String>,
    remote_ip_blocks: Vec<String>,
    not_remote_ip_blocks: Vec<String>,
}

#[derive(Clone)]
struct RawTo {
    operation: RawOperation,
}

#[derive(Clone)]
struct RawOperation {
    paths: Vec<String>,
    not_paths: Vec<String>,
    methods: Vec<String>,
    not_methods: Vec<String>,
    hosts: Vec<String>,
    not_hosts: Vec<String>,
    ports: Vec<String>,
    not_ports: Vec<String>,
}

#[derive(Clone)]
struct RawCondition {
    key: String,
    values: Vec<String>,
    not_values: Vec<String>,
}

impl RawPolicy {
    /// A bare `spec`, or a whole `AuthorizationPolicy` resource (`apiVersion`,
    /// `kind`, `metadata`, `spec`) pasted as it is.
    pub(crate) fn read(f: &mut Fields) -> RawPolicy {
        if !["spec", "kind", "apiVersion", "metadata"]
            .iter()
            .any(|name| f.has(name))
        {
            return RawPolicy::read_spec(f);
        }
        let resource = RawResource {
            api_version: f.string("apiVersion"),
            kind: f.string("kind"),
            metadata: f.object("metadata", RawMetadata::read),
        };
        f.ignore("status");
        let mut policy = f.required_object("spec", RawPolicy::read_spec);
        policy.resource = Some(resource);
        policy
    }

    /// `selector` and `targetRef(s)` choose workloads in Istio; here the
    /// WasmPlugin's or TrafficExtension's own `selector`/`targetRefs` do, so they
    /// are accepted and ignored (documented).
    fn read_spec(f: &mut Fields) -> RawPolicy {
        let policy = RawPolicy {
            action: f.string("action"),
            rules: f.objects("rules", RawRule::read),
            resource: None,
        };
        for ignored in ["selector", "targetRef", "targetRefs", "provider"] {
            f.ignore(ignored);
        }
        policy
    }

    /// The namespace a short `serviceAccounts` value (`<name>`) belongs to.
    fn namespace(&self) -> Option<&str> {
        self.resource
            .as_ref()?
            .metadata
            .as_ref()?
            .namespace
            .as_deref()
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
            service_accounts: f.strings("serviceAccounts"),
            not_service_accounts: f.strings("notServiceAccounts"),
            trust_domains: f.strings("trustDomains"),
            not_trust_domains: f.strings("notTrustDomains"),
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
            ports: f.strings("ports"),
            not_ports: f.strings("notPorts"),
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

/// Every policy of `authorizationPolicies` (at `at`), compiled; an error names its path.
pub(crate) fn compile_all(at: &At, raw: &[RawPolicy]) -> Result<Vec<Policy>, ConfigError> {
    compile_each(at, raw, compile)
}

#[inline(never)]
fn compile(outer: &At, raw: &RawPolicy) -> Result<Policy, ConfigError> {
    let (at, name, dry_run) = match &raw.resource {
        Some(resource) => {
            let (name, dry_run) = check_resource(outer, resource)?;
            (outer.field("spec"), name, dry_run)
        }
        None => (*outer, String::new(), false),
    };
    let action = match raw.action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some("AUDIT") => Action::Audit,
        Some(other) => {
            return Err(at.field("action").error(format!(
                "`{other}`: use ALLOW, DENY or AUDIT (CUSTOM needs an external \
                 authorizer, which this filter replaces)"
            )))
        }
    };
    let rules = match raw.namespace() {
        Some(namespace) => {
            let qualified = qualified_service_accounts(&raw.rules, namespace);
            compile_each(&at.field("rules"), &qualified, compile_rule)?
        }
        None => compile_each(&at.field("rules"), &raw.rules, compile_rule)?,
    };
    Ok(Policy {
        action,
        rules,
        dry_run,
        name,
    })
}

/// A pasted resource's `apiVersion` and `kind`, its name for the log, and
/// whether it is a dry run.
#[inline(never)]
fn check_resource(at: &At, resource: &RawResource) -> Result<(String, bool), ConfigError> {
    check_istio_resource(
        at,
        resource.api_version.as_deref(),
        resource.kind.as_deref(),
        "AuthorizationPolicy",
        "RequestAuthentication goes in jwtRules",
    )?;
    let metadata = resource.metadata.as_ref();
    let name = match metadata.map(|m| (m.namespace.as_deref(), m.name.as_deref())) {
        Some((Some(namespace), Some(name))) => format!("{namespace}/{name}"),
        Some((None, Some(name))) => name.to_string(),
        _ => String::new(),
    };
    let annotation = metadata.and_then(|m| m.annotations.get(DRY_RUN_ANNOTATION));
    let dry_run = match annotation.map(String::as_str) {
        None => false,
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        Some(other) => {
            return Err(at.field("metadata").field("annotations").error(format!(
                "`{DRY_RUN_ANNOTATION}: {other}`: use \"true\" or \"false\""
            )))
        }
    };
    Ok((name, dry_run))
}

/// The rules with every short `serviceAccounts` value (`<name>`) written as
/// `<namespace>/<name>` of the policy's own namespace, as Istio reads them.
fn qualified_service_accounts(rules: &[RawRule], namespace: &str) -> Vec<RawRule> {
    let qualify = |values: &[String]| -> Vec<String> {
        values
            .iter()
            .map(|value| match value.contains('/') {
                true => value.clone(),
                false => format!("{namespace}/{value}"),
            })
            .collect()
    };
    rules
        .iter()
        .map(|rule| RawRule {
            from: rule
                .from
                .iter()
                .map(|from| RawFrom {
                    source: RawSource {
                        service_accounts: qualify(&from.source.service_accounts),
                        not_service_accounts: qualify(&from.source.not_service_accounts),
                        ..from.source.clone()
                    },
                })
                .collect(),
            to: rule.to.clone(),
            when: rule
                .when
                .iter()
                .map(|condition| match condition.key.as_str() {
                    "source.serviceAccount" => RawCondition {
                        key: condition.key.clone(),
                        values: qualify(&condition.values),
                        not_values: qualify(&condition.not_values),
                    },
                    _ => condition.clone(),
                })
                .collect(),
        })
        .collect()
}

/// `compile` on each item, at `at[i]`. A plain loop: the iterator adapters of
/// `collect::<Result<..>>` cost the module kilobytes per use. Items are borrowed:
/// moving them out would add drop glue for what is left on each early return.
fn compile_each<R, T>(
    at: &At,
    items: &[R],
    compile: fn(&At, &R) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let mut compiled = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        compiled.push(compile(&at.item(i), item)?);
    }
    Ok(compiled)
}

fn compile_rule(at: &At, raw: &RawRule) -> Result<Rule, ConfigError> {
    let from = compile_each(&at.field("from"), &raw.from, |at, from| {
        compile_source(&at.field("source"), &from.source)
    })?;
    let to = compile_each(&at.field("to"), &raw.to, |at, to| {
        compile_operation(&at.field("operation"), &to.operation)
    })?;
    let when = compile_each(&at.field("when"), &raw.when, compile_condition)?;
    let mut rule = Rule {
        from,
        to,
        when,
        reads: PeerNeeds::default(),
    };
    rule.reads = rule.peer_needs();
    Ok(rule)
}

/// Each field with its own matcher: Istio reads each differently (principals
/// split into issuer and subject, namespaces anywhere in the identity); the two
/// address fields from a table.
#[inline(never)]
fn compile_source(at: &At, raw: &RawSource) -> Result<Source, ConfigError> {
    let mut source = Source {
        request_principals: matchers(
            at,
            ("requestPrincipals", &raw.request_principals),
            ("notRequestPrincipals", &raw.not_request_principals),
            PrincipalPattern::parse,
        )?,
        namespaces: matchers(
            at,
            ("namespaces", &raw.namespaces),
            ("notNamespaces", &raw.not_namespaces),
            NamespacePattern::parse,
        )?,
        service_accounts: matchers(
            at,
            ("serviceAccounts", &raw.service_accounts),
            ("notServiceAccounts", &raw.not_service_accounts),
            ServiceAccountPattern::parse,
        )?,
        trust_domains: matchers(
            at,
            ("trustDomains", &raw.trust_domains),
            ("notTrustDomains", &raw.not_trust_domains),
            TrustDomainPattern::parse,
        )?,
        principals: texts(
            at,
            ("principals", &raw.principals),
            ("notPrincipals", &raw.not_principals),
        )?,
        ..Source::default()
    };
    for (slot, values, not_values) in [
        (
            &mut source.ip_blocks,
            ("ipBlocks", raw.ip_blocks.as_slice()),
            ("notIpBlocks", raw.not_ip_blocks.as_slice()),
        ),
        (
            &mut source.remote_ip_blocks,
            ("remoteIpBlocks", raw.remote_ip_blocks.as_slice()),
            ("notRemoteIpBlocks", raw.not_remote_ip_blocks.as_slice()),
        ),
    ] {
        *slot = blocks(at, values, not_values)?;
    }
    Ok(source)
}

/// As [`compile_source`], from a table.
#[inline(never)]
fn compile_operation(at: &At, raw: &RawOperation) -> Result<Operation, ConfigError> {
    let mut operation = Operation::default();
    for (slot, values, not_values) in [
        (
            &mut operation.hosts,
            ("hosts", raw.hosts.as_slice()),
            ("notHosts", raw.not_hosts.as_slice()),
        ),
        (
            &mut operation.methods,
            ("methods", raw.methods.as_slice()),
            ("notMethods", raw.not_methods.as_slice()),
        ),
    ] {
        *slot = texts(at, values, not_values)?;
    }
    let hosts = &mut operation.hosts;
    for pattern in hosts.values.iter_mut().chain(hosts.not_values.iter_mut()) {
        *pattern = pattern.lowercased();
    }
    operation.paths = matchers(
        at,
        ("paths", &raw.paths),
        ("notPaths", &raw.not_paths),
        PathPattern::parse,
    )?;
    operation.ports = matchers(
        at,
        ("ports", &raw.ports),
        ("notPorts", &raw.not_ports),
        parse_port,
    )?;
    Ok(operation)
}

#[inline(never)]
fn compile_condition(at: &At, raw: &RawCondition) -> Result<Condition, ConfigError> {
    let key = parse_key(&raw.key).map_err(|why| at.field("key").error(why))?;
    if raw.values.is_empty() && raw.not_values.is_empty() {
        return Err(at.error("needs `values` or `notValues`"));
    }
    let values: RawPair = ("values", &raw.values);
    let not_values: RawPair = ("notValues", &raw.not_values);
    let test = match key {
        Key::SourceIp | Key::RemoteIp | Key::DestinationIp => {
            Test::Ip(blocks(at, values, not_values)?)
        }
        Key::DestinationPort => Test::Port(matchers(at, values, not_values, parse_port)?),
        Key::Principal => {
            Test::Principal(matchers(at, values, not_values, PrincipalPattern::parse)?)
        }
        Key::SourceNamespace => {
            Test::Namespace(matchers(at, values, not_values, NamespacePattern::parse)?)
        }
        Key::SourceServiceAccount => Test::ServiceAccount(matchers(
            at,
            values,
            not_values,
            ServiceAccountPattern::parse,
        )?),
        Key::SourceTrustDomain => {
            Test::TrustDomain(matchers(at, values, not_values, TrustDomainPattern::parse)?)
        }
        Key::Metadata { .. } => {
            Test::Metadata(matchers(at, values, not_values, MetadataPattern::parse)?)
        }
        Key::Header(_) => Test::Text(matchers(at, values, not_values, header_pattern)?),
        _ => Test::Text(texts(at, values, not_values)?),
    };
    Ok(Condition { key, test })
}

/// A `request.headers[...]` value: Istio's `HeaderMatcher` turns `*` into Envoy's
/// `present_match`, which a header with an empty value meets too; the empty
/// prefix is that (every value starts with it). Other values as `Pattern`.
fn header_pattern(text: &str) -> Result<Pattern, String> {
    match Pattern::parse(text)? {
        Pattern::Present => Ok(Pattern::Prefix(String::new())),
        pattern => Ok(pattern),
    }
}

/// A port as Istio reads one: a decimal number from 0 to 65535.
fn parse_port(text: &str) -> Result<u16, String> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .ok_or_else(|| format!("`{text}` is not a port (0-65535)"))
}

/// A field and its `not` form, each given as (name, texts).
type RawPair<'a> = (&'a str, &'a [String]);

fn texts(at: &At, values: RawPair, not_values: RawPair) -> Result<Matchers<Pattern>, ConfigError> {
    matchers(at, values, not_values, Pattern::parse)
}

fn blocks(at: &At, values: RawPair, not_values: RawPair) -> Result<Matchers<IpBlock>, ConfigError> {
    matchers(at, values, not_values, IpBlock::parse)
}

fn matchers<M>(
    at: &At,
    (field, values): RawPair,
    (not_field, not_values): RawPair,
    parse: fn(&str) -> Result<M, String>,
) -> Result<Matchers<M>, ConfigError> {
    Ok(Matchers {
        values: parse_each(&at.field(field), values, parse)?,
        not_values: parse_each(&at.field(not_field), not_values, parse)?,
    })
}

impl Policy {
    /// Peer principals written as SPIFFE URIs (`spiffe://td/ns/a/sa/b`), in
    /// `principals`, `notPrincipals` or a `source.principal` condition: Istio's
    /// principals carry no scheme, so these never match.
    pub fn principals_with_a_scheme(&self) -> Vec<String> {
        fn look(matchers: &Matchers<Pattern>, found: &mut Vec<String>) {
            for pattern in matchers.values.iter().chain(&matchers.not_values) {
                let written = pattern.written();
                if written.starts_with("spiffe://") && !found.contains(&written) {
                    found.push(written);
                }
            }
        }
        let mut found = Vec::new();
        for rule in &self.rules {
            for source in &rule.from {
                look(&source.principals, &mut found);
            }
            for condition in &rule.when {
                if let (Key::SourcePrincipal, Test::Text(matchers)) =
                    (&condition.key, &condition.test)
                {
                    look(matchers, &mut found);
                }
            }
        }
        found
    }

    /// The (namespace, key) of each `experimental.envoy.filters.*` condition.
    pub fn metadata_keys(&self) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for rule in &self.rules {
            for condition in &rule.when {
                if let Key::Metadata { namespace, key } = &condition.key {
                    keys.push((namespace.clone(), key.clone()));
                }
            }
        }
        keys
    }

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
            needs.principal |= source.principals.is_set()
                || source.namespaces.is_set()
                || source.service_accounts.is_set()
                || source.trust_domains.is_set();
            needs.direct_ip |= source.ip_blocks.is_set();
            needs.remote_ip |= source.remote_ip_blocks.is_set();
        }
        for operation in &self.to {
            needs.destination |= operation.ports.is_set();
        }
        for condition in &self.when {
            match condition.key {
                Key::DestinationIp | Key::DestinationPort => needs.destination = true,
                Key::ConnectionSni => needs.sni = true,
                Key::Metadata { .. } => needs.metadata = true,
                Key::SourcePrincipal
                | Key::SourceNamespace
                | Key::SourceServiceAccount
                | Key::SourceTrustDomain => needs.principal = true,
                Key::SourceIp => needs.direct_ip = true,
                Key::RemoteIp => needs.remote_ip = true,
                _ => {}
            }
        }
        needs
    }
}

fn parse_each<T>(
    at: &At,
    texts: &[String],
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let mut parsed = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        parsed.push(parse(text).map_err(|why| at.item(i).error(why))?);
    }
    Ok(parsed)
}
/// The `when` keys, in Istio's spelling.
pub fn parse_key(text: &str) -> Result<Key, String> {
    match text {
        "request.auth.principal" => return Ok(Key::Principal),
        "request.auth.audiences" => return Ok(Key::Audiences),
        "request.auth.presenter" => return Ok(Key::Presenter),
        "source.principal" => return Ok(Key::SourcePrincipal),
        "source.namespace" => return Ok(Key::SourceNamespace),
        "source.serviceAccount" => return Ok(Key::SourceServiceAccount),
        "source.trustDomain" => return Ok(Key::SourceTrustDomain),
        "source.ip" => return Ok(Key::SourceIp),
        "remote.ip" => return Ok(Key::RemoteIp),
        "destination.ip" => return Ok(Key::DestinationIp),
        "destination.port" => return Ok(Key::DestinationPort),
        "connection.sni" => return Ok(Key::ConnectionSni),
        _ => {}
    }
    if let Some(rest) = text.strip_prefix("experimental.") {
        // Istio: `envoy.filters.a.b[c]` is namespace `envoy.filters.a.b`, key `c`.
        let parsed = rest
            .strip_prefix("envoy.filters.")
            .and_then(|_| rest.strip_suffix(']'))
            .and_then(|inner| inner.split_once('[').map(|parts| (inner, parts)))
            .filter(|(inner, (namespace, key))| {
                !namespace.ends_with('.')
                    && !key.is_empty()
                    && !key.contains(['[', ']'])
                    && !inner.contains(char::is_control)
            });
        return match parsed {
            Some((_, (namespace, key))) => Ok(Key::Metadata {
                namespace: namespace.to_string(),
                key: key.to_string(),
            }),
            None => Err(format!(
                "`{text}`: write experimental.envoy.filters.<filter>[<key>] (the dynamic \
                 metadata of namespace envoy.filters.<filter>)"
            )),
        };
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
        "`{text}` is not a key of Istio's AuthorizationPolicy; use request.auth.principal, request.auth.audiences, \
         request.auth.presenter, request.auth.claims[...], request.headers[...], \
         source.principal, source.namespace, source.serviceAccount, source.trustDomain, \
         source.ip, remote.ip, destination.ip, destination.port, connection.sni or \
         experimental.envoy.filters.<filter>[<key>]"
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
