//! One HTTP request: run the authenticator and apply its decision. `handle` is also
//! called by the root context for requests that waited for keys.

use super::plugin::Plugin;
use super::{log, now_ms};
use crate::authenticator::{Decision, KeyWait};
use crate::request::{Edits, Headers};
use crate::response::{self, AuthError, Denial};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How often the root context looks again while requests wait for keys.
pub const WAITING_TICK: Duration = Duration::from_millis(20);

pub enum Outcome {
    Continue,
    Responded,
    Wait(Vec<KeyWait>),
}

pub struct Http {
    context_id: u32,
    plugin: Option<Rc<RefCell<Plugin>>>,
}

impl Http {
    pub fn new(context_id: u32, plugin: Option<Rc<RefCell<Plugin>>>) -> Self {
        Self { context_id, plugin }
    }
}

impl Http {
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

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(plugin) = &self.plugin else {
            let headers = read_request_headers();
            send_denial(&response::deny(
                AuthError::JwksFetchFailed,
                "filter is not configured",
                &headers,
            ));
            return Action::Pause;
        };
        let now = now_ms();
        match handle(plugin, now, false) {
            Outcome::Continue => Action::Continue,
            Outcome::Responded => Action::Pause,
            Outcome::Wait(waits) => {
                let registered = plugin
                    .try_borrow_mut()
                    .map(|mut plugin| plugin.add_waiter(self.context_id, &waits, now))
                    .unwrap_or(false);
                if !registered {
                    // Nowhere to wait: decide now as if the wait had timed out.
                    return match handle(plugin, now, true) {
                        Outcome::Continue => Action::Continue,
                        _ => Action::Pause,
                    };
                }
                let _ = hostcalls::set_tick_period(WAITING_TICK);
                Action::Pause
            }
        }
    }

    // A body or trailers arriving while the headers wait for keys must not let the
    // request through. Envoy 1.40 stops all iteration for paused headers, so it does
    // not call these then; a host that did would resume the headers on `Continue`.
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.hold_while_waiting()
    }

    fn on_log(&mut self) {
        if let Some(Ok(mut plugin)) = self.plugin.as_ref().map(|plugin| plugin.try_borrow_mut()) {
            plugin.forget(self.context_id);
        }
    }
}

/// Decides the current request (the effective context) and applies the decision.
/// No borrow of the plugin is held while Envoy is called, since Envoy may call
/// back into this VM (for example `on_log` after a local reply).
pub fn handle(plugin: &RefCell<Plugin>, now: u64, final_attempt: bool) -> Outcome {
    let headers = read_request_headers();
    let decision = match plugin.try_borrow_mut() {
        Ok(mut plugin) => {
            plugin.sync_sources_without_keys();
            plugin.decide(&headers, now, final_attempt)
        }
        Err(_) => Decision::Deny(response::deny(
            AuthError::JwksFetchFailed,
            "plugin state busy",
            &headers,
        )),
    };
    match decision {
        Decision::Allow { edits, .. } => {
            apply_edits(&edits);
            Outcome::Continue
        }
        Decision::Deny(denial) => {
            send_denial(&denial);
            Outcome::Responded
        }
        Decision::Wait(waits) => Outcome::Wait(waits),
    }
}

fn read_request_headers() -> Headers {
    let pairs = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    Headers::new(
        pairs
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect(),
    )
}

fn apply_edits(edits: &Edits) {
    for name in &edits.remove {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }
    for (name, value) in &edits.set {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }
}

fn send_denial(denial: &Denial) {
    log(
        LogLevel::Debug,
        &format!(
            "denied {} \"{}\": {}",
            denial.status, denial.body, denial.detail
        ),
    );
    let headers: Vec<(&str, &str)> = denial
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(denial.status, headers, Some(denial.body.as_bytes()));
}
