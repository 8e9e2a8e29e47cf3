//! The per-request decision: find tokens, verify each, and either allow the request
//! (with the header edits to make), deny it, or wait for keys being fetched.

use crate::cache::{self, BoundedCache};
use crate::claims;
use crate::config::{Config, JwtRule, RuleKeys};
use crate::extractor::{self, Found, MAX_TOKENS};
use crate::jwks::KeySet;
use crate::profile::{self, Phase};
use crate::request::{self, is_safe_header_value, Edits, Headers};
use crate::response::{self, AuthError, Denial};
use crate::token::{self, Jws};
use crate::verifier;
use serde_json::{Map, Value};
use std::rc::Rc;

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

    /// The `introspection_endpoint` of a discovery source's document, once read.
    fn introspection_endpoint(&self, _source: usize) -> Option<&crate::http_url::HttpUrl> {
        None
    }
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
    pub claims: Rc<Map<String, Value>>,
}

/// What the verified-token cache keeps of a token that passed every check.
pub struct CachedToken {
    rule: usize,
    claims: Rc<Map<String, Value>>,
    payload_segment: Rc<str>,
    /// The key set that verified it; another set means verifying again.
    keys_fingerprint: u64,
}

pub type TokenCache = BoundedCache<CachedToken>;

/// How long a token without `exp` stays cached.
const TOKEN_WITHOUT_EXPIRY_TTL_SECONDS: u64 = 300;

#[derive(Debug)]
pub enum Decision {
    /// `identity` is the first valid token in configuration order: the one the
    /// policies judge and whose claims go upstream.
    Allow {
        edits: Edits,
        identity: Verified,
    },
    Deny(Denial),
    Wait(Vec<KeyWait>),
}

enum Verdict {
    Valid(Verified, Rc<str>),
    Invalid(AuthError, String),
    Wait(KeyWait),
}

pub fn authenticate(
    config: &Config,
    headers: &Headers,
    keys: &dyn KeyLookup,
    cache: &mut TokenCache,
    now_seconds: u64,
) -> Decision {
    let found = extractor::find_tokens(config, headers);
    authenticate_found(config, headers, &found, keys, cache, now_seconds)
}

/// `authenticate` for tokens the caller has already extracted.
pub fn authenticate_found(
    config: &Config,
    headers: &Headers,
    found: &[Found],
    keys: &dyn KeyLookup,
    cache: &mut TokenCache,
    now_seconds: u64,
) -> Decision {
    if found.is_empty() {
        return missing(headers);
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
        match judge(config, item, keys, cache, now_seconds) {
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
    if let Some(detail) = several_principals(&valid) {
        return Decision::Deny(response::deny(
            AuthError::VerificationFails,
            detail,
            headers,
        ));
    }
    let edits = upstream_edits(config, headers, &valid);
    match valid.into_iter().next() {
        Some((_, identity, _)) => Decision::Allow { edits, identity },
        None => missing(headers),
    }
}

fn missing(headers: &Headers) -> Decision {
    Decision::Deny(response::deny(
        AuthError::Missing,
        "no token in any configured location",
        headers,
    ))
}

/// One request, one identity: valid tokens of different principals (`iss` and
/// `sub`) are refused rather than judged as one and forwarded as another.
fn several_principals(valid: &[(&Found, Verified, Rc<str>)]) -> Option<String> {
    let (_, first, _) = valid.first()?;
    let same = |name: &str| {
        valid
            .iter()
            .all(|(_, other, _)| other.claims.get(name) == first.claims.get(name))
    };
    (!(same("iss") && same("sub")))
        .then(|| "tokens of different principals in one request".to_string())
}

/// A token seen before with the same key set skips parsing and its signature
/// check; its times are checked again, and its location, as for a new token.
/// Whether the verified-token cache holds `token`: a JWT of a `jwtRules` issuer
/// that passed every check (for a reading that needs only to know that, such as
/// introspection's routing). The lookup neither counts as a hit nor a miss.
pub fn is_verified_jwt(config: &Config, cache: &mut TokenCache, token: &str, now: u64) -> bool {
    if !cache.enabled() {
        return false;
    }
    let key = cache.key_of(b"jwt", token.as_bytes());
    cache
        .get(&key, now)
        .is_some_and(|entry| config.rules.get(entry.rule).is_some())
}

fn judge(
    config: &Config,
    found: &Found,
    keys: &dyn KeyLookup,
    cache: &mut TokenCache,
    now: u64,
) -> Verdict {
    if !cache.enabled() {
        return judge_uncached(config, found, keys, now);
    }
    let lookup = profile::span(Phase::CacheLookup);
    let cache_key = cache.key_of(b"jwt", found.token.as_bytes());
    let cached = cache.get(&cache_key, now);
    lookup.end();
    if let Some(entry) = cached {
        if let Some(verdict) = judge_cached(config, &entry, found, keys, now) {
            cache.count(true);
            return verdict;
        }
    }
    cache.count(false);
    let verdict = judge_uncached(config, found, keys, now);
    if let Verdict::Valid(verified, payload_segment) = &verdict {
        let _span = profile::span(Phase::CacheInsert);
        remember(
            config,
            cache,
            cache_key,
            verified,
            payload_segment,
            keys,
            now,
        );
    }
    verdict
}

fn judge_cached(
    config: &Config,
    entry: &CachedToken,
    found: &Found,
    keys: &dyn KeyLookup,
    now: u64,
) -> Option<Verdict> {
    let rule = config.rules.get(entry.rule)?;
    if !rule.locations.contains(&found.location)
        || keys_fingerprint(rule, keys) != Some(entry.keys_fingerprint)
    {
        return None;
    }
    if let Err((error, detail)) = claims::check_times(&entry.claims, now, config.clock_skew_seconds)
    {
        return Some(Verdict::Invalid(error, detail));
    }
    let verified = Verified {
        rule: entry.rule,
        claims: Rc::clone(&entry.claims),
    };
    Some(Verdict::Valid(verified, Rc::clone(&entry.payload_segment)))
}

fn remember(
    config: &Config,
    cache: &mut TokenCache,
    cache_key: cache::Key,
    verified: &Verified,
    payload_segment: &Rc<str>,
    keys: &dyn KeyLookup,
    now: u64,
) {
    let Some(keys_fingerprint) = config
        .rules
        .get(verified.rule)
        .and_then(|rule| keys_fingerprint(rule, keys))
    else {
        return;
    };
    let expires_at = match claims::expiry(&verified.claims) {
        // Still accepted during the skew second of its expiry, like an uncached one.
        Some(exp) => exp
            .saturating_add(config.clock_skew_seconds)
            .saturating_add(1),
        None => now.saturating_add(TOKEN_WITHOUT_EXPIRY_TTL_SECONDS),
    };
    // The claims map costs about twice its base64 text; the text is kept too.
    let bytes = payload_segment.len().saturating_mul(3);
    let entry = CachedToken {
        rule: verified.rule,
        claims: Rc::clone(&verified.claims),
        payload_segment: Rc::clone(payload_segment),
        keys_fingerprint,
    };
    cache.insert(cache_key, entry, bytes, expires_at, now);
}

/// The key set a rule verifies with right now, if it has one.
fn keys_fingerprint(rule: &JwtRule, keys: &dyn KeyLookup) -> Option<u64> {
    match &rule.keys {
        RuleKeys::Inline(set) => Some(set.fingerprint),
        RuleKeys::Remote(source) => match keys.remote_keys(*source) {
            Keys::Ready { set, .. } => Some(set.fingerprint),
            Keys::Pending | Keys::Failed => None,
        },
    }
}

fn judge_uncached(config: &Config, found: &Found, keys: &dyn KeyLookup, now: u64) -> Verdict {
    let parse = profile::span(Phase::Parse);
    let jws = match token::parse(&found.token, config.max_token_bytes) {
        Ok(jws) => jws,
        Err(why) => return Verdict::Invalid(why.auth_error(), why.to_string()),
    };
    parse.end();
    let claims_span = profile::span(Phase::Claims);
    let (index, rule) = match rule_for(config, &jws, found.location) {
        Ok(found) => found,
        Err(why) => return Verdict::Invalid(AuthError::UnknownIssuer, why),
    };
    let checks = claims::check_times(&jws.claims, now, config.clock_skew_seconds)
        .and_then(|()| claims::check_audience(&jws.claims, &rule.audiences));
    if let Err((error, detail)) = checks {
        return Verdict::Invalid(error, detail);
    }
    claims_span.end();
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
    let verify = profile::span(Phase::Verify);
    let verified = verifier::verify_with_set(set, &jws, &config.signature_backend);
    verify.end();
    match verified {
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
                claims: Rc::new(jws.claims),
            },
            Rc::from(jws.payload_segment),
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
/// removed (unless forwarded), and the identity's (first) token sets its headers.
fn upstream_edits(
    config: &Config,
    headers: &Headers,
    valid: &[(&Found, Verified, Rc<str>)],
) -> Edits {
    let mut edits = Edits::default();
    request::remove_identity_headers(&config.output_headers, headers, &mut edits);
    for (index, (found, verified, payload_segment)) in valid.iter().enumerate() {
        let Some(rule) = config.rules.get(verified.rule) else {
            continue;
        };
        if !rule.forward_original_token {
            if let Some(location) = config.locations.get(found.location) {
                extractor::remove_from(location, headers, &mut edits);
            }
        }
        if index > 0 {
            continue;
        }
        if let Some(header) = &rule.output_payload_to_header {
            edits.set(header, payload_segment.to_string());
        }
        let outputs = config.output_claim_to_headers.iter();
        for output in outputs.chain(&rule.output_claim_to_headers) {
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
