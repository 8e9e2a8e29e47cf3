//! When a remote key set must be fetched, and by whom.
//!
//! Every worker VM holds a parsed copy of each key set. The fetch itself is shared:
//! the state below lives in proxy-wasm shared data, and a VM fetches only after
//! taking the lease in it with a compare-and-swap, so N workers make one request.

use crate::authenticator::Keys;
use crate::jwks::KeySet;

/// With no key set yet, a failed fetch is retried this soon; requests arriving
/// in between fail at once instead of waiting on an IdP that just failed.
pub const FIRST_FETCH_RETRY_MS: u64 = 1_000;
/// With a key set, a failed periodic refresh is retried this soon.
pub const REFRESH_RETRY_MS: u64 = 10_000;
/// The lease outlives the fetch timeout by this much (dispatch and discovery).
const LEASE_SLACK_MS: u64 = 1_000;

/// The first byte of [`SharedState::to_bytes`]; bump it when the layout changes.
const STATE_FORMAT: u8 = 1;
const STATE_HEADER_BYTES: usize = 1 + 6 * 8;

/// One remote source's fetch state, as stored in shared data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedState {
    /// Bumped whenever a new key set is stored; 0 means none yet.
    pub version: u64,
    pub fetched_at_ms: u64,
    pub attempted_at_ms: u64,
    /// Set when the latest attempt failed, cleared by a success.
    pub failed_at_ms: u64,
    pub last_error: String,
    pub lease_owner: u64,
    pub lease_until_ms: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub cache_duration_ms: u64,
    pub min_refetch_interval_ms: u64,
    pub timeout_ms: u64,
}

impl SharedState {
    pub fn has_keys(&self) -> bool {
        self.version > 0
    }

    fn leased(&self, now: u64) -> bool {
        self.lease_until_ms > now
    }

    /// An unknown `kid` may trigger a fetch only this often.
    pub fn may_refetch(&self, now: u64, policy: &Policy) -> bool {
        let last = self.fetched_at_ms.max(self.attempted_at_ms);
        now >= last.saturating_add(policy.min_refetch_interval_ms)
    }

    /// Whether a fetch should start now; `refetch_wanted` is an unknown-kid request.
    pub fn fetch_due(&self, now: u64, policy: &Policy, refetch_wanted: bool) -> bool {
        if self.leased(now) {
            return false;
        }
        if !self.has_keys() {
            return self.attempted_at_ms == 0
                || now >= self.attempted_at_ms.saturating_add(FIRST_FETCH_RETRY_MS);
        }
        if refetch_wanted && self.may_refetch(now, policy) {
            return true;
        }
        let stale = now >= self.fetched_at_ms.saturating_add(policy.cache_duration_ms);
        let retry_allowed = now
            >= self
                .attempted_at_ms
                .saturating_add(REFRESH_RETRY_MS.min(policy.cache_duration_ms));
        stale && retry_allowed
    }

    /// The state with this VM holding the fetch lease.
    pub fn leased_to(&self, owner: u64, now: u64, policy: &Policy) -> SharedState {
        SharedState {
            attempted_at_ms: now,
            lease_owner: owner,
            lease_until_ms: now
                .saturating_add(policy.timeout_ms.saturating_mul(2))
                .saturating_add(LEASE_SLACK_MS),
            ..self.clone()
        }
    }

    pub fn succeeded(&self, now: u64) -> SharedState {
        SharedState {
            version: self.version.saturating_add(1),
            fetched_at_ms: now,
            failed_at_ms: 0,
            last_error: String::new(),
            lease_owner: 0,
            lease_until_ms: 0,
            ..self.clone()
        }
    }

    pub fn failed(&self, now: u64, why: &str) -> SharedState {
        SharedState {
            failed_at_ms: now,
            last_error: why.chars().take(200).collect(),
            lease_owner: 0,
            lease_until_ms: 0,
            ..self.clone()
        }
    }

    /// What a request can get from this source now, given this VM's parsed copy.
    pub fn availability<'a>(
        &self,
        keys: Option<&'a KeySet>,
        now: u64,
        policy: &Policy,
    ) -> Keys<'a> {
        if let Some(set) = keys {
            return Keys::Ready {
                set,
                may_refetch: self.may_refetch(now, policy),
            };
        }
        let failed_recently =
            self.failed_at_ms != 0 && now < self.failed_at_ms.saturating_add(FIRST_FETCH_RETRY_MS);
        if failed_recently && !self.leased(now) {
            Keys::Failed
        } else {
            Keys::Pending
        }
    }

    fn numbers(&self) -> [u64; 6] {
        [
            self.version,
            self.fetched_at_ms,
            self.attempted_at_ms,
            self.failed_at_ms,
            self.lease_owner,
            self.lease_until_ms,
        ]
    }

    /// A format byte, six little-endian `u64`s, then the error text.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(STATE_HEADER_BYTES + self.last_error.len());
        bytes.push(STATE_FORMAT);
        for number in self.numbers() {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
        bytes.extend_from_slice(self.last_error.as_bytes());
        bytes
    }

    /// Unreadable shared data (another plugin version, corruption) reads as empty,
    /// which only causes a fetch.
    pub fn from_bytes(bytes: Option<&[u8]>) -> SharedState {
        bytes.and_then(Self::decode).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<SharedState> {
        let (&format, rest) = bytes.split_first()?;
        if format != STATE_FORMAT {
            return None;
        }
        let mut numbers = [0u64; 6];
        let mut chunks = rest.chunks_exact(8);
        for (number, chunk) in numbers.iter_mut().zip(&mut chunks) {
            *number = u64::from_le_bytes(chunk.try_into().ok()?);
        }
        let error = rest.get(STATE_HEADER_BYTES - 1..)?;
        let [version, fetched_at_ms, attempted_at_ms, failed_at_ms, lease_owner, lease_until_ms] =
            numbers;
        Some(SharedState {
            version,
            fetched_at_ms,
            attempted_at_ms,
            failed_at_ms,
            last_error: String::from_utf8_lossy(error).into_owned(),
            lease_owner,
            lease_until_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const POLICY: Policy = Policy {
        cache_duration_ms: 600_000,
        min_refetch_interval_ms: 30_000,
        timeout_ms: 5_000,
    };

    #[wasm_bindgen_test(unsupported = test)]
    fn first_fetch_is_due_at_once_and_only_once() {
        let empty = SharedState::default();
        assert!(empty.fetch_due(1_000, &POLICY, false));
        let leased = empty.leased_to(7, 1_000, &POLICY);
        assert!(
            !leased.fetch_due(1_500, &POLICY, false),
            "another VM holds the lease"
        );
        assert!(matches!(
            leased.availability(None, 1_500, &POLICY),
            Keys::Pending
        ));
        assert!(
            leased.fetch_due(1_000 + 12_000, &POLICY, false),
            "an abandoned lease expires"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_failed_first_fetch_fails_requests_briefly_then_retries() {
        let failed = SharedState::default()
            .leased_to(7, 1_000, &POLICY)
            .failed(1_200, "503");
        assert!(matches!(
            failed.availability(None, 1_300, &POLICY),
            Keys::Failed
        ));
        assert!(!failed.fetch_due(1_300, &POLICY, false));
        assert!(failed.fetch_due(2_000, &POLICY, false));
        assert!(matches!(
            failed.availability(None, 2_300, &POLICY),
            Keys::Pending
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refresh_is_periodic_and_unknown_kid_refetch_is_rate_limited() {
        let fresh = SharedState::default()
            .leased_to(7, 1_000, &POLICY)
            .succeeded(1_100);
        assert_eq!(fresh.version, 1);
        assert!(!fresh.fetch_due(2_000, &POLICY, false));
        assert!(
            !fresh.fetch_due(2_000, &POLICY, true),
            "kid refetch too soon"
        );
        assert!(fresh.fetch_due(1_100 + 30_000, &POLICY, true));
        assert!(!fresh.fetch_due(1_100 + 30_000, &POLICY, false));
        assert!(fresh.fetch_due(1_100 + 600_000, &POLICY, false));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn failed_refresh_keeps_keys_and_backs_off() {
        let fresh = SharedState::default().leased_to(7, 0, &POLICY).succeeded(0);
        let failed = fresh
            .leased_to(7, 600_000, &POLICY)
            .failed(600_100, "timeout");
        assert_eq!(failed.version, 1, "keys kept");
        assert!(!failed.fetch_due(605_000, &POLICY, false));
        assert!(failed.fetch_due(610_000, &POLICY, false));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn round_trips_through_bytes_and_tolerates_garbage() {
        let state = SharedState::default()
            .leased_to(3, 10, &POLICY)
            .failed(20, "x");
        assert_eq!(SharedState::from_bytes(Some(&state.to_bytes())), state);
        assert_eq!(
            SharedState::from_bytes(Some(b"garbage")),
            SharedState::default()
        );
        assert_eq!(SharedState::from_bytes(None), SharedState::default());
    }
}
