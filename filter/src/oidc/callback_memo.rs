//! What one worker remembers about login callbacks, by their `state`: so that a
//! login's code goes to the token endpoint at most once.
//!
//! A login cookie and its callback URL can be sent to the callback path any number of
//! times, and each code exchange is a call carrying the client's credentials that
//! holds memory until it is answered. So a state is claimed when its exchange starts;
//! requests with the same state meanwhile wait for it and are then answered without a
//! call (`flow::callback`), and once it is over the state stays spent until its login
//! cookie expires (at most `LOGIN_TTL_SECONDS`): after that the cookie itself is
//! refused. An authorization code is single-use at the IdP, so a spent state has
//! nothing left to exchange anyway.
//!
//! Only a keyed hash of the state is kept (`cache::key_of` under the VM's secret), never
//! the state. Per worker VM, as the refresh memo: a state replayed to every worker
//! reaches the IdP at most once per worker, and the IdP refuses all but the first.

use crate::cache::{key_of, HashSecret, Key};

/// Most states remembered at once (~40 bytes each). Every entry needs a login cookie
/// sealed by us and a matching state, i.e. one login started here; beyond the bound
/// the spent state forgotten first goes (a replay of it may then reach the IdP once
/// more, which refuses a used code). Exchanges in flight are never evicted: there are
/// at most `streams::MAX_EXCHANGES` of them, far fewer. Expired entries are reused.
pub const MAX_ENTRIES: usize = 4096;
/// An exchange still in flight after this is taken as over (its reply never came to
/// this VM), so the state is spent: longer than the longest token endpoint timeout
/// (60 s).
const STALE_FLIGHT_MS: u64 = 120_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This request exchanges the code; [`CallbackMemo::spend`] when the call is over.
    Granted,
    /// Another request of this worker is exchanging this state's code.
    InFlight,
    /// This state's code was already exchanged (or its call abandoned).
    Spent,
    /// No room: every entry is an exchange in flight. The callback is refused
    /// rather than the IdP called without a bound.
    Full,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    /// When the exchange started; `None` once it is over.
    in_flight_since_ms: Option<u64>,
    /// When the login cookie has expired; the state cannot come back after it.
    forget_at_ms: u64,
}

impl Entry {
    fn in_flight(&self, now_ms: u64) -> bool {
        self.in_flight_since_ms
            .is_some_and(|since| now_ms < since.saturating_add(STALE_FLIGHT_MS))
    }
}

#[derive(Debug)]
pub struct CallbackMemo {
    secret: HashSecret,
    entries: Vec<Entry>,
}

impl CallbackMemo {
    /// `secret` keys the hashes of the states: random, from the host.
    pub fn new(secret: HashSecret) -> Self {
        Self {
            secret,
            entries: Vec::new(),
        }
    }

    /// Claims `state`'s single code exchange. `login_expires_at` (seconds) is the
    /// login cookie's expiry, until when the state must be remembered.
    pub fn claim(&mut self, state: &str, login_expires_at: u64, now_ms: u64) -> Claim {
        let key = self.key_of(state);
        // The entry a new one may take the place of: the one forgotten first among
        // those expired or spent (never an exchange in flight).
        let mut replaceable: Option<(usize, u64)> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            let expired = entry.forget_at_ms <= now_ms;
            if entry.key == key && !expired {
                return if entry.in_flight(now_ms) {
                    Claim::InFlight
                } else {
                    Claim::Spent
                };
            }
            let sooner = replaceable.is_none_or(|(_, at)| entry.forget_at_ms < at);
            if (expired || !entry.in_flight(now_ms)) && sooner {
                replaceable = Some((index, entry.forget_at_ms));
            }
        }
        let entry = Entry {
            key,
            in_flight_since_ms: Some(now_ms),
            // The cookie is accepted through its `expires_at` second.
            forget_at_ms: login_expires_at.saturating_add(1).saturating_mul(1000),
        };
        let full = self.entries.len() >= MAX_ENTRIES;
        match replaceable {
            Some((index, at)) if at <= now_ms || full => {
                if let Some(slot) = self.entries.get_mut(index) {
                    *slot = entry;
                }
            }
            _ if !full => self.entries.push(entry),
            _ => return Claim::Full,
        }
        Claim::Granted
    }

    /// The exchange for `state` is over: answered, failed, refused for room, or
    /// abandoned by its request. Whatever happened, the code may have reached the
    /// IdP, so the state stays spent.
    pub fn spend(&mut self, state: &str) {
        let key = self.key_of(state);
        if let Some(entry) = self.entries.iter_mut().find(|entry| entry.key == key) {
            entry.in_flight_since_ms = None;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key_of(&self, state: &str) -> Key {
        key_of(&self.secret, b"callback state", state.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const EXPIRES: u64 = 1_000;
    const NOW_MS: u64 = 900_000;

    #[wasm_bindgen_test(unsupported = test)]
    fn one_exchange_per_state_then_spent_until_the_login_cookie_expires() {
        let mut memo = CallbackMemo::new([7; 16]);
        assert_eq!(memo.claim("s1", EXPIRES, NOW_MS), Claim::Granted);
        assert_eq!(memo.claim("s1", EXPIRES, NOW_MS + 10), Claim::InFlight);
        assert_eq!(
            memo.claim("s2", EXPIRES, NOW_MS + 10),
            Claim::Granted,
            "another login is not held up"
        );
        memo.spend("s1");
        assert_eq!(memo.claim("s1", EXPIRES, NOW_MS + 20), Claim::Spent);
        // Through the cookie's last second, then forgotten (the cookie is refused).
        assert_eq!(
            memo.claim("s1", EXPIRES, EXPIRES * 1000 + 999),
            Claim::Spent
        );
        memo.spend("s2");
        assert_eq!(
            memo.claim("s3", EXPIRES + 600, (EXPIRES + 1) * 1000),
            Claim::Granted
        );
        assert_eq!(memo.len(), 2, "an expired state's entry is reused");
        assert_eq!(
            memo.claim("s2", EXPIRES + 600, (EXPIRES + 1) * 1000),
            Claim::Granted
        );
        assert_eq!(memo.len(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_state_itself_is_not_kept() {
        let mut memo = CallbackMemo::new([7; 16]);
        memo.claim("a-secret-state", EXPIRES, NOW_MS);
        let kept = format!("{memo:?}");
        assert!(!kept.contains("a-secret-state"));
        let other_vm = CallbackMemo::new([8; 16]);
        assert_ne!(memo.key_of("x"), other_vm.key_of("x"), "keyed per VM");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_flight_whose_reply_never_came_is_spent_not_retried() {
        let mut memo = CallbackMemo::new([7; 16]);
        memo.claim("s", EXPIRES + 600, NOW_MS);
        assert_eq!(
            memo.claim("s", EXPIRES + 600, NOW_MS + STALE_FLIGHT_MS),
            Claim::Spent
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn when_full_the_spent_state_forgotten_first_goes_and_flights_never_do() {
        let mut memo = CallbackMemo::new([7; 16]);
        for n in 0..MAX_ENTRIES {
            let expires = EXPIRES + n as u64;
            assert_eq!(memo.claim(&n.to_string(), expires, NOW_MS), Claim::Granted);
        }
        assert_eq!(
            memo.claim("one more", EXPIRES, NOW_MS),
            Claim::Full,
            "all in flight: refused, nothing evicted"
        );
        assert_eq!(memo.len(), MAX_ENTRIES);
        memo.spend("3");
        memo.spend("7");
        assert_eq!(memo.claim("one more", EXPIRES, NOW_MS), Claim::Granted);
        assert_eq!(memo.len(), MAX_ENTRIES);
        assert_eq!(
            memo.claim("7", EXPIRES, NOW_MS),
            Claim::Spent,
            "the later spent state stayed"
        );
        assert_eq!(memo.claim("0", EXPIRES, NOW_MS), Claim::InFlight);
        // "3" went: it is claimed anew, in place of the last spent state.
        assert_eq!(memo.claim("3", EXPIRES, NOW_MS), Claim::Granted);
        assert_eq!(memo.claim("fresh", EXPIRES, NOW_MS), Claim::Full);
    }
}
