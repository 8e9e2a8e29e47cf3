//! The root context: loads the configuration, runs the timer, and makes every JWKS
//! and discovery dispatch call, so that replies arrive here and not on a request
//! that may be gone by then.

use super::exchange;
use super::http::{self, Http, Outcome, WAITING_TICK};
use super::plugin::{Call, Plugin};
use super::{crypto, log, now_ms, raw, shared};
use crate::cache::HashSecret;
use crate::config::Config;
use crate::fetch::{self, Next, Step};
use crate::host_calls::HostFailure;
use crate::metrics::Counter;
use crate::profile::{self, Phase};
use crate::signature_probe;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

/// How often an idle VM looks for refreshes and other VMs' fetches.
const IDLE_TICK: Duration = Duration::from_millis(1000);

pub struct Root {
    context_id: u32,
    plugin: Option<Rc<RefCell<Plugin>>>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            plugin: None,
        }
    }

    /// Sync, resume or fail waiting requests, start due fetches, pick the tick.
    /// Without a clock, waiting requests are answered 500 and nothing is fetched.
    fn maintain(&mut self, clock: Result<u64, HostFailure>) {
        let Some(plugin) = self.plugin.clone() else {
            return;
        };
        if let Ok(mut state) = plugin.try_borrow_mut() {
            for source in 0..state.sources.len() {
                state.sync(source);
            }
        }
        self.resume_waiters(&plugin, &clock);
        if let Ok(now) = clock {
            self.start_due_fetches(&plugin, now);
        }
        if let Ok(mut state) = plugin.try_borrow_mut() {
            state.report_metrics();
        }
        let waiting = plugin
            .try_borrow()
            .map(|state| state.vm.streams.has_waiters())
            .unwrap_or(true);
        let _ = raw::set_tick_period(if waiting { WAITING_TICK } else { IDLE_TICK });
    }

    fn resume_waiters(&self, plugin: &Rc<RefCell<Plugin>>, clock: &Result<u64, HostFailure>) {
        let waiters = match plugin.try_borrow_mut() {
            Ok(mut state) => state.vm.streams.take_waiters(),
            Err(_) => return,
        };
        let mut still_waiting = Vec::new();
        for waiter in waiters {
            if raw::set_effective_context(waiter.context_id).is_err() {
                continue;
            }
            let now = match clock {
                Ok(now) => *now,
                Err(failure) => {
                    http::fail_request(failure);
                    continue;
                }
            };
            match http::handle(plugin, waiter.context_id, now, now >= waiter.deadline_ms) {
                Outcome::Continue => exchange::resume(),
                Outcome::Responded | Outcome::Dispatched => {}
                Outcome::Wait(waits) => {
                    if let Ok(mut state) = plugin.try_borrow_mut() {
                        state.note_waits(&waits);
                    }
                    still_waiting.push(waiter);
                }
            }
        }
        let _ = raw::set_effective_context(self.context_id);
        if let Ok(mut state) = plugin.try_borrow_mut() {
            for waiter in still_waiting {
                state.vm.streams.keep_waiting(waiter);
            }
        }
    }

    /// Starts a fetch for every source that needs one and whose lease this VM wins.
    fn start_due_fetches(&self, plugin: &Rc<RefCell<Plugin>>, now: u64) {
        let Ok(mut state) = plugin.try_borrow_mut() else {
            return;
        };
        for source in 0..state.sources.len() {
            if state.calls.iter().any(|call| call.source == source) {
                continue;
            }
            let policy = state.policy(source);
            let vm_token = state.vm_token;
            let Some(local) = state.sources.get(source) else {
                continue;
            };
            let (shared_state, cas) = shared::read_state(&local.id);
            if cas.is_none() {
                // Writing a missing key does not compare-and-swap, so two VMs could
                // both "win"; create it first and lease on a later tick.
                shared::write_state(&local.id, &shared_state, None);
                continue;
            }
            if !shared_state.fetch_due(now, &policy, local.refetch_wanted) {
                continue;
            }
            let leased = shared_state.leased_to(vm_token, now, &policy);
            if !shared::write_state(&local.id, &leased, cas) {
                continue; // another VM took the lease first
            }
            let first = match state.config.sources.get(source) {
                Some(remote) => fetch::start(&state.config, remote),
                None => continue,
            };
            self.follow(&mut state, source, first, now);
        }
    }

    /// Performs the next step of a fetch: dispatch, store the keys, or record why not.
    fn follow(&self, state: &mut Plugin, source: usize, next: Next, now: u64) {
        let Some(id) = state.sources.get(source).map(|local| local.id.clone()) else {
            return;
        };
        match next {
            Next::Fetch(step, request) => {
                let headers: Vec<(&str, &str)> = request
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let timeout = Duration::from_millis(request.timeout_ms);
                match self.dispatch_http_call(
                    &request.cluster,
                    headers,
                    request.body.as_deref(),
                    vec![],
                    timeout,
                ) {
                    Ok(token) => state.calls.push(Call {
                        token,
                        source,
                        step,
                    }),
                    Err(status) => {
                        let why = format!(
                            "cannot dispatch to cluster `{}` ({status:?})",
                            request.cluster
                        );
                        count_fetch(state, step, false);
                        self.follow(state, source, Next::Failed(why), now);
                    }
                }
            }
            Next::Done { keys, jwks_text } => {
                shared::write_jwks(&id, &jwks_text);
                let stored = shared::update_state(&id, |current| current.succeeded(now));
                log(
                    LogLevel::Info,
                    &format!("fetched {} keys for {id}", keys.keys().len()),
                );
                for skipped in &keys.skipped {
                    log(LogLevel::Debug, &format!("{id}: skipped {skipped}"));
                }
                match stored {
                    Some(shared_state) => state.store_keys(source, keys, shared_state),
                    None => state.store_failure(source, None),
                }
            }
            Next::Failed(why) => {
                log(LogLevel::Warn, &format!("key fetch for {id} failed: {why}"));
                let stored = shared::update_state(&id, |current| current.failed(now, &why));
                state.store_failure(source, stored);
            }
        }
    }

    /// The next step after a discovery/JWKS reply, and the body when one was read.
    fn read_call_reply(
        &self,
        state: &Plugin,
        call: &Call,
        body_size: usize,
    ) -> (Next, Option<Vec<u8>>) {
        let status = http::call_status();
        let limit = fetch::max_body_bytes(&state.config, call.step);
        if body_size > limit {
            let why = format!(
                "{:?} reply of {body_size} bytes is over the {limit}-byte limit",
                call.step
            );
            return (Next::Failed(why), None);
        }
        let body = http::call_body(body_size);
        let Some(remote) = state.config.sources.get(call.source) else {
            return (Next::Failed("unknown source".into()), None);
        };
        let next = fetch::on_reply(&state.config, remote, call.step, status, body.as_deref());
        (next, body)
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(plugin) = self.plugin.clone() else {
            return;
        };
        let clock = now_ms();
        // Without a clock the fetch is still recorded (as made at time 0, so due
        // again soon); no request is judged without one.
        let now = clock.as_ref().map_or(0, |now| *now);
        if let Ok(mut state) = plugin.try_borrow_mut() {
            if let Some(position) = state.calls.iter().position(|call| call.token == token) {
                let call = state.calls.remove(position);
                let (next, body) = self.read_call_reply(&state, &call, body_size);
                count_fetch(&mut state, call.step, !matches!(next, Next::Failed(_)));
                if let (Step::Discovery, Next::Fetch(..), Some(body)) = (call.step, &next, &body) {
                    if let Some(local) = state.sources.get(call.source) {
                        shared::write_discovery(&local.id, body);
                    }
                }
                self.follow(&mut state, call.source, next, now);
            }
        }
        // A token endpoint call made for a request this root context resumed.
        let resumed = exchange::finish(&plugin, token, body_size, clock.clone());
        if resumed {
            let _ = raw::set_effective_context(self.context_id);
        }
        self.resume_waiters(&plugin, &clock);
    }
}

/// Every `private_key_jwt` login's key, tried once with the host's `sign` at load:
/// an Envoy without it (before 1.37), or a key it cannot use, refuses the
/// configuration now rather than every sign-in later.
fn can_sign_client_assertions(config: &Config) -> Result<(), String> {
    let apps = std::iter::once(&config.top_level).chain(&config.apps);
    for (app, oidc) in apps.filter_map(|app| Some((app, app.oidc.as_ref()?))) {
        let Some(key) = &oidc.client_key else {
            continue;
        };
        if let Err(why) = super::sign::sign(&key.pem, "sha256", b"oidc-filter: can this host sign?")
        {
            let place = match app.index {
                Some(index) => format!("apps[{index}].oidc"),
                None => "oidc".to_string(),
            };
            return Err(format!(
                "{place}.tokenEndpointAuthMethod: private_key_jwt needs the host to sign with \
                 the client's key, and it cannot: {why}"
            ));
        }
    }
    Ok(())
}

impl RootContext for Root {
    fn on_configure(&mut self, _configuration_size: usize) -> bool {
        let text = raw::plugin_configuration()
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut cache_secret = HashSecret::default();
        if getrandom::fill(&mut cache_secret).is_err() {
            log(
                LogLevel::Error,
                "no randomness from the host (WASI random_get)",
            );
            return false;
        }
        // Secrets named by `...FromEnv` come from the VM's environment (WASI), which
        // Envoy fills from `vm_config.environment_variables`.
        match Config::parse_with_env(&text, &|name| std::env::var(name).ok()) {
            Ok(mut config) => {
                if let Err(why) = can_sign_client_assertions(&config) {
                    log(
                        LogLevel::Error,
                        &format!("invalid plugin configuration: {why}"),
                    );
                    return false;
                }
                match signature_probe::select(
                    config.signature_verification,
                    crypto::probe_call,
                    crypto::verify_signature,
                ) {
                    Ok((backend, line)) => {
                        config.signature_backend = backend;
                        log(LogLevel::Info, &line);
                    }
                    Err(error) => {
                        log(
                            LogLevel::Error,
                            &format!("invalid plugin configuration: {error}"),
                        );
                        return false;
                    }
                }
                for warning in &config.warnings {
                    log(LogLevel::Warn, &format!("plugin configuration: {warning}"));
                }
                if let Some(name) = &config.test_only_crash_header {
                    log(
                        LogLevel::Warn,
                        &format!("testOnlyCrashHeader `{name}` is set: any request with it kills this VM"),
                    );
                }
                let mut plugin = Plugin::new(config, vm_token(self.context_id), cache_secret);
                plugin.profiling = super::profile_if_asked();
                if plugin.profiling {
                    log(
                        LogLevel::Warn,
                        "OIDC_FILTER_TEST_ONLY_PROFILE=1: timing every request (tests only)",
                    );
                }
                for local in &plugin.sources {
                    if shared::read_state(&local.id).1.is_none() {
                        shared::write_state(&local.id, &Default::default(), None);
                    }
                }
                self.plugin = Some(Rc::new(RefCell::new(plugin)));
                // The first tick fetches keys; make it come soon.
                let _ = raw::set_tick_period(WAITING_TICK);
                true
            }
            Err(error) => {
                log(
                    LogLevel::Error,
                    &format!("invalid plugin configuration: {error}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.maintain(now_ms());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let _span = profile::span(Phase::ContextCreate);
        Some(Box::new(Http::new(context_id, self.plugin.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn count_fetch(state: &mut Plugin, step: Step, succeeded: bool) {
    let counter = match (step, succeeded) {
        (Step::Discovery, true) => Counter::DiscoveryFetchSucceeded,
        (Step::Discovery, false) => Counter::DiscoveryFetchFailed,
        (Step::Jwks, true) => Counter::JwksFetchSucceeded,
        (Step::Jwks, false) => Counter::JwksFetchFailed,
    };
    state.vm.counters.add(counter);
}

/// A random identity for this VM's leases (WASI randomness via `RandomState`).
fn vm_token(context_id: u32) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(context_id);
    hasher.write_u64(now_ms().unwrap_or_default());
    hasher.finish().max(1)
}
