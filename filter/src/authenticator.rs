//! The per-request decision: find tokens, verify each, and either allow the request
//! (with the header edits to make), deny it, or wait for keys being fetched.

use crate::claims;
use crate::config::{Config, JwtRule, RuleKeys};
use crate::extractor::{self, Found, MAX_TOKENS};
use crate::jwks::KeySet;
use crate::request::{is_safe_header_value, Edits, Headers};
use crate::response::{self, AuthError, Denial};
use crate::token::{self, Jws};
use crate::verifier;
use serde_json::{Map, Value};

/// What the key cache can offer for a remote source right now.
pub enum Keys<'a> {
    Ready {
        set: &'a KeySet,
        may_refetch: bool,
    },
    /// Being fetched (or about to be): wait.
    Pending,
    /// No key set, and the last fetch failed: fail closed.
    Failed,
}

/// The host's view of remote key sets, by index into [`Config::sources`].
pub trait KeyLookup {
    fn remote_keys(&self, source: usize) -> Keys<'_>;
}

/// A request that must wait for a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWait {
    pub source: usize,
    /// The token's `kid` is unknown: fetch again even though the set is fresh.
    pub refetch: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub rule: usize,
    pub claims: Map<String, Value>,
}

#[derive(Debug)]
pub enum Decision {
    Allow {
        edits: Edits,
        verified: Vec<Verified>,
    },
    Deny(Denial),
    Wait(Vec<KeyWait>),
}

enum Verdict {
    Valid(Verified, String),
    Invalid(AuthError, String),
    Wait(KeyWait),
}

pub fn authenticate(
    config: &Config,
    headers: &Headers,
    keys: &dyn KeyLookup,
    now_seconds: u64,
) -> Decision {
    let found = extractor::find_tokens(config, headers);
    authenticate_found(config, headers, &found, keys, now_seconds)
}

/// `authenticate` for tokens the caller has already extracted.
pub fn authenticate_found(
    config: &Config,
    headers: &Headers,
    found: &[Found],
    keys: &dyn KeyLookup,
    now_seconds: u64,
) -> Decision {
    if found.is_empty() {
        return Decision::Deny(response::deny(
            AuthError::Missing,
            "no token in any configured location",
            headers,
        ));
    }
    if found.len() > MAX_TOKENS {
        let detail = format!("more than {MAX_TOKENS} tokens in one request");
        return Decision::Deny(response::deny(
            AuthError::VerificationFails,
            detail,
            headers,
        ));
    }
    let mut waits = Vec::new();
    let mut valid = Vec::new();
    for item in found {
        match judge(config, item, keys, now_seconds) {
            Verdict::Invalid(error, detail) => {
                return Decision::Deny(response::deny(error, detail, headers))
            }
            Verdict::Wait(wait) => waits.push(wait),
            Verdict::Valid(verified, payload_segment) => {
                valid.push((item, verified, payload_segment))
            }
        }
    }
    if !waits.is_empty() {
        waits.dedup();
        return Decision::Wait(waits);
    }
    let edits = upstream_edits(config, headers, &valid);
    let verified = valid.into_iter().map(|(_, verified, _)| verified).collect();
    Decision::Allow { edits, verified }
}

fn judge(config: &Config, found: &Found, keys: &dyn KeyLookup, now: u64) -> Verdict {
    let jws = match token::parse(&found.token, config.max_token_bytes) {
        Ok(jws) => jws,
        Err(why) => return Verdict::Invalid(why.auth_error(), why.to_string()),
    };
    let (index, rule) = match rule_for(config, &jws, found.location) {
        Ok(found) => found,
        Err(why) => return Verdict::Invalid(AuthError::UnknownIssuer, why),
    };
    let checks = claims::check_times(&jws.claims, now, config.clock_skew_seconds)
        .and_then(|()| claims::check_audience(&jws.claims, &rule.audiences));
    if let Err((error, detail)) = checks {
        return Verdict::Invalid(error, detail);
    }
    let (set, may_refetch) = match &rule.keys {
        RuleKeys::Inline(set) => (set, false),
        RuleKeys::Remote(source) => match keys.remote_keys(*source) {
            Keys::Ready { set, may_refetch } => (set, may_refetch),
            Keys::Pending => {
                return Verdict::Wait(KeyWait {
                    source: *source,
                    refetch: false,
                })
            }
            Keys::Failed => {
                return Verdict::Invalid(
                    AuthError::JwksFetchFailed,
                    format!("no key set for `{}`", rule.issuer),
                );
            }
        },
    };
    match verifier::verify_with_set(set, &jws) {
        Err(AuthError::KidAlgMismatch) if may_refetch && jws.kid.is_some() => {
            if let RuleKeys::Remote(source) = rule.keys {
                return Verdict::Wait(KeyWait {
                    source,
                    refetch: true,
                });
            }
            Verdict::Invalid(
                AuthError::KidAlgMismatch,
                "no key for the token's kid".into(),
            )
        }
        Err(error) => Verdict::Invalid(
            error,
            format!("{} token from `{}`", jws.algorithm.name(), rule.issuer),
        ),
        Ok(()) => Verdict::Valid(
            Verified {
                rule: index,
                claims: jws.claims.clone(),
            },
            jws.payload_segment.to_string(),
        ),
    }
}

fn rule_for<'c>(
    config: &'c Config,
    jws: &Jws,
    location: usize,
) -> Result<(usize, &'c JwtRule), String> {
    let issuer = match jws.claims.get("iss") {
        Some(Value::String(issuer)) => issuer,
        Some(_) => return Err("`iss` is not a string".into()),
        None => return Err("token has no `iss`".into()),
    };
    let (index, rule) = config
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| &rule.issuer == issuer)
        .ok_or_else(|| format!("issuer `{issuer}` is not configured"))?;
    if !rule.locations.contains(&location) {
        return Err(format!(
            "issuer `{issuer}` is not accepted in this token location"
        ));
    }
    Ok((index, rule))
}

/// Client-sent copies of our output headers go first; then each verified token is
/// removed (unless forwarded) and its configured headers are set.
fn upstream_edits(
    config: &Config,
    headers: &Headers,
    valid: &[(&Found, Verified, String)],
) -> Edits {
    let mut edits = Edits::default();
    for name in &config.output_headers {
        edits.remove(name);
    }
    for (found, verified, payload_segment) in valid {
        let Some(rule) = config.rules.get(verified.rule) else {
            continue;
        };
        if !rule.forward_original_token {
            if let Some(location) = config.locations.get(found.location) {
                extractor::remove_from(location, headers, &mut edits);
            }
        }
        if let Some(header) = &rule.output_payload_to_header {
            edits.set(header, payload_segment.clone());
        }
        for output in &rule.output_claim_to_headers {
            let value =
                claims::lookup(&verified.claims, &output.claim).and_then(claims::scalar_text);
            if let Some(value) = value.filter(|value| is_safe_header_value(value)) {
                edits.set(&output.header, value);
            }
        }
    }
    edits
}

#[cfg(test)]
mod tests;
