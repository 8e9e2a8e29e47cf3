//! One HTTP request: decide it (browser login, session, or bearer token) and apply
//! the decision. `handle` is also called by the root context for requests that
//! waited for keys or provider metadata.

use super::plugin::Plugin;
use super::{exchange, log, now_ms, raw};
use crate::authenticator::KeyWait;
use crate::host_calls::{self, HostFailure, Refused, RequestHost};
use crate::oidc::flow::{self, HostCrypto, LocalReply};
use crate::peer::{self, Peer, PeerNeeds};
use crate::pipeline::{forbidden_reply, Pending, Verdict};
use crate::profile::{self, Phase};
use crate::request::{Edits, Headers};
use crate::response::{self, AuthError, Denial};
use crate::streams::Exchange;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How often the root context looks again while requests wait for keys.
pub const WAITING_TICK: Duration = Duration::from_millis(20);

pub enum Outcome {
    Continue,
    Responded,
    /// Paused on a token endpoint call; its reply finishes the request.
    Dispatched,
    Wait(Vec<KeyWait>),
}

/// Envoy, as the core sees it (`host_calls`): the current request's clock and
/// header edits (the effective context's).
pub struct Envoy;

impl RequestHost for Envoy {
    fn now_ms(&mut self) -> Result<u64, Refused> {
        raw::now_nanos()
            .map(|nanos| nanos / 1_000_000)
            .map_err(|raw::Refused(status)| Refused(status))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), Refused> {
        raw::remove_request_header(name).map_err(|raw::Refused(status)| Refused(status))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
        raw::set_request_header(name, value).map_err(|raw::Refused(status)| Refused(status))
    }
}

/// Ends the current request with the filter's 500: a host call it depends on
/// failed (see `host_calls`).
pub fn fail_request(failure: &HostFailure) {
    log(LogLevel::Error, &failure.why);
    send_reply(&failure.reply);
}

/// WASI `random_get`, which Envoy provides.
pub struct EnvoyCrypto;

impl HostCrypto for EnvoyCrypto {
    fn fill(&mut self, bytes: &mut [u8]) -> bool {
        getrandom::fill(bytes).is_ok()
    }

    fn sign(&mut self, private_key: &str, hash: &str, message: &[u8]) -> Result<Vec<u8>, String> {
        let signed = super::sign::sign(private_key, hash, message);
        if let Err(why) = &signed {
            log(LogLevel::Warn, &format!("private_key_jwt: {why}"));
        }
        signed
    }
}

pub struct Http {
    context_id: u32,
    plugin: Option<Rc<RefCell<Plugin>>>,
}

impl Http {
    pub fn new(context_id: u32, plugin: Option<Rc<RefCell<Plugin>>>) -> Self {
        Self { context_id, plugin }
    }

    fn hold_while_waiting(&self) -> Action {
        let waiting = match &self.plugin {
            Some(plugin) => plugin
                .try_borrow()
                .map_or(true, |state| state.is_waiting(self.context_id)),
            None => true,
        };
        if waiting {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(plugin) = &self.plugin {
            exchange::finish(plugin, token, body_size, now_ms());
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        profile::time_the_clock();
        let _span = profile::span(Phase::Callback);
        let Some(plugin) = &self.plugin else {
            let headers = read_request_headers().unwrap_or_default();
            let denial = response::deny(
                AuthError::JwksFetchFailed,
                "filter is not configured",
                &headers,
            );
            send_denial(&denial, &headers);
            return Action::Pause;
        };
        crash_if_asked(plugin);
        let now = match now_ms() {
            Ok(now) => now,
            Err(failure) => {
                fail_request(&failure);
                return Action::Pause;
            }
        };
        match handle(plugin, self.context_id, now, false) {
            Outcome::Continue => Action::Continue,
            Outcome::Responded | Outcome::Dispatched => Action::Pause,
            Outcome::Wait(waits) => {
                let registered = plugin
                    .try_borrow_mut()
                    .map(|mut plugin| plugin.add_waiter(self.context_id, &waits, now))
                    .unwrap_or(false);
                if !registered {
                    // Nowhere to wait: decide now as if the wait had timed out.
                    return match handle(plugin, self.context_id, now, true) {
                        Outcome::Continue => Action::Continue,
                        _ => Action::Pause,
                    };
                }
                let _ = raw::set_tick_period(WAITING_TICK);
                Action::Pause
            }
        }
    }

    // A body or trailers arriving while the headers wait must not let the request
    // through. Envoy 1.40 stops all iteration for paused headers, so it does not call
    // these then; a host that did would resume the headers on `Continue`.
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.hold_while_waiting()
    }

    /// A renewed session's cookies ride on the upstream's response.
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let _span = profile::span(Phase::ResponseCallback);
        let cookies = self.plugin.as_ref().and_then(|plugin| {
            let mut state = plugin.try_borrow_mut().ok()?;
            Some(state.vm.streams.take_response_cookies(self.context_id))
        });
        for cookie in cookies.unwrap_or_default() {
            let _ = raw::add_response_header("set-cookie", &cookie);
        }
        Action::Continue
    }
}

/// Envoy deletes a context when its stream is over, whether it completed, was reset
/// or timed out: what was kept for the request is released here. (Not in `on_log`:
/// the module does not export `proxy_on_log`, one VM entry fewer per request.)
impl Drop for Http {
    fn drop(&mut self) {
        let _span = profile::span(Phase::ContextDelete);
        self.forget();
    }
}

impl Http {
    fn forget(&self) {
        if let Some(Ok(mut plugin)) = self.plugin.as_ref().map(|plugin| plugin.try_borrow_mut()) {
            plugin.vm.forget(self.context_id);
        }
    }
}

/// `testOnlyCrashHeader`: trap (not panic: no unwinding, no message) so that the
/// VM fails the way a real bug would make it fail.
fn crash_if_asked(plugin: &RefCell<Plugin>) {
    let Ok(state) = plugin.try_borrow() else {
        return;
    };
    // A host read does not call back into this VM, so the borrow may span it.
    if let Some(name) = state.config.test_only_crash_header.as_deref() {
        if let Ok(Some(_)) = raw::request_header(name) {
            log(
                LogLevel::Critical,
                "testOnlyCrashHeader present: trapping this VM",
            );
            core::arch::wasm32::unreachable();
        }
    }
}

/// Decides the current request (the effective context) and applies the decision.
/// No borrow of the plugin is held while Envoy is called, since Envoy may call
/// back into this VM (for example to delete a context after a local reply).
pub fn handle(plugin: &RefCell<Plugin>, context_id: u32, now: u64, final_attempt: bool) -> Outcome {
    let Some(headers) = read_request_headers() else {
        log(
            LogLevel::Error,
            "cannot read the request headers from Envoy",
        );
        send_reply(&flow::error_page(500, "Please try again."));
        return Outcome::Responded;
    };
    let (decision, peer) = match plugin.try_borrow_mut() {
        Ok(mut state) => {
            let peer = read_peer(state.config.peer_needs, &state.config.metadata_keys);
            state.sync_sources_without_keys();
            let verdict =
                state.decide_request(&headers, &peer, now, final_attempt, &mut EnvoyCrypto);
            for note in state.vm.counters.take_notes() {
                log(LogLevel::Info, &response::note_log_line(&note));
            }
            (verdict, peer)
        }
        Err(_) => (
            Verdict::Deny(response::deny(
                AuthError::JwksFetchFailed,
                "plugin state busy",
                &headers,
            )),
            Peer::default(),
        ),
    };
    apply(plugin, context_id, headers, peer, decision)
}

/// What the policies read of the downstream peer, from Envoy's attributes (see
/// `peer::addresses` for what `source.address` holds). Nothing when no policy
/// reads it.
fn read_peer(needs: PeerNeeds, metadata_keys: &[(String, String)]) -> Peer {
    let mut peer = Peer::default();
    if needs.principal {
        // Which attributes, in which order: `Peer::with_identity`.
        peer = peer.with_identity(&mut |attribute| {
            raw::property(attribute.path()).map_err(|raw::Refused(_)| peer::Refused)
        });
    }
    if needs.direct_ip || needs.remote_ip {
        if let Some(address) = read_property(&["source", "address"]) {
            (peer.direct_ip, peer.remote_ip) = peer::addresses(&address);
        }
    }
    if needs.destination {
        peer.destination = read_property(&["destination", "address"])
            .and_then(|address| peer::destination(&address));
    }
    if needs.sni {
        peer.sni = read_property(&["connection", "requested_server_name"]);
    }
    if needs.metadata {
        let attribute = raw::property(&["metadata"]).map_err(|raw::Refused(_)| peer::Refused);
        peer = peer.with_metadata(metadata_keys, attribute);
    }
    peer
}

fn read_property(path: &[&str]) -> Option<String> {
    let bytes = raw::property(path).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

pub fn apply(
    plugin: &RefCell<Plugin>,
    context_id: u32,
    headers: Headers,
    peer: Peer,
    decision: Verdict,
) -> Outcome {
    match decision {
        Verdict::Allow {
            edits,
            response_cookies,
        } => {
            if let Err(failure) = apply_edits(&edits) {
                fail_request(&failure);
                return Outcome::Responded;
            }
            if !response_cookies.is_empty() {
                if let Ok(mut state) = plugin.try_borrow_mut() {
                    state
                        .vm
                        .streams
                        .set_response_cookies(context_id, response_cookies);
                }
            }
            Outcome::Continue
        }
        Verdict::Reply(reply) => {
            if reply.status >= 400 {
                let line = response::denial_log_line(reply.status, "-", "login flow", &headers);
                log(LogLevel::Debug, &line);
            }
            send_reply(&reply);
            Outcome::Responded
        }
        Verdict::Deny(denial) => {
            send_denial(&denial, &headers);
            Outcome::Responded
        }
        Verdict::Forbidden { detail, page } => {
            let reply = page.unwrap_or_else(forbidden_reply);
            let line = response::denial_log_line(reply.status, &reply.body, &detail, &headers);
            log(LogLevel::Debug, &line);
            send_reply(&reply);
            Outcome::Responded
        }
        Verdict::Wait(waits) => Outcome::Wait(waits),
        Verdict::Dispatch { request, pending } => {
            let introspection = matches!(pending, Pending::Introspection { .. });
            let call_headers: Vec<(&str, &str)> = request
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let timeout = Duration::from_millis(request.timeout_ms);
            match hostcalls::dispatch_http_call(
                &request.cluster,
                call_headers,
                request.body.as_deref(),
                vec![],
                timeout,
            ) {
                Ok(token) => {
                    let refused = introspection.then(|| {
                        let why = "too many calls in flight";
                        let denial =
                            response::deny(AuthError::IntrospectionUnavailable, why, &headers);
                        let line =
                            response::denial_log_line(denial.status, denial.body, why, &headers);
                        (denial, line)
                    });
                    let exchange = Exchange {
                        token,
                        context_id,
                        pending,
                        headers,
                        peer,
                    };
                    let kept = plugin
                        .try_borrow_mut()
                        .is_ok_and(|mut state| state.keep_exchange(exchange));
                    if kept {
                        return Outcome::Dispatched;
                    }
                    log(LogLevel::Warn, "too many token endpoint calls in flight");
                    if let Some((denial, line)) = refused {
                        log(LogLevel::Debug, &line);
                        let body = denial.body.as_bytes();
                        let _ = raw::send_reply(denial.status, &denial.headers, body);
                        return Outcome::Responded;
                    }
                    send_reply(&flow::error_page(
                        503,
                        "Too many sign-ins at once. Please try again.",
                    ));
                    Outcome::Responded
                }
                Err(status) => {
                    if let Ok(mut state) = plugin.try_borrow_mut() {
                        let state = &mut *state;
                        state.vm.dispatch_refused(&state.config, &headers, &pending);
                    }
                    log(
                        LogLevel::Warn,
                        &format!(
                            "cannot dispatch to cluster `{}` ({status:?})",
                            request.cluster
                        ),
                    );
                    if introspection {
                        introspection_unavailable(&headers, "cannot dispatch");
                        return Outcome::Responded;
                    }
                    send_reply(&flow::error_page(
                        502,
                        "The identity provider could not be reached. Please try again.",
                    ));
                    Outcome::Responded
                }
            }
        }
    }
}

/// An introspection call that could not be made or kept: fail closed.
fn introspection_unavailable(headers: &Headers, why: &str) {
    let denial = response::deny(AuthError::IntrospectionUnavailable, why, headers);
    send_denial(&denial, headers);
}

/// The request's headers; `None` (and the request refused) when Envoy cannot give
/// them.
fn read_request_headers() -> Option<Headers> {
    let _span = profile::span(Phase::ReadHeaders);
    raw::request_headers().ok()
}

/// The `:status` of a dispatch reply (effective context: the one that dispatched).
pub fn call_status() -> Option<u32> {
    raw::call_reply_header(":status")
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u32>().ok())
}

pub fn call_body(body_size: usize) -> Option<Vec<u8>> {
    if body_size == 0 {
        return Some(Vec::new());
    }
    raw::call_reply_body(body_size).ok().flatten()
}

fn apply_edits(edits: &Edits) -> Result<(), HostFailure> {
    let _span = profile::span(Phase::ApplyEdits);
    host_calls::apply_edits(&mut Envoy, edits)
}

fn send_denial(denial: &Denial, request: &Headers) {
    let line = response::denial_log_line(denial.status, denial.body, &denial.detail, request);
    log(LogLevel::Debug, &line);
    let _ = raw::send_reply(denial.status, &denial.headers, denial.body.as_bytes());
}

pub fn send_reply(reply: &LocalReply) {
    let _ = raw::send_reply(reply.status, &reply.headers, reply.body.as_bytes());
}
