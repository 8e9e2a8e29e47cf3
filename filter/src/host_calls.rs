//! The host calls a request's outcome depends on, as a trait: the shell
//! (`host`) implements it with Envoy's, the tests with doubles that fail. Each
//! failure ends the request with a 500; none lets it pass.
//!
//! Why it matters: without the clock, `now` would be 0, where every session is
//! young and a token without `iat`/`nbf` is valid; an identity header the host
//! failed to remove would reach the upstream as the client wrote it.

use crate::oidc::flow::{error_page, LocalReply};
use crate::request::Edits;

/// A host call that did not succeed, with the host's status for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u32);

/// What the core needs of the host for one request.
pub trait RequestHost {
    /// Milliseconds since the epoch.
    fn now_ms(&mut self) -> Result<u64, Refused>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), Refused>;
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Refused>;
}

/// Why a request was answered 500 by the filter itself, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub reply: LocalReply,
    pub why: String,
}

fn failure(why: String) -> HostFailure {
    HostFailure {
        reply: error_page(500, "Please try again."),
        why,
    }
}

/// The time a request is judged at, or the 500 that ends it.
pub fn request_time(host: &mut dyn RequestHost) -> Result<u64, HostFailure> {
    host.now_ms()
        .map_err(|Refused(status)| failure(format!("cannot read the clock (status {status})")))
}

/// Makes the upstream request what the decision judged: every removal, then every
/// set. The first that fails stops the rest; the request must then be answered
/// with the returned 500 instead of being resumed.
pub fn apply_edits(host: &mut dyn RequestHost, edits: &Edits) -> Result<(), HostFailure> {
    for name in &edits.remove {
        host.remove_request_header(name)
            .map_err(|Refused(status)| {
                failure(format!(
                    "cannot remove request header `{name}` (status {status})"
                ))
            })?;
    }
    for (name, value) in &edits.set {
        host.set_request_header(name, value)
            .map_err(|Refused(status)| {
                failure(format!(
                    "cannot set request header `{name}` (status {status})"
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// A host whose calls fail where told to, recording those that succeed.
    #[derive(Default)]
    pub(crate) struct FailingHost {
        pub clock: Option<u64>,
        /// A header name whose removal or set fails.
        pub refuse: Option<&'static str>,
        pub done: Vec<String>,
    }

    impl RequestHost for FailingHost {
        fn now_ms(&mut self) -> Result<u64, Refused> {
            self.clock.ok_or(Refused(2))
        }

        fn remove_request_header(&mut self, name: &str) -> Result<(), Refused> {
            if self.refuse == Some(name) {
                return Err(Refused(2));
            }
            self.done.push(format!("-{name}"));
            Ok(())
        }

        fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), Refused> {
            if self.refuse == Some(name) {
                return Err(Refused(2));
            }
            self.done.push(format!("{name}={value}"));
            Ok(())
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_clock_that_cannot_be_read_answers_500() {
        let mut host = FailingHost::default();
        let failure = request_time(&mut host).unwrap_err();
        assert_eq!(failure.reply.status, 500);
        assert!(failure.why.contains("clock"), "{}", failure.why);
        host.clock = Some(1_700_000_000_000);
        assert_eq!(request_time(&mut host), Ok(1_700_000_000_000));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_edit_that_does_not_apply_answers_500_and_stops() {
        let edits = Edits {
            remove: vec!["x-user-email".into(), "cookie".into()],
            set: vec![("x-user".into(), "alice".into())],
        };
        for refused in ["x-user-email", "cookie", "x-user"] {
            let mut host = FailingHost {
                refuse: Some(refused),
                ..FailingHost::default()
            };
            let failure = apply_edits(&mut host, &edits).unwrap_err();
            assert_eq!(failure.reply.status, 500, "{refused}");
            assert!(failure.why.contains(refused), "{}", failure.why);
            // Nothing after the failed call is attempted.
            assert!(!host.done.iter().any(|done| done.contains("x-user=")));
        }
        let mut host = FailingHost::default();
        assert_eq!(apply_edits(&mut host, &edits), Ok(()));
        assert_eq!(host.done, ["-x-user-email", "-cookie", "x-user=alice"]);
    }
}
