//! What one worker remembers of introspections: answers per token (keyed by a
//! secret-keyed hash, never the token), the calls in flight (one per token at a
//! time: other requests with the same token wait for it), and, per rule, a backoff
//! while its endpoint fails. Times are milliseconds.

use super::decision::Answer;
use super::IntrospectionRule;
use crate::cache::{BoundedCache, HashSecret, Key, Limits};
use serde_json::Value;

/// Most introspection calls in flight per worker; a new token beyond it fails
/// closed at once (its requests get the `503`), calls already made go on.
pub const MAX_IN_FLIGHT: usize = 64;
/// The first wait after a failed call; doubled per further failure, up to
/// [`MAX_BACKOFF_MS`]. A success ends it.
pub const FIRST_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 30_000;
/// A call whose reply never came (the host lost it) stops blocking its token
/// this long after its own timeout.
const IN_FLIGHT_GRACE_MS: u64 = 1_000;

pub const DEFAULT_CACHE_LIMITS: Limits = Limits {
    max_entries: 4096,
    max_bytes: 2 * 1024 * 1024,
};

/// What to do about a token now.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Answered before and still fresh (an active answer is checked again for
    /// its times by the caller).
    Known(Answer),
    /// Another request is introspecting this token: wait for its answer.
    Wait,
    /// The endpoint failed recently: fail closed without calling it.
    BackingOff,
    /// Too many calls in flight: fail closed.
    Busy,
    /// Call the endpoint (and say so with [`State::started`]).
    Call,
}

#[derive(Debug, Clone, Copy, Default)]
struct Backoff {
    failures: u32,
    until_ms: u64,
}

pub struct State {
    cache: BoundedCache<Answer>,
    in_flight: Vec<(Key, u64)>,
    backoff: Vec<Backoff>,
}

impl State {
    pub fn new(limits: Limits, secret: HashSecret, rules: usize) -> Self {
        Self {
            cache: BoundedCache::new(limits, secret),
            in_flight: Vec::new(),
            backoff: vec![Backoff::default(); rules],
        }
    }

    pub fn key(&self, token: &str) -> Key {
        self.cache.key_of(b"introspection", token.as_bytes())
    }

    pub fn next(&mut self, key: Key, rule: usize, now_ms: u64) -> Next {
        if let Some(answer) = self.cache.get(&key, now_ms) {
            return Next::Known((*answer).clone());
        }
        self.in_flight
            .retain(|(_, deadline)| now_ms < deadline.saturating_add(IN_FLIGHT_GRACE_MS));
        if self.in_flight.iter().any(|(known, _)| *known == key) {
            return Next::Wait;
        }
        if self
            .backoff
            .get(rule)
            .is_some_and(|backoff| now_ms < backoff.until_ms)
        {
            return Next::BackingOff;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Next::Busy;
        }
        Next::Call
    }

    /// A call for `key` was made; it times out at `deadline_ms`.
    pub fn started(&mut self, key: Key, deadline_ms: u64) {
        self.in_flight.push((key, deadline_ms));
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The call for `key` will never be answered (its request went away, or it
    /// could not be made): the next request with the token calls again.
    pub fn abandon(&mut self, key: Key) {
        self.in_flight.retain(|(known, _)| *known != key);
    }

    /// The answer for `key`: remembered for the rule's durations (an active token
    /// until `min(exp, now + cacheDuration)`, an inactive one for
    /// `negativeCacheDuration`), or, for a failure, a longer backoff of the rule.
    pub fn complete(
        &mut self,
        key: Key,
        rule_index: usize,
        rule: &IntrospectionRule,
        answer: &Answer,
        now_ms: u64,
    ) {
        self.abandon(key);
        let Some(backoff) = self.backoff.get_mut(rule_index) else {
            return;
        };
        let (expires_at, bytes) = match answer {
            Answer::Failed(_) => {
                backoff.failures = backoff.failures.saturating_add(1);
                let shift = backoff.failures.saturating_sub(1).min(16);
                let wait = FIRST_BACKOFF_MS.saturating_mul(1 << shift);
                backoff.until_ms = now_ms.saturating_add(wait.min(MAX_BACKOFF_MS));
                return;
            }
            Answer::Active(claims) => {
                let mut until = now_ms.saturating_add(rule.cache_duration_ms);
                if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
                    until = until.min(exp.saturating_mul(1000));
                }
                // About what the parsed members hold.
                let bytes = claims
                    .iter()
                    .map(|(name, value)| name.len().saturating_add(value_bytes(value)))
                    .sum::<usize>()
                    .saturating_mul(2);
                (until, bytes)
            }
            Answer::Inactive(_, detail) => (
                now_ms.saturating_add(rule.negative_cache_duration_ms),
                detail.len(),
            ),
        };
        *backoff = Backoff::default();
        self.cache
            .insert(key, answer.clone(), bytes, expires_at, now_ms);
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len().saturating_add(24),
        Value::Array(items) => items
            .iter()
            .map(value_bytes)
            .sum::<usize>()
            .saturating_add(24),
        Value::Object(members) => members
            .iter()
            .map(|(name, value)| name.len().saturating_add(value_bytes(value)))
            .sum::<usize>()
            .saturating_add(48),
        _ => 24,
    }
}
