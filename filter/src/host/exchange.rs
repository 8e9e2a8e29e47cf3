//! Finishing a request that waited on the token endpoint (code exchange or
//! refresh), whichever context the reply arrives at.

use super::http::{
    apply, call_body, call_status, fail_request, send_reply, EnvoyCrypto, Outcome, WAITING_TICK,
};
use super::plugin::Plugin;
use super::{log, raw};
use crate::authenticator::KeyWait;
use crate::host_calls::HostFailure;
use crate::oidc::flow;
use crate::oidc::token_endpoint::MAX_REPLY_BYTES;
use crate::pipeline::Verdict;
use proxy_wasm::types::LogLevel;
use std::cell::RefCell;

/// Completes the exchange behind `token`, if there is one, at `now_ms` (a clock
/// that could not be read answers the request 500). True when it switched the
/// effective context, which the caller may need to restore.
pub fn finish(
    plugin: &RefCell<Plugin>,
    token: u32,
    body_size: usize,
    now_ms: Result<u64, HostFailure>,
) -> bool {
    let exchange = match plugin.try_borrow_mut() {
        Ok(mut state) => match state.vm.streams.take_exchange(token) {
            Some(exchange) => exchange,
            None => return false,
        },
        Err(_) => return false,
    };
    if raw::set_effective_context(exchange.context_id).is_err() {
        if let Ok(mut state) = plugin.try_borrow_mut() {
            state.vm.abandon(&exchange.pending);
        }
        return true;
    }
    let now_ms = match now_ms {
        Ok(now) => now,
        Err(failure) => {
            if let Ok(mut state) = plugin.try_borrow_mut() {
                state.vm.abandon(&exchange.pending);
            }
            fail_request(&failure);
            return true;
        }
    };
    let status = call_status();
    let body = if body_size <= MAX_REPLY_BYTES {
        call_body(body_size).unwrap_or_default()
    } else {
        Vec::new()
    };
    let finished = match plugin.try_borrow_mut() {
        Ok(mut state) => {
            Some(state.finish_exchange(&exchange, status, &body, now_ms, &mut EnvoyCrypto))
        }
        Err(_) => None,
    };
    let verdict = match finished {
        Some(finished) => {
            match &finished.failure {
                Some(why) if why.starts_with("introspection") => log(LogLevel::Warn, why),
                Some(why) => log(LogLevel::Warn, &format!("login or refresh failed: {why}")),
                None => log(LogLevel::Debug, "token endpoint exchange completed"),
            }
            if let Some(source) = finished.refetch_issuer_keys {
                request_issuer_refetch(plugin, source);
            }
            finished.verdict
        }
        None => Verdict::Reply(flow::error_page(500, "Please try again.")),
    };
    if let Outcome::Continue = apply(
        plugin,
        exchange.context_id,
        exchange.headers,
        exchange.peer,
        verdict,
    ) {
        resume();
    }
    true
}

/// Lets the current request (the effective context) go on upstream; if Envoy
/// refuses, it is answered 500 rather than left hanging.
pub fn resume() {
    if let Err(raw::Refused(status)) = raw::resume_request() {
        log(
            LogLevel::Error,
            &format!("cannot resume the request (status {status})"),
        );
        send_reply(&flow::error_page(500, "Please try again."));
    }
}

/// The IdP signed with a key we lack: ask the root context to fetch its JWKS again
/// on its next tick (subject to `jwksMinRefetchInterval`).
fn request_issuer_refetch(plugin: &RefCell<Plugin>, source: usize) {
    if let Ok(mut state) = plugin.try_borrow_mut() {
        state.note_waits(&[KeyWait {
            source,
            refetch: true,
        }]);
    }
    // Sooner than the idle tick: the user is about to try again.
    let _ = raw::set_tick_period(WAITING_TICK);
}
