//! The host's signature verifier (`crate::signature_backend::HostVerify`): Envoy's
//! BoringSSL through the `verify_signature` foreign function (Envoy 1.31 and
//! later). Only moves bytes: the messages are `crate::verify_signature`'s, the
//! decision to use the host is `crate::signature_probe`'s.

use super::{log, raw};
use crate::signature_backend::HostFailure;
use crate::verify_signature;
use proxy_wasm::types::LogLevel;
use std::cell::Cell;

const FUNCTION: &str = "verify_signature";

thread_local! {
    /// Failed calls from requests since the last report (`take_failures`).
    static FAILURES: Cell<u64> = const { Cell::new(0) };
    /// All failed calls from requests in this VM, to thin out the log.
    static FAILED_EVER: Cell<u64> = const { Cell::new(0) };
}

/// One call, without counting or logging a failure: for the probe at load,
/// where a host without the function is expected and reported once.
pub fn probe_call(
    hash: &str,
    spki: &[u8],
    signature: &[u8],
    message: &[u8],
) -> Result<bool, HostFailure> {
    let arguments = verify_signature::arguments(hash, spki, signature, message);
    match raw::call_foreign_function(FUNCTION, &arguments) {
        Ok(Some(result)) => verify_signature::verdict(&result),
        // Envoy always writes a result; none at all is a host without the
        // function (`NotFound`, which `raw` hands back as no bytes).
        Ok(None) => Err(HostFailure(
            "no verify_signature result (Envoy before 1.31 has no such function)".into(),
        )),
        Err(raw::Refused(status)) => Err(HostFailure(format!(
            "verify_signature refused the call (status {status})"
        ))),
    }
}

/// One call for a token: a failure is counted and logged (the first, then at
/// every power of two, so a broken host cannot flood the log), and the core
/// counts the signature as not verified.
pub fn verify_signature(
    hash: &str,
    spki: &[u8],
    signature: &[u8],
    message: &[u8],
) -> Result<bool, HostFailure> {
    let answer = probe_call(hash, spki, signature, message);
    if let Err(failure) = &answer {
        FAILURES.with(|failures| failures.set(failures.get().saturating_add(1)));
        let ever = FAILED_EVER.with(|ever| {
            ever.set(ever.get().saturating_add(1));
            ever.get()
        });
        if ever.is_power_of_two() {
            log(
                LogLevel::Warn,
                &format!(
                    "host signature verification failed ({ever} so far in this VM; the \
                     token is not verified): {}",
                    failure.0
                ),
            );
        }
    }
    answer
}

/// Failed calls since the last call, for `signature_verification.host_failures`.
pub fn take_failures() -> u64 {
    FAILURES.with(|failures| failures.replace(0))
}
