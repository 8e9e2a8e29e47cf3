//! The proxy-wasm shell: the only code that touches Envoy. It moves bytes between
//! Envoy and the core and performs what the core decides.
//!
//! - `root`: configuration, the timer, and every JWKS/discovery dispatch call.
//! - `http`: one request; runs the authenticator and applies its decision.
//! - `plugin`: per-VM state shared by the two: config, parsed keys, waiting requests.
//! - `metrics`: Envoy stats for what the core counts.
//! - `shared`: the cross-VM fetch state in proxy-wasm shared data.
//! - `crypto`: Envoy's `verify_signature`, for RS* and ES* signatures.
//! - `raw`: the host calls every request makes, returning Envoy's refusals instead
//!   of panicking as the SDK's wrappers do.
//!
//! proxy-wasm's `String` accessors panic on non-UTF-8 bytes, so this code reads
//! headers and bodies only through the `_bytes` variants.

mod crypto;
mod exchange;
mod http;
mod metrics;
mod plugin;
mod raw;
mod root;
mod shared;
mod sign;

use crate::host_calls::{self, HostFailure};
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}

/// Milliseconds since the epoch from Envoy's clock; a request that cannot be
/// given a time is answered 500 (see `crate::host_calls`).
pub(crate) fn now_ms() -> Result<u64, HostFailure> {
    host_calls::request_time(&mut http::Envoy)
}

/// Set in the VM's environment (`vm_config.environment_variables`) by tests and
/// the bench: time the phases of each request (see `crate::profile`).
#[cfg(feature = "profile")]
const PROFILE_VARIABLE: &str = "OIDC_FILTER_TEST_ONLY_PROFILE";

/// Installs the profiling clock if the environment asks for it; whether it did.
#[cfg(feature = "profile")]
pub(crate) fn profile_if_asked() -> bool {
    let asked = std::env::var_os(PROFILE_VARIABLE).is_some_and(|value| value == "1");
    if asked {
        crate::profile::install(monotonic_nanos);
    }
    asked
}

/// Only a module built with the `profile` feature can time requests.
#[cfg(not(feature = "profile"))]
pub(crate) fn profile_if_asked() -> bool {
    false
}

/// WASI's monotonic clock, from the first call.
#[cfg(feature = "profile")]
fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn log(level: LogLevel, message: &str) {
    let _ = raw::log(level as u32, message);
}
