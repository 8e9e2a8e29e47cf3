//! What an introspection endpoint's reply means (RFC 7662 section 2.2): an identity
//! whose claims are the reply's members, a token that is not active, or no answer
//! (fail closed).

use super::{IntrospectionRule, MAX_REPLY_BYTES};
use crate::claims;
use crate::response::AuthError;
use serde_json::{Map, Value};
use std::rc::Rc;

/// What is known of a token after its introspection.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `active: true` and every check passed: the claims the policies read.
    Active(Rc<Map<String, Value>>),
    /// Not active, or active but not acceptable here (audience, issuer, times):
    /// the error to answer with and why (never the token).
    Inactive(AuthError, String),
    /// No usable answer: the endpoint failed, was slow, or said something
    /// unreadable. Never cached as a verdict; the request fails closed.
    Failed(String),
}

/// The endpoint's reply to an introspection of a token for `rule`, at `now`
/// (seconds), with `skew` seconds of clock tolerance as for JWTs.
pub fn judge_reply(
    rule: &IntrospectionRule,
    status: Option<u32>,
    body: &[u8],
    now: u64,
    skew: u64,
) -> Answer {
    match status {
        Some(200) => {}
        Some(status) => return Answer::Failed(format!("introspection endpoint answered {status}")),
        None => return Answer::Failed("introspection endpoint did not answer".into()),
    }
    if body.len() > MAX_REPLY_BYTES {
        return Answer::Failed("introspection reply is too large".into());
    }
    let Ok(Value::Object(mut members)) = crate::strict_json::parse(body) else {
        return Answer::Failed("introspection reply is not a JSON object".into());
    };
    match members.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Answer::Inactive(AuthError::Inactive, "the token is not active".into())
        }
        _ => return Answer::Failed("introspection reply has no boolean `active`".into()),
    }
    // The reply's `iss`, when it has one, must be the rule's; without one, the
    // token is the rule's issuer's (the principal is `<issuer>/<sub>`).
    match members.get("iss") {
        None => {
            members.insert("iss".into(), Value::String(rule.issuer.clone()));
        }
        Some(Value::String(issuer)) if *issuer == rule.issuer => {}
        Some(_) => {
            return Answer::Inactive(
                AuthError::UnknownIssuer,
                format!("introspection reply's `iss` is not `{}`", rule.issuer),
            )
        }
    }
    for name in ["sub", "scope", "client_id", "username", "token_type"] {
        if members.get(name).is_some_and(|value| !value.is_string()) {
            return Answer::Failed(format!("introspection reply's `{name}` is not a string"));
        }
    }
    if let Err((error, detail)) = claims::check_times(&members, now, skew)
        .and_then(|()| claims::check_audience(&members, &rule.audiences))
    {
        return Answer::Inactive(error, detail);
    }
    Answer::Active(Rc::new(members))
}

/// An answer taken from the cache at `now`: an active token that expired since is
/// refused as expired, like a cached JWT.
pub fn still_valid(answer: &Answer, now: u64, skew: u64) -> Answer {
    match answer {
        Answer::Active(claims) => match claims::check_times(claims, now, skew) {
            Ok(()) => answer.clone(),
            Err((error, detail)) => Answer::Inactive(error, detail),
        },
        other => other.clone(),
    }
}
