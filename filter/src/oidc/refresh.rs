//! What one worker remembers about session refreshes, by session cookie: so that a
//! session starts at most one refresh at a time (concurrent requests wait for it
//! and are served by its result), and backs off while the IdP cannot answer.

use crate::cache::Key;
use crate::session::Session;
use crate::streams::remove_where;
use std::rc::Rc;

/// Most sessions remembered at once; the oldest entry goes first beyond it.
pub const MAX_ENTRIES: usize = 256;
/// How long requests still carrying the old cookie are served by a refresh's result
/// (the browser has the renewed cookie after its first response).
pub const RENEWED_FOR_MS: u64 = 30_000;
/// How long requests with a session the IdP ended keep being told so.
pub const ENDED_FOR_MS: u64 = 30_000;
/// After a refresh the IdP could not answer: wait 1 s, then 2, 4, ... at most this.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// A refresh whose reply never came (the request was reset): forgotten after this.
const STALE_FLIGHT_MS: u64 = 120_000;

#[derive(Debug, Clone)]
pub enum Refresh {
    /// A request of this worker is at the token endpoint for this session.
    InFlight,
    /// Renewed: the session and the cookies that carry it.
    Renewed {
        session: Rc<Session>,
        cookies: Vec<String>,
    },
    /// The IdP ended the session (e.g. `invalid_grant`).
    Ended,
    /// The IdP could not answer; no new attempt until the backoff is over.
    BackingOff,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    state: Refresh,
    /// Until when `state` holds (for `BackingOff`: the next attempt).
    until_ms: u64,
    /// Consecutive failures; kept a while past a backoff so the next one doubles.
    failures: u32,
}

impl Entry {
    /// When the entry goes: at the end of its state, except that a backoff's
    /// failure count outlives it so that the next failure doubles the wait.
    fn forget_at_ms(&self) -> u64 {
        match self.state {
            Refresh::BackingOff => self.until_ms.saturating_add(MAX_BACKOFF_MS),
            _ => self.until_ms,
        }
    }
}

#[derive(Debug, Default)]
pub struct RefreshMemo {
    entries: Vec<Entry>,
}

impl RefreshMemo {
    /// What is known about the session behind `key` now. `None`: nothing, so the
    /// caller may refresh (and must call [`RefreshMemo::start`]).
    pub fn state(&mut self, key: Key, now_ms: u64) -> Option<Refresh> {
        remove_where(&mut self.entries, &|entry| entry.forget_at_ms() <= now_ms);
        self.entries
            .iter()
            .find(|entry| entry.key == key && entry.until_ms > now_ms)
            .map(|entry| entry.state.clone())
    }

    pub fn start(&mut self, key: Key, now_ms: u64) {
        let failures = self.failures(key);
        self.put(
            key,
            Refresh::InFlight,
            now_ms.saturating_add(STALE_FLIGHT_MS),
            failures,
        );
    }

    pub fn renewed(&mut self, key: Key, session: Rc<Session>, cookies: Vec<String>, now_ms: u64) {
        let state = Refresh::Renewed { session, cookies };
        self.put(key, state, now_ms.saturating_add(RENEWED_FOR_MS), 0);
    }

    pub fn ended(&mut self, key: Key, now_ms: u64) {
        self.put(key, Refresh::Ended, now_ms.saturating_add(ENDED_FOR_MS), 0);
    }

    /// The IdP did not answer usefully: back off, doubling each time.
    pub fn failed(&mut self, key: Key, now_ms: u64) {
        let failures = self.failures(key).saturating_add(1);
        let backoff = 1_000u64
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(MAX_BACKOFF_MS)
            .min(MAX_BACKOFF_MS);
        self.put(
            key,
            Refresh::BackingOff,
            now_ms.saturating_add(backoff),
            failures,
        );
    }

    /// The request that was refreshing went away before the reply: let the next
    /// request try again.
    pub fn abandon(&mut self, key: Key) {
        remove_where(&mut self.entries, &|entry| {
            entry.key == key && matches!(entry.state, Refresh::InFlight)
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn failures(&self, key: Key) -> u32 {
        self.entries
            .iter()
            .find(|entry| entry.key == key)
            .map_or(0, |entry| entry.failures)
    }

    fn put(&mut self, key: Key, state: Refresh, until_ms: u64, failures: u32) {
        remove_where(&mut self.entries, &|entry| entry.key == key);
        if self.entries.len() >= MAX_ENTRIES {
            // The entry that would be forgotten first goes first.
            let soonest = (0..self.entries.len())
                .min_by_key(|&i| self.entries.get(i).map_or(0, Entry::forget_at_ms));
            if let Some(index) = soonest {
                self.entries.swap_remove(index);
            }
        }
        self.entries.push(Entry {
            key,
            state,
            until_ms,
            failures,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn session() -> Rc<Session> {
        Rc::new(Session {
            claims: Map::new(),
            id_token: None,
            access_token: None,
            refresh_token: Some("r".into()),
            tokens_expire_at: 10,
            tokens_issued_at: 0,
            expires_at: 20,
        })
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn one_flight_then_its_result_for_a_while() {
        let mut memo = RefreshMemo::default();
        assert!(memo.state(7, 0).is_none());
        memo.start(7, 0);
        assert!(matches!(memo.state(7, 10), Some(Refresh::InFlight)));
        assert!(
            memo.state(8, 10).is_none(),
            "another session is not held up"
        );
        memo.renewed(7, session(), vec!["c=1".into()], 100);
        assert!(matches!(
            memo.state(7, 100 + RENEWED_FOR_MS - 1),
            Some(Refresh::Renewed { .. })
        ));
        assert!(memo.state(7, 100 + RENEWED_FOR_MS).is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn failures_back_off_exponentially_up_to_a_bound() {
        let mut memo = RefreshMemo::default();
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            memo.start(1, now);
            memo.failed(1, now);
            let mut wait = 0;
            while matches!(memo.state(1, now + wait), Some(Refresh::BackingOff)) {
                wait += 500;
            }
            waits.push(wait);
            now += wait;
        }
        assert_eq!(&waits[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert_eq!(waits.last(), Some(&MAX_BACKOFF_MS));
        memo.start(1, now);
        memo.renewed(1, session(), Vec::new(), now);
        memo.start(1, now + RENEWED_FOR_MS);
        memo.failed(1, now + RENEWED_FOR_MS);
        assert!(
            memo.state(1, now + RENEWED_FOR_MS + 1_000).is_none(),
            "a success resets the backoff"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn abandoned_and_stale_flights_are_forgotten_and_entries_bounded() {
        let mut memo = RefreshMemo::default();
        memo.start(1, 0);
        memo.abandon(1);
        assert!(memo.state(1, 1).is_none());
        memo.start(2, 0);
        assert!(memo.state(2, STALE_FLIGHT_MS).is_none());
        for key in 0..(MAX_ENTRIES as u128 * 2) {
            memo.start(key, 1);
        }
        assert_eq!(memo.len(), MAX_ENTRIES);
        assert!(memo.state(0, 2).is_none(), "the oldest went first");
    }
}
