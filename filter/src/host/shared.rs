//! Cross-VM fetch state in proxy-wasm shared data. All worker VMs of the plugin see
//! the same keys; writes use compare-and-swap so exactly one VM wins a lease.

use super::raw;
use crate::key_cache::SharedState;

const PREFIX: &str = "oidc_filter.v1";

fn state_key(source_id: &str) -> String {
    format!("{PREFIX}/{source_id}/state")
}

fn jwks_key(source_id: &str) -> String {
    format!("{PREFIX}/{source_id}/jwks")
}

/// The current state and its CAS token (`None` when never written).
pub fn read_state(source_id: &str) -> (SharedState, Option<u32>) {
    match raw::shared_data(&state_key(source_id)) {
        Ok((bytes, cas)) => (SharedState::from_bytes(bytes.as_deref()), cas),
        Err(_) => (SharedState::default(), None),
    }
}

/// Writes `state` if nobody wrote since `cas` was read. False when another VM won.
pub fn write_state(source_id: &str, state: &SharedState, cas: Option<u32>) -> bool {
    raw::set_shared_data(&state_key(source_id), &state.to_bytes(), cas).is_ok()
}

fn discovery_key(source_id: &str) -> String {
    format!("{PREFIX}/{source_id}/discovery")
}

pub fn read_discovery(source_id: &str) -> Option<Vec<u8>> {
    raw::shared_data(&discovery_key(source_id))
        .ok()
        .and_then(|(bytes, _)| bytes)
}

pub fn write_discovery(source_id: &str, text: &[u8]) -> bool {
    raw::set_shared_data(&discovery_key(source_id), text, None).is_ok()
}

pub fn read_jwks(source_id: &str) -> Option<Vec<u8>> {
    raw::shared_data(&jwks_key(source_id))
        .ok()
        .and_then(|(bytes, _)| bytes)
}

pub fn write_jwks(source_id: &str, text: &[u8]) -> bool {
    raw::set_shared_data(&jwks_key(source_id), text, None).is_ok()
}

/// Applies `change` to the latest state, retrying a few times on CAS conflicts.
pub fn update_state(
    source_id: &str,
    change: impl Fn(&SharedState) -> SharedState,
) -> Option<SharedState> {
    for _ in 0..8 {
        let (current, cas) = read_state(source_id);
        let next = change(&current);
        if write_state(source_id, &next, cas) {
            return Some(next);
        }
    }
    None
}
