//! Finishing a request that waited on the token endpoint (code exchange or
//! refresh), whichever context the reply arrives at.

use super::http::{apply, call_body, call_status, HostEntropy, Outcome};
use super::log;
use super::plugin::{Pending, Plugin, RequestDecision};
use crate::oidc::flow::{self, Step};
use crate::oidc::token_endpoint::MAX_REPLY_BYTES;
use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;
use std::cell::RefCell;

/// Completes the exchange behind `token`, if there is one. True when it switched
/// the effective context, which the caller may need to restore.
pub fn finish(plugin: &RefCell<Plugin>, token: u32, body_size: usize, now_ms: u64) -> bool {
    let exchange = match plugin.try_borrow_mut() {
        Ok(mut state) => match state
            .exchanges
            .iter()
            .position(|exchange| exchange.token == token)
        {
            Some(index) => state.exchanges.remove(index),
            None => return false,
        },
        Err(_) => return false,
    };
    if hostcalls::set_effective_context(exchange.context_id).is_err() {
        return true;
    }
    let status = call_status();
    let body = if body_size <= MAX_REPLY_BYTES {
        call_body(body_size).unwrap_or_default()
    } else {
        Vec::new()
    };
    let decision = match plugin.try_borrow() {
        Ok(state) => decide(
            &state,
            &exchange.pending,
            &exchange.headers,
            status,
            &body,
            now_ms,
        ),
        Err(_) => RequestDecision::Reply(flow::error_page(500, "Please try again.")),
    };
    if let Outcome::Continue = apply(plugin, exchange.context_id, exchange.headers, decision) {
        let _ = hostcalls::resume_http_request();
    }
    true
}

fn decide(
    state: &Plugin,
    pending: &Pending,
    headers: &crate::request::Headers,
    status: Option<u32>,
    body: &[u8],
    now_ms: u64,
) -> RequestDecision {
    let Some(oidc) = state.config.oidc.as_ref() else {
        return RequestDecision::Reply(flow::error_page(500, "Login is not configured."));
    };
    let local = state.sources.get(oidc.source);
    let keys = local
        .and_then(|local| local.keys.clone())
        .unwrap_or_default();
    let context = flow::Context {
        config: &state.config,
        oidc,
        provider: local.and_then(|local| local.provider.as_ref()),
        cookie_keys: &state.cookie_keys,
        headers,
        now: now_ms / 1000,
    };
    match pending {
        Pending::Login(login) => {
            match flow::finish_login(&context, login, status, body, &keys, &mut HostEntropy) {
                Ok(reply) => {
                    log(LogLevel::Info, "login completed");
                    RequestDecision::Reply(reply)
                }
                Err((reply, why)) => {
                    log(LogLevel::Warn, &format!("login failed: {why}"));
                    RequestDecision::Reply(reply)
                }
            }
        }
        Pending::Refresh(session) => {
            let (step, failure) = flow::finish_refresh(
                &context,
                session.clone(),
                status,
                body,
                &keys,
                &mut HostEntropy,
            );
            if let Some(why) = failure {
                log(LogLevel::Info, &format!("session refresh failed: {why}"));
            }
            match step {
                Step::Allow {
                    edits,
                    response_cookies,
                    ..
                } => RequestDecision::Allow {
                    edits,
                    response_cookies,
                },
                Step::Reply(reply) => RequestDecision::Reply(reply),
                _ => RequestDecision::Reply(flow::error_page(500, "Please try again.")),
            }
        }
    }
}
