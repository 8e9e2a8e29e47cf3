//! The whole decision for one request: public paths, then browser login or bearer
//! tokens, then authorization. The host gathers the inputs and carries out the
//! verdict; nothing here touches it.

use crate::apps::App;
use crate::authenticator::{self, Decision, KeyLookup, KeyWait, Keys, TokenCache};
use crate::authz::{self, Identity, DENIED_BODY};
use crate::cache::{HashSecret, Key};
use crate::config::Config;
use crate::extractor;
use crate::fetch::HttpRequest;
use crate::http_url::HttpUrl;
use crate::introspection::{self, decision::Answer, state::Next};
use crate::jwks::KeySet;
use crate::metrics::{Counter, Counters, GaugeShares};
use crate::oidc::callback_memo::CallbackMemo;
use crate::oidc::flow::{self, HostCrypto, LocalReply, Step};
use crate::oidc::id_token;
use crate::oidc::login::{self, PendingLogin};
use crate::oidc::provider::Provider;
use crate::oidc::refresh::RefreshMemo;
use crate::path;
use crate::peer::Peer;
use crate::profile::{self, Phase};
use crate::request::{self, Edits, Forwarded, Headers};
use crate::response::{self, AuthError, Denial};
use crate::session::{Session, SessionCache};
use crate::streams::{Exchange, Streams};
use serde_json::{Map, Value};

/// What a request waits on at the token endpoint.
#[derive(Debug)]
pub enum Pending {
    Login(PendingLogin),
    /// `key` names the session in the refresh memo.
    Refresh {
        session: Session,
        key: Key,
    },
    /// An introspection of the token hashed to `key`, for `introspection[rule]`.
    Introspection {
        key: Key,
        rule: usize,
    },
}

#[derive(Debug)]
pub enum Verdict {
    /// Forward upstream with these edits; `response_cookies` go on the response.
    Allow {
        edits: Edits,
        response_cookies: Vec<String>,
    },
    Reply(LocalReply),
    /// A `jwt_authn`-style 401/403.
    Deny(Denial),
    /// Authenticated but not authorized: `403 RBAC: access denied`, or for a
    /// signed-in browser's navigation, `page`: who they are, and a way to sign out.
    Forbidden {
        detail: String,
        page: Option<LocalReply>,
    },
    Wait(Vec<KeyWait>),
    /// Call the token endpoint; `finish_exchange` takes the reply.
    Dispatch {
        request: HttpRequest,
        pending: Pending,
    },
}

/// What one worker VM remembers between requests: credentials already checked
/// (see `cache`) and what it has counted (see `metrics`).
pub struct VmState {
    pub tokens: TokenCache,
    pub sessions: SessionCache,
    pub counters: Counters,
    /// This plugin's share of the cache gauges.
    pub gauges: GaugeShares,
    pub refreshes: RefreshMemo,
    /// Login callbacks whose code is being or was exchanged, by state.
    pub callbacks: CallbackMemo,
    pub streams: Streams,
    pub introspection: introspection::state::State,
}

impl VmState {
    /// `secret` keys the caches' hashes: random, from the host.
    pub fn new(config: &Config, secret: HashSecret) -> Self {
        Self {
            tokens: TokenCache::new(config.token_cache, secret),
            sessions: SessionCache::new(config.session_cache, secret),
            counters: Counters::default(),
            gauges: GaugeShares::default(),
            refreshes: RefreshMemo::default(),
            callbacks: CallbackMemo::new(secret),
            streams: Streams::default(),
            introspection: introspection::state::State::new(
                config.introspection_cache,
                secret,
                config.introspection.len(),
            ),
        }
    }

    /// The request's stream ended (completed, reset or timed out): release what was
    /// kept for it, and let a refresh it was making be retried by the next request.
    pub fn forget(&mut self, context_id: u32) {
        for pending in self.streams.forget(context_id) {
            self.abandon(&pending);
        }
    }

    /// Keeps a token endpoint call until its reply; false (and nothing kept) when
    /// too many are in flight. A login keeps only the few headers its finish reads
    /// (`flow::finish_login_headers`), not the request's cookies, its code or its peer;
    /// a refresh keeps the whole request, which then goes upstream and is judged.
    pub fn keep_exchange(&mut self, config: &Config, mut exchange: Exchange) -> bool {
        if let Pending::Login(_) = &exchange.pending {
            let app = config.app_for(&exchange.headers);
            if let Some(oidc) = app.and_then(|app| app.oidc.as_ref()) {
                exchange.headers = flow::finish_login_headers(oidc, &exchange.headers);
            }
            exchange.peer = Peer::default();
        }
        match self.streams.add_exchange(exchange) {
            Ok(()) => true,
            Err(refused) => {
                self.abandon(&refused.pending);
                self.count_call_not_made(config, &refused.headers, &refused.pending);
                false
            }
        }
    }

    /// A call that was not made (Envoy refused to dispatch it, or there was no
    /// room for it): forgotten, so that the next request with the same token or
    /// session may ask again, and counted.
    pub fn dispatch_refused(&mut self, config: &Config, headers: &Headers, pending: &Pending) {
        self.abandon(pending);
        self.count_call_not_made(config, headers, pending);
    }

    /// An introspection call that was counted when it was asked for and then not
    /// made or not kept is a failed call, and its request is answered `503 Token
    /// introspection is unavailable`: counted as the decision counts its own.
    fn count_call_not_made(&mut self, config: &Config, headers: &Headers, pending: &Pending) {
        if let Pending::Introspection { .. } = pending {
            let app = config.app_for(headers).and_then(|app| app.index);
            self.counters.add(Counter::IntrospectionFailures);
            self.counters
                .add_for(app, Counter::DeniedIntrospectionUnavailable);
        }
    }

    /// The call for `pending` could not be made or will never be answered. A login's
    /// code may have reached the IdP all the same: its state stays spent.
    pub fn abandon(&mut self, pending: &Pending) {
        match pending {
            Pending::Refresh { key, .. } => self.refreshes.abandon(*key),
            Pending::Login(login) => self.callbacks.spend(&login.state),
            Pending::Introspection { key, .. } => self.introspection.abandon(*key),
        }
    }
}

pub struct Inputs<'a> {
    pub config: &'a Config,
    /// The settings chosen for this request's host ([`Config::app_for`]).
    pub app: &'a App,
    pub headers: &'a Headers,
    pub keys: &'a dyn KeyLookup,
    /// The app's OIDC issuer's endpoints, once discovered.
    pub provider: Option<&'a Provider>,
    /// The downstream peer, as far as the policies read it (`Config::peer_needs`).
    pub peer: &'a Peer,
    pub now_ms: u64,
    /// The request may not wait any longer (its wait timed out, or there is no room
    /// to wait): decide now.
    pub final_attempt: bool,
}

impl Inputs<'_> {
    fn flow_context(&self, bearer_token_present: bool) -> Option<flow::Context<'_>> {
        let oidc = self.app.oidc.as_ref()?;
        Some(flow::Context {
            config: self.config,
            oidc,
            provider: self.provider,
            cookie_keys: &oidc.cookie_keys,
            headers: self.headers,
            now: self.now_ms / 1000,
            now_ms: self.now_ms,
            allow_missing: self.app.allow_missing,
            bearer_token_present,
            final_attempt: self.final_attempt,
        })
    }
}

/// The whole decision for one request. A call to the token endpoint is asked for
/// only while there is room to keep it: past `MAX_EXCHANGES` calls in flight the
/// request gets a 503 page before any call is made, so no flood of callbacks (each
/// of its own login) drives traffic to the IdP beyond the bound.
pub fn decide(inputs: &Inputs, vm: &mut VmState, entropy: &mut dyn HostCrypto) -> Verdict {
    match decide_unbounded(inputs, vm, entropy) {
        Verdict::Dispatch { pending, .. } if !vm.streams.has_room_for_an_exchange() => {
            vm.dispatch_refused(inputs.config, inputs.headers, &pending);
            if let Pending::Introspection { .. } = pending {
                let why = "too many calls in flight";
                let error = AuthError::IntrospectionUnavailable;
                return Verdict::Deny(response::deny(error, why, inputs.headers));
            }
            Verdict::Reply(flow::error_page(
                503,
                "Too many sign-ins at once. Please try again.",
            ))
        }
        verdict => verdict,
    }
}

fn decide_unbounded(inputs: &Inputs, vm: &mut VmState, entropy: &mut dyn HostCrypto) -> Verdict {
    let _span = profile::span(Phase::Decide);
    let Inputs {
        config, headers, ..
    } = inputs;
    if is_public(inputs.app, headers) {
        vm.counters
            .add_for(inputs.app.index, Counter::AllowedPublic);
        return unauthenticated_allow(inputs);
    }
    if config.bypass_cors_preflight && is_cors_preflight(headers) {
        return preflight(inputs, vm);
    }
    let found = {
        let _span = profile::span(Phase::Extract);
        extractor::find_tokens(config, headers)
    };
    if let Some(context) = inputs.flow_context(!found.is_empty()) {
        match flow::begin(
            &context,
            &mut vm.sessions,
            &mut vm.refreshes,
            &mut vm.callbacks,
            entropy,
        ) {
            Step::Bearer => {}
            Step::Anonymous => return anonymous(inputs, vm, entropy),
            step => return from_login_step(inputs, step, &mut vm.counters),
        }
    } else if found.is_empty() && inputs.app.allow_missing {
        return anonymous(inputs, vm, entropy);
    }
    if let Some((rule, item)) = for_introspection(inputs, &mut vm.tokens, &found) {
        if found.len() > 1 {
            let detail = "a token for introspection with other tokens in one request";
            vm.counters
                .add_for(inputs.app.index, Counter::DeniedInvalid);
            let denial = response::deny(AuthError::VerificationFails, detail, headers);
            return Verdict::Deny(denial);
        }
        return introspect(inputs, vm, entropy, (rule, item), None);
    }
    match authenticator::authenticate_found(
        config,
        headers,
        &found,
        inputs.keys,
        &mut vm.tokens,
        inputs.now_ms / 1000,
    ) {
        Decision::Allow {
            mut edits,
            identity,
        } => {
            flow::strip_filter_cookies(config, headers, &mut edits);
            let verdict = authorized(
                inputs,
                Some(&identity.claims),
                edits,
                Vec::new(),
                &mut vm.counters,
            );
            vm.counters.add_for(
                inputs.app.index,
                allowed_or_forbidden(&verdict, Counter::AllowedToken),
            );
            verdict
        }
        Decision::Deny(denial) => {
            if denial.error == AuthError::Missing {
                if let Some(forbidden) = hopeless(inputs, &mut vm.counters) {
                    return forbidden;
                }
            }
            vm.counters
                .add_for(inputs.app.index, Counter::denied(denial.error));
            Verdict::Deny(denial)
        }
        Decision::Wait(waits) => Verdict::Wait(waits),
    }
}

/// The token of `found` that goes to introspection, and its rule
/// ([`introspection::route`]); a token the verified-token cache holds is a JWT
/// already, and is not parsed again to tell.
fn for_introspection<'f>(
    inputs: &Inputs,
    tokens: &mut TokenCache,
    found: &'f [extractor::Found],
) -> Option<(usize, &'f extractor::Found)> {
    let (config, now_seconds) = (inputs.config, inputs.now_ms / 1000);
    introspection::route(config, found, &mut |token| {
        authenticator::is_verified_jwt(config, tokens, token, now_seconds)
    })
}

/// Envoy's `jwt_authn` test for a CORS preflight: `OPTIONS` with a non-empty
/// `Origin` and `Access-Control-Request-Method`.
fn is_cors_preflight(headers: &Headers) -> bool {
    let present = |name| headers.get(name).is_some_and(|value| !value.is_empty());
    headers.get(":method") == Some("OPTIONS")
        && present("origin")
        && present("access-control-request-method")
}

/// A CORS preflight skips authentication, not authorization, as under Istio:
/// `jwt_authn`'s `bypass_cors_preflight` lets it past the token check, and the
/// RBAC filter then judges it as a request without a token. So the policies judge
/// it anonymously; one that denies it gets Istio's `403 RBAC: access denied` (a
/// preflight never carries a credential, so a `401` or a login could not help). A
/// policy that needs an identity lets preflights through with an ALLOW rule for
/// `methods: ["OPTIONS"]`, Istio's own advice.
fn preflight(inputs: &Inputs, vm: &mut VmState) -> Verdict {
    let edits = identity_headers_removed(inputs);
    match judge(inputs, &Map::new(), &edits, &mut vm.counters) {
        Ok(()) => {
            vm.counters
                .add_for(inputs.app.index, Counter::AllowedPreflight);
            Verdict::Allow {
                edits,
                response_cookies: Vec::new(),
            }
        }
        // A preflight never carries a credential, so none can help it: Istio's 403.
        Err(detail) => {
            vm.counters.add_for(inputs.app.index, Counter::DeniedRbac);
            Verdict::Forbidden { detail, page: None }
        }
    }
}

/// Forwarded without an identity: only client copies of identity headers go.
fn unauthenticated_allow(inputs: &Inputs) -> Verdict {
    Verdict::Allow {
        edits: identity_headers_removed(inputs),
        response_cookies: Vec::new(),
    }
}

/// What a request forwarded without a session loses: client copies of identity
/// headers, and the filter's cookies (the session path strips them in `flow`).
fn identity_headers_removed(inputs: &Inputs) -> Edits {
    let mut edits = Edits::default();
    let headers = inputs.headers;
    request::remove_identity_headers(&inputs.config.output_headers, headers, &mut edits);
    flow::strip_filter_cookies(inputs.config, headers, &mut edits);
    edits
}

/// No credential at all, with `allowMissing`: the policies judge the request with
/// no identity. If they deny it, an identity is what is missing: a login for a
/// browser, `401 Jwt is missing` for anyone else (Istio answers 403 here).
fn anonymous(inputs: &Inputs, vm: &mut VmState, entropy: &mut dyn HostCrypto) -> Verdict {
    let edits = identity_headers_removed(inputs);
    let no_claims = Map::new();
    let Err(detail) = judge(inputs, &no_claims, &edits, &mut vm.counters) else {
        vm.counters
            .add_for(inputs.app.index, Counter::AllowedAnonymous);
        return Verdict::Allow {
            edits,
            response_cookies: Vec::new(),
        };
    };
    if let Some(forbidden) = hopeless(inputs, &mut vm.counters) {
        return forbidden;
    }
    if let Some(context) = inputs.flow_context(false) {
        let step = flow::login_or_401(&context, entropy);
        return from_login_step(inputs, step, &mut vm.counters);
    }
    vm.counters
        .add_for(inputs.app.index, Counter::DeniedMissing);
    Verdict::Deny(response::deny(AuthError::Missing, detail, inputs.headers))
}

/// A request about to be told to bring a credential (`401`, or a login) that no
/// credential could get allowed (a peer, address, path or method rule denies it
/// whoever the user is): `403 RBAC: access denied` instead, counted as such.
fn hopeless(inputs: &Inputs, counters: &mut Counters) -> Option<Verdict> {
    let policies = &inputs.app.policies;
    if policies.is_empty() {
        return None;
    }
    let edits = identity_headers_removed(inputs);
    let request = Forwarded {
        headers: inputs.headers,
        edits: &edits,
    };
    if authz::could_allow_with_a_credential(policies, request, inputs.peer) {
        return None;
    }
    counters.add_for(inputs.app.index, Counter::DeniedRbac);
    let app = match inputs.app.index {
        Some(_) => inputs.app.name.as_str(),
        None => "top level",
    };
    Some(Verdict::Forbidden {
        detail: format!("the policies deny it whoever the user is (app {app})"),
        page: None,
    })
}

/// Which counter an authorized verdict goes to.
fn allowed_or_forbidden(verdict: &Verdict, allowed: Counter) -> Counter {
    match verdict {
        Verdict::Forbidden { .. } => Counter::DeniedRbac,
        _ => allowed,
    }
}

fn from_login_step(inputs: &Inputs, step: Step, counters: &mut Counters) -> Verdict {
    match step {
        Step::Allow {
            edits,
            session,
            response_cookies,
        } => {
            let mut verdict = authorized(
                inputs,
                Some(&session.claims),
                edits,
                response_cookies,
                counters,
            );
            if let (Verdict::Forbidden { page, .. }, Some(oidc)) = (&mut verdict, &inputs.app.oidc)
            {
                if login::is_navigation(inputs.headers) {
                    *page = Some(flow::refused_page(&session.claims, &oidc.logout_path));
                }
            }
            counters.add_for(
                inputs.app.index,
                allowed_or_forbidden(&verdict, Counter::AllowedSession),
            );
            verdict
        }
        Step::Reply(reply) => {
            // The only plain reply before a login is the 401 for API clients.
            if reply.status == 401 {
                if let Some(forbidden) = hopeless(inputs, counters) {
                    return forbidden;
                }
                counters.add_for(inputs.app.index, Counter::DeniedNoSession);
            }
            Verdict::Reply(reply)
        }
        Step::LoginRedirect(reply) => {
            if let Some(forbidden) = hopeless(inputs, counters) {
                return forbidden;
            }
            counters.add_for(inputs.app.index, Counter::LoginStarted);
            Verdict::Reply(reply)
        }
        Step::CallbackRejected(reply) => {
            counters.add_for(inputs.app.index, Counter::LoginFailed);
            Verdict::Reply(reply)
        }
        Step::CallbackReplayed(reply) => {
            counters.add_for(inputs.app.index, Counter::LoginReplayed);
            Verdict::Reply(reply)
        }
        Step::Logout(reply) => {
            counters.add_for(inputs.app.index, Counter::Logout);
            Verdict::Reply(reply)
        }
        Step::Exchange { request, pending } => Verdict::Dispatch {
            request,
            pending: Pending::Login(pending),
        },
        Step::Refresh {
            request,
            session,
            key,
        } => Verdict::Dispatch {
            request,
            pending: Pending::Refresh { session, key },
        },
        // Another request is refreshing this session or exchanging this callback's
        // code: wait as for the issuer's keys (the same timeout), then decide again.
        Step::AwaitOtherExchange => {
            let source = inputs.app.oidc.as_ref().map_or(0, |oidc| oidc.source);
            Verdict::Wait(vec![KeyWait {
                source,
                refetch: false,
            }])
        }
        // `decide` judges anonymous requests itself; fail closed if one gets here.
        Step::Anonymous => Verdict::Deny(response::deny(
            AuthError::Missing,
            "no session and no token",
            inputs.headers,
        )),
        Step::NeedProvider | Step::Bearer => {
            let source = inputs.app.oidc.as_ref().map_or(0, |oidc| oidc.source);
            match inputs.keys.remote_keys(source) {
                Keys::Failed => Verdict::Reply(flow::error_page(
                    502,
                    "The identity provider could not be reached. Please try again.",
                )),
                _ => Verdict::Wait(vec![KeyWait {
                    source,
                    refetch: false,
                }]),
            }
        }
    }
}

/// What became of a request that waited on the token endpoint.
#[derive(Debug)]
pub struct Finished {
    pub verdict: Verdict,
    /// Why a login or refresh failed, for the log.
    pub failure: Option<String>,
    /// The ID token named a key we do not have: the IdP rotated its keys, so this
    /// source (the issuer's JWKS) should be fetched again (rate-limited like any
    /// unknown kid).
    pub refetch_issuer_keys: Option<usize>,
}

/// The token endpoint's reply for a request that waited on it.
pub fn finish_exchange(
    inputs: &Inputs,
    pending: &Pending,
    reply: (Option<u32>, &[u8]),
    issuer_keys: &KeySet,
    vm: &mut VmState,
    entropy: &mut dyn HostCrypto,
) -> Finished {
    let (status, body) = reply;
    if let Pending::Introspection { key, rule } = pending {
        return finish_introspection(inputs, (*key, *rule), reply, vm, entropy);
    }
    // A token endpoint reply never carries a bearer token of its own.
    let Some(context) = inputs.flow_context(false) else {
        let verdict = Verdict::Reply(flow::error_page(500, "Login is not configured."));
        return Finished {
            verdict,
            failure: None,
            refetch_issuer_keys: None,
        };
    };
    let (verdict, failure) = match pending {
        Pending::Login(login) => {
            // Whatever the reply, the code is spent: a replay must not reach the IdP.
            vm.callbacks.spend(&login.state);
            match flow::finish_login(&context, login, status, body, issuer_keys, entropy) {
                Ok(reply) => {
                    vm.counters
                        .add_for(inputs.app.index, Counter::LoginCompleted);
                    (Verdict::Reply(reply), None)
                }
                Err((reply, why)) => {
                    vm.counters.add_for(inputs.app.index, Counter::LoginFailed);
                    (Verdict::Reply(reply), Some(why))
                }
            }
        }
        Pending::Refresh { session, key } => {
            let (step, why) = flow::finish_refresh(
                &context,
                session.clone(),
                *key,
                &mut vm.refreshes,
                status,
                body,
                issuer_keys,
                entropy,
            );
            vm.counters.add_for(
                inputs.app.index,
                if why.is_none() {
                    Counter::RefreshSucceeded
                } else {
                    Counter::RefreshFailed
                },
            );
            (from_login_step(inputs, step, &mut vm.counters), why)
        }
        // Finished above.
        Pending::Introspection { .. } => {
            let why = "introspection reply".to_string();
            (unavailable(inputs, vm, why.clone()), Some(why))
        }
    };
    let refetch_issuer_keys = inputs
        .app
        .oidc
        .as_ref()
        .filter(|_| failure.as_deref() == Some(id_token::UNKNOWN_KEY))
        .map(|oidc| oidc.source);
    Finished {
        verdict,
        failure,
        refetch_issuer_keys,
    }
}

/// Only a path already in normal form may be public: `/static/../admin` is not.
fn is_public(app: &App, headers: &Headers) -> bool {
    let raw = headers.path();
    let path = path::without_query(raw);
    path::is_clean(raw) && app.public_paths.iter().any(|pattern| pattern.matches(path))
}

/// The policies' verdict on an authenticated request; `edits` make the request
/// the policies judge the one that is forwarded.
fn authorized(
    inputs: &Inputs,
    claims: Option<&Map<String, Value>>,
    edits: Edits,
    response_cookies: Vec<String>,
    counters: &mut Counters,
) -> Verdict {
    let empty = Map::new();
    match judge(inputs, claims.unwrap_or(&empty), &edits, counters) {
        Ok(()) => Verdict::Allow {
            edits,
            response_cookies,
        },
        Err(detail) => Verdict::Forbidden { detail, page: None },
    }
}

/// The policies' verdict; a denial's reason names the app and who was refused,
/// for the log line of a gateway that fronts many apps. AUDIT and dry-run
/// policies are counted and noted for the log here, and decide nothing.
fn judge(
    inputs: &Inputs,
    claims: &Map<String, Value>,
    edits: &Edits,
    counters: &mut Counters,
) -> Result<(), String> {
    let policies = &inputs.app.policies;
    if policies.is_empty() {
        return Ok(());
    }
    let _span = profile::span(Phase::Authorize);
    let identity = Identity {
        claims,
        space_delimited: &inputs.config.space_delimited_claims,
    };
    let request = Forwarded {
        headers: inputs.headers,
        edits,
    };
    let who = || {
        let app = match inputs.app.index {
            Some(_) => inputs.app.name.as_str(),
            None => "top level",
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        match (text("iss"), text("sub")) {
            (Some(iss), Some(sub)) => format!("app {app}, principal {iss}/{sub}"),
            _ => format!("app {app}, anonymous"),
        }
    };
    let observed = authz::observe(policies, &identity, request, inputs.peer);
    for name in &observed.audited {
        counters.add_for(inputs.app.index, Counter::AuditMatched);
        let line = format!(
            "AUDIT policy {name} matched {} ({})",
            request_line(inputs),
            who()
        );
        counters.note(line);
    }
    if let Some(would) = &observed.dry_run {
        let (counter, verdict) = match would {
            Ok(()) => (Counter::DryRunAllowed, "would allow".to_string()),
            Err(why) => (Counter::DryRunDenied, format!("would deny: {why}")),
        };
        counters.add_for(inputs.app.index, counter);
        counters.note(format!(
            "dry-run policies {verdict} {} ({})",
            request_line(inputs),
            who()
        ));
    }
    authz::authorize(policies, &identity, request, inputs.peer)
        .map_err(|why| format!("{why} ({})", who()))
}

/// `METHOD host/path` (no query) for a note; escaped when the note is logged.
fn request_line(inputs: &Inputs) -> String {
    let headers = inputs.headers;
    let host = headers.get(":authority").unwrap_or_default();
    format!(
        "{} {host}{}",
        headers.get(":method").unwrap_or("-"),
        path::without_query(headers.path())
    )
}

/// A request whose authority is not `host[:port]` (see [`crate::authority`]):
/// `400`, before any app, session or policy is consulted.
pub fn refuse_authority(vm: &mut VmState) -> Verdict {
    vm.counters.add(Counter::DeniedInvalidAuthority);
    Verdict::Reply(LocalReply {
        status: 400,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: crate::authority::INVALID_AUTHORITY.to_string(),
    })
}

/// The 403 Istio users know.
pub fn forbidden_reply() -> LocalReply {
    LocalReply {
        status: 403,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: DENIED_BODY.to_string(),
    }
}

/// A token for `introspection[rule]`: its answer (`fresh`, just received, or
/// cached), or a wait for another request's call, or a call to make.
fn introspect(
    inputs: &Inputs,
    vm: &mut VmState,
    entropy: &mut dyn HostCrypto,
    (rule_index, found): (usize, &extractor::Found),
    fresh: Option<(Key, &Answer)>,
) -> Verdict {
    let config = inputs.config;
    let Some(rule) = config.introspection.get(rule_index) else {
        return introspection_verdict(inputs, vm, Answer::Failed("no rule".into()), None);
    };
    let key = vm.introspection.key(&found.token);
    let now = inputs.now_ms / 1000;
    let answer = match fresh.filter(|(fresh_key, _)| *fresh_key == key) {
        Some((_, answer)) => answer.clone(),
        None => match vm.introspection.next(key, rule_index, inputs.now_ms) {
            Next::Known(answer) => {
                vm.counters.add(Counter::IntrospectionCacheHits);
                introspection::decision::still_valid(&answer, now, config.clock_skew_seconds)
            }
            Next::Wait if !inputs.final_attempt => {
                return Verdict::Wait(vec![KeyWait {
                    source: introspection::WAIT,
                    refetch: false,
                }])
            }
            Next::Wait => Answer::Failed("waited too long for this token's introspection".into()),
            Next::BackingOff => Answer::Failed("the introspection endpoint failed recently".into()),
            Next::Busy => Answer::Failed("too many introspection calls in flight".into()),
            Next::Call => {
                let endpoint = match &rule.endpoint {
                    introspection::Endpoint::Url(url) => Ok(url),
                    introspection::Endpoint::Discovered(source) => {
                        match discovered(inputs, *source) {
                            Ok(url) => Ok(url),
                            Err(None) => {
                                return Verdict::Wait(vec![KeyWait {
                                    source: *source,
                                    refetch: false,
                                }])
                            }
                            Err(Some(why)) => Err(why),
                        }
                    }
                };
                let request = endpoint.and_then(|endpoint| {
                    let clusters = &config.clusters;
                    introspection::request(rule, endpoint, &found.token, clusters, now, entropy)
                });
                match request {
                    Ok(request) => {
                        let deadline = inputs.now_ms.saturating_add(rule.timeout_ms);
                        vm.introspection.started(key, deadline);
                        vm.counters.add(Counter::IntrospectionCalls);
                        return Verdict::Dispatch {
                            request,
                            pending: Pending::Introspection {
                                key,
                                rule: rule_index,
                            },
                        };
                    }
                    Err(why) => Answer::Failed(why),
                }
            }
        },
    };
    introspection_verdict(inputs, vm, answer, Some((rule_index, found)))
}

/// A discovered introspection endpoint; `Err(None)`: wait for the document.
fn discovered<'a>(inputs: &'a Inputs, source: usize) -> Result<&'a HttpUrl, Option<String>> {
    match inputs.keys.remote_keys(source) {
        Keys::Pending => Err(None),
        Keys::Failed => Err(Some(
            "the issuer's discovery document is unavailable".into(),
        )),
        Keys::Ready { .. } => inputs
            .keys
            .introspection_endpoint(source)
            .ok_or_else(|| Some("the discovery document names no introspection_endpoint".into())),
    }
}

/// The request's verdict from its token's introspection answer: an active token
/// is an identity, judged and forwarded as a JWT's would be.
fn introspection_verdict(
    inputs: &Inputs,
    vm: &mut VmState,
    answer: Answer,
    found: Option<(usize, &extractor::Found)>,
) -> Verdict {
    let (config, headers) = (inputs.config, inputs.headers);
    let rule = found.and_then(|(index, found)| Some((config.introspection.get(index)?, found)));
    let (claims, (rule, found)) = match (answer, rule) {
        (Answer::Active(claims), Some(rule)) => (claims, rule),
        (Answer::Inactive(error, detail), _) => {
            vm.counters
                .add_for(inputs.app.index, Counter::denied(error));
            return Verdict::Deny(response::deny(error, detail, headers));
        }
        (Answer::Failed(why), _) => return unavailable(inputs, vm, why),
        (Answer::Active(_), None) => return unavailable(inputs, vm, "no rule".into()),
    };
    let mut edits = Edits::default();
    request::remove_identity_headers(&config.output_headers, headers, &mut edits);
    if !rule.forward_original_token {
        if let Some(location) = config.locations.get(found.location) {
            extractor::remove_from(location, headers, &mut edits);
        }
    }
    for output in config
        .output_claim_to_headers
        .iter()
        .chain(&rule.output_claim_to_headers)
    {
        let value = crate::claims::lookup(&claims, &output.claim)
            .and_then(crate::claims::scalar_text)
            .filter(|value| request::is_safe_header_value(value));
        if let Some(value) = value {
            edits.set(&output.header, value);
        }
    }
    flow::strip_filter_cookies(config, headers, &mut edits);
    let verdict = authorized(inputs, Some(&claims), edits, Vec::new(), &mut vm.counters);
    vm.counters.add_for(
        inputs.app.index,
        allowed_or_forbidden(&verdict, Counter::AllowedToken),
    );
    verdict
}

/// No positive answer: `503 Token introspection is unavailable` (fail closed).
fn unavailable(inputs: &Inputs, vm: &mut VmState, why: String) -> Verdict {
    vm.counters
        .add_for(inputs.app.index, Counter::DeniedIntrospectionUnavailable);
    let error = AuthError::IntrospectionUnavailable;
    Verdict::Deny(response::deny(error, why, inputs.headers))
}

/// The introspection endpoint's reply for the request that made the call.
fn finish_introspection(
    inputs: &Inputs,
    (key, rule_index): (Key, usize),
    (status, body): (Option<u32>, &[u8]),
    vm: &mut VmState,
    entropy: &mut dyn HostCrypto,
) -> Finished {
    let config = inputs.config;
    let answer = match config.introspection.get(rule_index) {
        Some(rule) => {
            let now = inputs.now_ms / 1000;
            let answer = introspection::decision::judge_reply(
                rule,
                status,
                body,
                now,
                config.clock_skew_seconds,
            );
            vm.introspection
                .complete(key, rule_index, rule, &answer, inputs.now_ms);
            answer
        }
        None => {
            vm.introspection.abandon(key);
            Answer::Failed("no rule".into())
        }
    };
    let (counter, failure) = match &answer {
        Answer::Active(_) => (Counter::IntrospectionActive, None),
        Answer::Inactive(..) => (Counter::IntrospectionInactive, None),
        Answer::Failed(why) => (Counter::IntrospectionFailures, Some(why.clone())),
    };
    vm.counters.add(counter);
    let found = extractor::find_tokens(config, inputs.headers);
    let verdict = match for_introspection(inputs, &mut vm.tokens, &found) {
        Some(routed) => introspect(inputs, vm, entropy, routed, Some((key, &answer))),
        None => introspection_verdict(inputs, vm, Answer::Failed("token gone".into()), None),
    };
    Finished {
        verdict,
        failure: failure.map(|why| format!("introspection: {why}")),
        refetch_issuer_keys: None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
