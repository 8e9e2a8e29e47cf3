//! Per-VM plugin state, shared by the root context and the HTTP contexts of one
//! worker: the configuration, each remote source's parsed keys, requests waiting
//! for keys, and dispatch calls in flight.

use super::{metrics, shared};
use crate::apps::App;
use crate::authenticator::{KeyLookup, KeyWait, Keys};
use crate::cache::HashSecret;
use crate::config::{Config, RuleKeys, SourceKind};
use crate::fetch::Step;
use crate::jwks::{self, KeySet};
use crate::key_cache::{Policy, SharedState};
use crate::metrics::{Counter, Gauge};
use crate::oidc::flow::HostCrypto;
use crate::oidc::provider::{self, Provider};
use crate::peer::Peer;
use crate::pipeline::{self, Finished, Inputs, Verdict, VmState};
use crate::request::Headers;
use crate::streams::{Exchange, Waiter};

pub struct LocalSource {
    pub id: String,
    pub state: SharedState,
    pub keys: Option<KeySet>,
    /// For discovery sources: the endpoints, read with the keys.
    pub provider: Option<Provider>,
    loaded_version: u64,
    /// A token's unknown `kid` asked for a refetch that has not happened yet.
    pub refetch_wanted: bool,
    /// For discovery sources: the document's `introspection_endpoint`.
    pub introspection_endpoint: Option<crate::http_url::HttpUrl>,
}

pub struct Call {
    pub token: u32,
    pub source: usize,
    pub step: Step,
}

pub struct Plugin {
    pub config: Config,
    pub sources: Vec<LocalSource>,
    pub calls: Vec<Call>,
    /// Identifies this VM as a lease owner in shared data.
    pub vm_token: u64,
    /// The per-app counters, defined on the first report.
    app_metric_ids: Option<Vec<metrics::AppIds>>,
    /// `OIDC_FILTER_TEST_ONLY_PROFILE`: phase timings are reported as counters.
    pub profiling: bool,
    #[cfg(feature = "profile")]
    profile_ids: Vec<[Option<u32>; 2]>,
    pub vm: VmState,
}

impl Plugin {
    /// `cache_secret` must be fresh randomness (see `cache::key_of`).
    pub fn new(config: Config, vm_token: u64, cache_secret: HashSecret) -> Self {
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
                introspection_endpoint: None,
            })
            .collect();
        for rule in &config.rules {
            if let RuleKeys::Inline(keys) = &rule.keys {
                keys.prepare();
            }
        }
        Self {
            vm: VmState::new(&config, cache_secret),
            config,
            sources,
            calls: Vec::new(),
            app_metric_ids: None,
            profiling: false,
            #[cfg(feature = "profile")]
            profile_ids: Vec::new(),
            vm_token,
        }
    }

    pub fn policy(&self, source: usize) -> Policy {
        policy(&self.config, source)
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
                keys.prepare();
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
        let document = shared::read_discovery(&local.id);
        if let Some(body) = &document {
            local.introspection_endpoint = crate::introspection::discovered_endpoint(body, issuer);
        }
        if let Some(Ok(parsed)) = document.map(|body| provider::parse(&body, issuer)) {
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
        keys.prepare();
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

    /// The whole decision for a request (see `pipeline`). `final_attempt`: the
    /// request has waited long enough; sources still pending count as failed.
    pub fn decide_request(
        &mut self,
        headers: &Headers,
        peer: &Peer,
        now_ms: u64,
        final_attempt: bool,
        entropy: &mut dyn HostCrypto,
    ) -> Verdict {
        let lookup = Lookup {
            config: &self.config,
            sources: &self.sources,
            now_ms,
            final_attempt,
        };
        let Some(app) = self.config.app_for(headers) else {
            return pipeline::refuse_authority(&mut self.vm);
        };
        let provider = issuer_source(&self.sources, app).and_then(|local| local.provider.as_ref());
        let inputs = Inputs {
            config: &self.config,
            app,
            headers,
            keys: &lookup,
            provider,
            peer,
            now_ms,
            final_attempt,
        };
        pipeline::decide(&inputs, &mut self.vm, entropy)
    }

    /// Keeps a token endpoint call until its reply (see [`VmState::keep_exchange`]);
    /// false when too many are in flight.
    pub fn keep_exchange(&mut self, exchange: Exchange) -> bool {
        self.vm.keep_exchange(&self.config, exchange)
    }

    /// Finishes a request that waited on the token endpoint.
    pub fn finish_exchange(
        &mut self,
        exchange: &Exchange,
        status: Option<u32>,
        body: &[u8],
        now_ms: u64,
        entropy: &mut dyn HostCrypto,
    ) -> Finished {
        let lookup = Lookup {
            config: &self.config,
            sources: &self.sources,
            now_ms,
            final_attempt: true,
        };
        let Some(app) = self.config.app_for(&exchange.headers) else {
            // Checked before the call was made; kept closed all the same.
            self.vm.abandon(&exchange.pending);
            return Finished {
                verdict: pipeline::refuse_authority(&mut self.vm),
                failure: None,
                refetch_issuer_keys: None,
            };
        };
        let local = issuer_source(&self.sources, app);
        let no_keys = KeySet::default();
        let issuer_keys = local
            .and_then(|local| local.keys.as_ref())
            .unwrap_or(&no_keys);
        let inputs = Inputs {
            config: &self.config,
            app,
            headers: &exchange.headers,
            keys: &lookup,
            provider: local.and_then(|local| local.provider.as_ref()),
            peer: &exchange.peer,
            now_ms,
            final_attempt: true,
        };
        pipeline::finish_exchange(
            &inputs,
            &exchange.pending,
            (status, body),
            issuer_keys,
            &mut self.vm,
            entropy,
        )
    }

    /// Copies this VM's counts and cache sizes into Envoy stats.
    pub fn report_metrics(&mut self) {
        let vm = &mut self.vm;
        vm.counters
            .set_total(Counter::TokenCacheHit, vm.tokens.hits);
        vm.counters
            .set_total(Counter::TokenCacheMiss, vm.tokens.misses);
        vm.counters
            .set_total(Counter::SessionCacheHit, vm.sessions.hits);
        vm.counters
            .set_total(Counter::SessionCacheMiss, vm.sessions.misses);
        let size = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let gauges = [
            (Gauge::TokenCacheEntries, size(vm.tokens.len())),
            (Gauge::TokenCacheBytes, size(vm.tokens.bytes())),
            (Gauge::SessionCacheEntries, size(vm.sessions.len())),
            (Gauge::SessionCacheBytes, size(vm.sessions.bytes())),
            (
                Gauge::SignatureVerificationHost,
                u64::from(self.config.signature_backend.uses_host()),
            ),
            (
                Gauge::IntrospectionCacheEntries,
                size(vm.introspection.cache_len()),
            ),
            (
                Gauge::IntrospectionCacheBytes,
                size(vm.introspection.cache_bytes()),
            ),
            (
                Gauge::IntrospectionInFlight,
                size(vm.introspection.in_flight()),
            ),
        ];
        vm.counters.add_many(
            Counter::SignatureHostFailures,
            super::crypto::take_failures(),
        );
        metrics::report(&mut vm.counters, &mut vm.gauges, &gauges);
        let apps = &self.config.apps;
        let ids = self.app_metric_ids.get_or_insert_with(|| {
            metrics::define_app_counters(apps.iter().map(|app| app.name.as_str()))
        });
        metrics::report_apps(&mut vm.counters, ids);
        #[cfg(feature = "profile")]
        if self.profiling {
            metrics::report_profile(&mut self.profile_ids);
        }
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
        // A wait for another request's introspection lasts as long as its call may.
        let introspection = self.config.introspection.iter().map(|rule| rule.timeout_ms);
        let timeout = waits
            .iter()
            .flat_map(|wait| match wait.source {
                crate::introspection::WAIT => introspection.clone().max(),
                source => self.config.sources.get(source).map(|s| s.timeout_ms),
            })
            .max()
            .unwrap_or(0);
        self.note_waits(waits);
        self.vm.streams.add_waiter(Waiter {
            context_id,
            deadline_ms: now_ms.saturating_add(timeout),
        })
    }

    pub fn is_waiting(&self, context_id: u32) -> bool {
        self.vm.streams.is_waiting(context_id)
    }
}

/// The discovery source of the app's OIDC issuer.
fn issuer_source<'a>(sources: &'a [LocalSource], app: &App) -> Option<&'a LocalSource> {
    app.oidc.as_ref().and_then(|oidc| sources.get(oidc.source))
}

fn policy(config: &Config, source: usize) -> Policy {
    Policy {
        cache_duration_ms: config.jwks_cache_duration_ms,
        min_refetch_interval_ms: config.jwks_min_refetch_interval_ms,
        timeout_ms: config.sources.get(source).map_or(0, |s| s.timeout_ms),
    }
}

struct Lookup<'a> {
    config: &'a Config,
    sources: &'a [LocalSource],
    now_ms: u64,
    final_attempt: bool,
}

impl KeyLookup for Lookup<'_> {
    fn introspection_endpoint(&self, source: usize) -> Option<&crate::http_url::HttpUrl> {
        self.sources.get(source)?.introspection_endpoint.as_ref()
    }

    fn remote_keys(&self, source: usize) -> Keys<'_> {
        let Some(local) = self.sources.get(source) else {
            return Keys::Failed;
        };
        let policy = policy(self.config, source);
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
