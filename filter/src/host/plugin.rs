//! Per-VM plugin state, shared by the root context and the HTTP contexts of one
//! worker: the configuration, each remote source's parsed keys, requests waiting
//! for keys, and dispatch calls in flight.

use super::shared;
use crate::authenticator::{self, Decision, KeyLookup, KeyWait, Keys};
use crate::config::{Config, SourceKind};
use crate::fetch::{HttpRequest, Step};
use crate::jwks::{self, KeySet};
use crate::key_cache::{Policy, SharedState};
use crate::oidc::flow::{self, Entropy, LocalReply};
use crate::oidc::login::PendingLogin;
use crate::oidc::provider::{self, Provider};
use crate::request::{Edits, Headers};
use crate::response::Denial;
use crate::session::seal::CookieKeys;
use crate::session::Session;

/// Most requests one VM holds while keys are fetched; more fail closed at once.
pub const MAX_WAITERS: usize = 1024;

pub struct LocalSource {
    pub id: String,
    pub state: SharedState,
    pub keys: Option<KeySet>,
    /// For discovery sources: the endpoints, read with the keys.
    pub provider: Option<Provider>,
    loaded_version: u64,
    /// A token's unknown `kid` asked for a refetch that has not happened yet.
    pub refetch_wanted: bool,
}

pub struct Waiter {
    pub context_id: u32,
    pub deadline_ms: u64,
}

pub struct Call {
    pub token: u32,
    pub source: usize,
    pub step: Step,
}

/// What a request waits on at the token endpoint.
pub enum Pending {
    Login(PendingLogin),
    Refresh(Session),
}

/// A token endpoint call made for one request.
pub struct Exchange {
    pub token: u32,
    pub context_id: u32,
    pub pending: Pending,
    pub headers: Headers,
}

/// What to do with a request, host-side.
pub enum RequestDecision {
    Allow {
        edits: Edits,
        response_cookies: Vec<String>,
    },
    Reply(LocalReply),
    Deny(Denial),
    Wait(Vec<KeyWait>),
    Dispatch {
        request: HttpRequest,
        pending: Pending,
    },
}

pub struct Plugin {
    pub config: Config,
    pub sources: Vec<LocalSource>,
    pub waiters: Vec<Waiter>,
    pub calls: Vec<Call>,
    pub exchanges: Vec<Exchange>,
    /// `Set-Cookie` values for the responses of allowed requests (renewed sessions).
    pub response_cookies: Vec<(u32, Vec<String>)>,
    pub cookie_keys: CookieKeys,
    /// Identifies this VM as a lease owner in shared data.
    pub vm_token: u64,
}

impl Plugin {
    pub fn new(config: Config, vm_token: u64) -> Self {
        let sources = config
            .sources
            .iter()
            .map(|source| LocalSource {
                id: source.id(),
                state: SharedState::default(),
                keys: None,
                provider: None,
                loaded_version: 0,
                refetch_wanted: false,
            })
            .collect();
        let cookie_keys = CookieKeys::new(
            config
                .oidc
                .as_ref()
                .map_or(&[], |oidc| &oidc.cookie_secrets),
        );
        Self {
            config,
            sources,
            waiters: Vec::new(),
            calls: Vec::new(),
            exchanges: Vec::new(),
            response_cookies: Vec::new(),
            cookie_keys,
            vm_token,
        }
    }

    pub fn policy(&self, source: usize) -> Policy {
        Policy {
            cache_duration_ms: self.config.jwks_cache_duration_ms,
            min_refetch_interval_ms: self.config.jwks_min_refetch_interval_ms,
            timeout_ms: self.config.sources.get(source).map_or(0, |s| s.timeout_ms),
        }
    }

    /// Reads the shared state of `source` and re-parses its keys if another VM
    /// stored a newer set. A set that fails to parse leaves the old one in place.
    pub fn sync(&mut self, source: usize) {
        let max_jwks_bytes = self.config.max_jwks_bytes;
        let Some(local) = self.sources.get_mut(source) else {
            return;
        };
        let (state, _) = shared::read_state(&local.id);
        let mut loaded = false;
        if state.version != local.loaded_version && state.has_keys() {
            let parsed =
                shared::read_jwks(&local.id).map(|text| jwks::parse_jwks(&text, max_jwks_bytes));
            if let Some(Ok(keys)) = parsed {
                local.keys = Some(keys);
                local.loaded_version = state.version;
                loaded = true;
            }
        }
        local.state = state;
        if loaded {
            self.load_provider(source);
        }
    }

    /// A discovery source's endpoints, stored beside its keys.
    fn load_provider(&mut self, source: usize) {
        let Some(SourceKind::Discovery { issuer, .. }) =
            self.config.sources.get(source).map(|s| &s.kind)
        else {
            return;
        };
        let Some(local) = self.sources.get_mut(source) else {
            return;
        };
        if let Some(Ok(parsed)) =
            shared::read_discovery(&local.id).map(|body| provider::parse(&body, issuer))
        {
            local.provider = Some(parsed);
        }
    }

    /// Before deciding a request: sources this VM has no keys for yet may have been
    /// fetched by another VM since the last tick.
    pub fn sync_sources_without_keys(&mut self) {
        for source in 0..self.sources.len() {
            if self
                .sources
                .get(source)
                .is_some_and(|local| local.keys.is_none())
            {
                self.sync(source);
            }
        }
    }

    pub fn store_keys(&mut self, source: usize, keys: KeySet, state: SharedState) {
        if let Some(local) = self.sources.get_mut(source) {
            local.loaded_version = state.version;
            local.keys = Some(keys);
            local.state = state;
            local.refetch_wanted = false;
        }
        self.load_provider(source);
    }

    pub fn store_failure(&mut self, source: usize, state: Option<SharedState>) {
        if let Some(local) = self.sources.get_mut(source) {
            if let Some(state) = state {
                local.state = state;
            }
            local.refetch_wanted = false;
        }
    }

    /// `final_attempt`: the request has waited long enough; sources still pending
    /// count as failed and no refetch is asked for.
    pub fn decide(&self, headers: &Headers, now_ms: u64, final_attempt: bool) -> Decision {
        let lookup = Lookup {
            plugin: self,
            now_ms,
            final_attempt,
        };
        authenticator::authenticate(&self.config, headers, &lookup, now_ms / 1000)
    }

    /// The browser-login flow first (when configured), then the bearer-token rules.
    pub fn decide_request(
        &self,
        headers: &Headers,
        now_ms: u64,
        final_attempt: bool,
        entropy: &mut dyn Entropy,
    ) -> RequestDecision {
        if let Some(decision) = self.decide_login(headers, now_ms, final_attempt, entropy) {
            return decision;
        }
        match self.decide(headers, now_ms, final_attempt) {
            Decision::Allow { edits, .. } => RequestDecision::Allow {
                edits,
                response_cookies: Vec::new(),
            },
            Decision::Deny(denial) => RequestDecision::Deny(denial),
            Decision::Wait(waits) => RequestDecision::Wait(waits),
        }
    }

    fn decide_login(
        &self,
        headers: &Headers,
        now_ms: u64,
        final_attempt: bool,
        entropy: &mut dyn Entropy,
    ) -> Option<RequestDecision> {
        let oidc = self.config.oidc.as_ref()?;
        let local = self.sources.get(oidc.source)?;
        let context = flow::Context {
            config: &self.config,
            oidc,
            provider: local.provider.as_ref(),
            cookie_keys: &self.cookie_keys,
            headers,
            now: now_ms / 1000,
        };
        Some(match flow::begin(&context, entropy) {
            flow::Step::Bearer => return None,
            flow::Step::Allow {
                edits,
                response_cookies,
                ..
            } => RequestDecision::Allow {
                edits,
                response_cookies,
            },
            flow::Step::Reply(reply) => RequestDecision::Reply(reply),
            flow::Step::Exchange { request, pending } => RequestDecision::Dispatch {
                request,
                pending: Pending::Login(pending),
            },
            flow::Step::Refresh { request, session } => RequestDecision::Dispatch {
                request,
                pending: Pending::Refresh(session),
            },
            flow::Step::NeedProvider => {
                let policy = self.policy(oidc.source);
                let unavailable = matches!(
                    local.state.availability(None, now_ms, &policy),
                    Keys::Failed
                );
                if final_attempt || unavailable {
                    RequestDecision::Reply(flow::error_page(
                        502,
                        "The identity provider could not be reached. Please try again.",
                    ))
                } else {
                    RequestDecision::Wait(vec![KeyWait {
                        source: oidc.source,
                        refetch: false,
                    }])
                }
            }
        })
    }

    pub fn note_waits(&mut self, waits: &[KeyWait]) {
        for wait in waits.iter().filter(|wait| wait.refetch) {
            if let Some(local) = self.sources.get_mut(wait.source) {
                local.refetch_wanted = true;
            }
        }
    }

    /// Registers a paused request; false when too many already wait.
    pub fn add_waiter(&mut self, context_id: u32, waits: &[KeyWait], now_ms: u64) -> bool {
        if self.waiters.len() >= MAX_WAITERS {
            return false;
        }
        let timeout = waits
            .iter()
            .filter_map(|wait| self.config.sources.get(wait.source))
            .map(|source| source.timeout_ms)
            .max()
            .unwrap_or(0);
        self.note_waits(waits);
        self.waiters.push(Waiter {
            context_id,
            deadline_ms: now_ms.saturating_add(timeout),
        });
        true
    }

    pub fn is_waiting(&self, context_id: u32) -> bool {
        self.waiters
            .iter()
            .any(|waiter| waiter.context_id == context_id)
    }

    pub fn forget(&mut self, context_id: u32) {
        self.waiters
            .retain(|waiter| waiter.context_id != context_id);
    }
}

struct Lookup<'a> {
    plugin: &'a Plugin,
    now_ms: u64,
    final_attempt: bool,
}

impl KeyLookup for Lookup<'_> {
    fn remote_keys(&self, source: usize) -> Keys<'_> {
        let Some(local) = self.plugin.sources.get(source) else {
            return Keys::Failed;
        };
        let policy = self.plugin.policy(source);
        match local
            .state
            .availability(local.keys.as_ref(), self.now_ms, &policy)
        {
            Keys::Pending if self.final_attempt => Keys::Failed,
            Keys::Ready { set, .. } if self.final_attempt => Keys::Ready {
                set,
                may_refetch: false,
            },
            keys => keys,
        }
    }
}
