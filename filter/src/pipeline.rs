//! The whole decision for one request: public paths, then browser login or bearer
//! tokens, then authorization. The host gathers the inputs and carries out the
//! verdict; nothing here touches it.

use crate::authenticator::{self, Decision, KeyLookup, KeyWait, Keys, TokenCache};
use crate::authz::{self, Identity, DENIED_BODY};
use crate::cache::HashSecret;
use crate::config::Config;
use crate::extractor;
use crate::fetch::HttpRequest;
use crate::jwks::KeySet;
use crate::metrics::{Counter, Counters, GaugeShares};
use crate::oidc::flow::{self, Entropy, LocalReply, Step};
use crate::oidc::id_token;
use crate::oidc::login::PendingLogin;
use crate::oidc::provider::Provider;
use crate::path;
use crate::request::{Edits, Headers};
use crate::response::Denial;
use crate::session::seal::CookieKeys;
use crate::session::{Session, SessionCache};
use serde_json::{Map, Value};

/// What a request waits on at the token endpoint.
#[derive(Debug)]
pub enum Pending {
    Login(PendingLogin),
    Refresh(Session),
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
    /// Authenticated but not authorized: `403 RBAC: access denied`.
    Forbidden {
        detail: String,
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
}

impl VmState {
    /// `secret` keys the caches' hashes: random, from the host.
    pub fn new(config: &Config, secret: HashSecret) -> Self {
        Self {
            tokens: TokenCache::new(config.token_cache, secret),
            sessions: SessionCache::new(config.session_cache, secret),
            counters: Counters::default(),
            gauges: GaugeShares::default(),
        }
    }
}

pub struct Inputs<'a> {
    pub config: &'a Config,
    pub headers: &'a Headers,
    pub keys: &'a dyn KeyLookup,
    /// The OIDC issuer's endpoints, once discovered.
    pub provider: Option<&'a Provider>,
    pub cookie_keys: &'a CookieKeys,
    pub now_ms: u64,
}

impl Inputs<'_> {
    fn flow_context(&self, bearer_token_present: bool) -> Option<flow::Context<'_>> {
        Some(flow::Context {
            config: self.config,
            oidc: self.config.oidc.as_ref()?,
            provider: self.provider,
            cookie_keys: self.cookie_keys,
            headers: self.headers,
            now: self.now_ms / 1000,
            bearer_token_present,
        })
    }
}

pub fn decide(inputs: &Inputs, vm: &mut VmState, entropy: &mut dyn Entropy) -> Verdict {
    let Inputs {
        config, headers, ..
    } = inputs;
    if is_public(config, headers) {
        vm.counters.add(Counter::AllowedPublic);
        let mut edits = Edits::default();
        for name in &config.output_headers {
            edits.remove(name);
        }
        return Verdict::Allow {
            edits,
            response_cookies: Vec::new(),
        };
    }
    let found = extractor::find_tokens(config, headers);
    if let Some(context) = inputs.flow_context(!found.is_empty()) {
        match flow::begin(&context, &mut vm.sessions, entropy) {
            Step::Bearer => {}
            step => return from_login_step(inputs, step, &mut vm.counters),
        }
    }
    match authenticator::authenticate_found(
        config,
        headers,
        &found,
        inputs.keys,
        &mut vm.tokens,
        inputs.now_ms / 1000,
    ) {
        Decision::Allow { edits, verified } => {
            let claims = verified.first().map(|v| v.claims.as_ref());
            let allow = Verdict::Allow {
                edits,
                response_cookies: Vec::new(),
            };
            let verdict = authorized(config, claims, headers, allow);
            vm.counters
                .add(allowed_or_forbidden(&verdict, Counter::AllowedToken));
            verdict
        }
        Decision::Deny(denial) => {
            vm.counters.add(Counter::denied(denial.error));
            Verdict::Deny(denial)
        }
        Decision::Wait(waits) => Verdict::Wait(waits),
    }
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
            let allow = Verdict::Allow {
                edits,
                response_cookies,
            };
            let verdict = authorized(inputs.config, Some(&session.claims), inputs.headers, allow);
            counters.add(allowed_or_forbidden(&verdict, Counter::AllowedSession));
            verdict
        }
        Step::Reply(reply) => {
            // The only plain reply before a login is the 401 for API clients.
            if reply.status == 401 {
                counters.add(Counter::DeniedNoSession);
            }
            Verdict::Reply(reply)
        }
        Step::LoginRedirect(reply) => {
            counters.add(Counter::LoginStarted);
            Verdict::Reply(reply)
        }
        Step::CallbackRejected(reply) => {
            counters.add(Counter::LoginFailed);
            Verdict::Reply(reply)
        }
        Step::Logout(reply) => {
            counters.add(Counter::Logout);
            Verdict::Reply(reply)
        }
        Step::Exchange { request, pending } => Verdict::Dispatch {
            request,
            pending: Pending::Login(pending),
        },
        Step::Refresh { request, session } => Verdict::Dispatch {
            request,
            pending: Pending::Refresh(session),
        },
        Step::NeedProvider | Step::Bearer => {
            let source = inputs.config.oidc.as_ref().map_or(0, |oidc| oidc.source);
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
    /// The ID token named a key we do not have: the IdP rotated its keys, so the
    /// issuer's JWKS should be fetched again (rate-limited like any unknown kid).
    pub refetch_issuer_keys: bool,
}

/// The token endpoint's reply for a request that waited on it.
pub fn finish_exchange(
    inputs: &Inputs,
    pending: &Pending,
    reply: (Option<u32>, &[u8]),
    issuer_keys: &KeySet,
    counters: &mut Counters,
    entropy: &mut dyn Entropy,
) -> Finished {
    let (status, body) = reply;
    // A token endpoint reply never carries a bearer token of its own.
    let Some(context) = inputs.flow_context(false) else {
        let verdict = Verdict::Reply(flow::error_page(500, "Login is not configured."));
        return Finished {
            verdict,
            failure: None,
            refetch_issuer_keys: false,
        };
    };
    let (verdict, failure) = match pending {
        Pending::Login(login) => {
            match flow::finish_login(&context, login, status, body, issuer_keys, entropy) {
                Ok(reply) => {
                    counters.add(Counter::LoginCompleted);
                    (Verdict::Reply(reply), None)
                }
                Err((reply, why)) => {
                    counters.add(Counter::LoginFailed);
                    (Verdict::Reply(reply), Some(why))
                }
            }
        }
        Pending::Refresh(session) => {
            let (step, why) = flow::finish_refresh(
                &context,
                session.clone(),
                status,
                body,
                issuer_keys,
                entropy,
            );
            counters.add(if why.is_none() {
                Counter::RefreshSucceeded
            } else {
                Counter::RefreshFailed
            });
            (from_login_step(inputs, step, counters), why)
        }
    };
    let refetch_issuer_keys = failure.as_deref() == Some(id_token::UNKNOWN_KEY);
    Finished {
        verdict,
        failure,
        refetch_issuer_keys,
    }
}

/// Only a path already in normal form may be public: `/static/../admin` is not.
fn is_public(config: &Config, headers: &Headers) -> bool {
    let raw = headers.path();
    let path = path::without_query(raw);
    path::is_clean(raw)
        && config
            .public_paths
            .iter()
            .any(|pattern| pattern.matches(path))
}

fn authorized(
    config: &Config,
    claims: Option<&Map<String, Value>>,
    headers: &Headers,
    allow: Verdict,
) -> Verdict {
    if config.policies.is_empty() {
        return allow;
    }
    let empty = Map::new();
    let identity = Identity {
        claims: claims.unwrap_or(&empty),
        space_delimited: &config.space_delimited_claims,
    };
    match authz::authorize(&config.policies, &identity, headers) {
        Ok(()) => allow,
        Err(detail) => Verdict::Forbidden { detail },
    }
}

/// The 403 Istio users know.
pub fn forbidden_reply() -> LocalReply {
    LocalReply {
        status: 403,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: DENIED_BODY.to_string(),
    }
}

#[cfg(test)]
mod tests;
