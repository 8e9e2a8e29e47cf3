//! Where a request's time goes, measured inside Envoy's V8 rather than under
//! another runtime (`make profile`). Only a module built with the `profile`
//! feature times anything: the host installs a clock when the VM's environment
//! has `OIDC_FILTER_TEST_ONLY_PROFILE=1`, a [`span`] around a phase adds its time
//! to that phase's total, and the host reports the totals as counters. In the
//! release module a span is an empty value and the core never reads a clock.

#[cfg(any(test, feature = "profile"))]
pub use timing::{install, span, take, time_the_clock, Span};

/// The release module's spans: nothing to measure, nothing compiled.
#[cfg(not(any(test, feature = "profile")))]
mod off {
    use super::Phase;

    pub struct Span;

    impl Span {
        #[inline(always)]
        pub fn end(self) {}
    }

    #[inline(always)]
    pub fn span(_phase: Phase) -> Span {
        Span
    }

    #[inline(always)]
    pub fn time_the_clock() {}
}

#[cfg(not(any(test, feature = "profile")))]
pub use off::{span, time_the_clock, Span};

macro_rules! phases {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Phase { $($variant),* }

        impl Phase {
            pub const ALL: &'static [Phase] = &[$(Phase::$variant),*];

            /// The stat name after `profile.`.
            pub fn name(self) -> &'static str {
                match self { $(Phase::$variant => $name),* }
            }

            pub fn help(self) -> &'static str {
                match self { $(Phase::$variant => $help),* }
            }
        }
    };
}

phases! {
    Callback => "request_headers_callback", "the filter's whole request-headers callback, as the VM sees it";
    ReadHeaders => "read_headers", "reading the request headers from Envoy into the core's map";
    Decide => "decide", "the core's whole decision (pipeline::decide)";
    Extract => "extract", "finding tokens in their configured locations";
    CacheLookup => "token_cache_lookup", "hashing the token and looking it up in the verified-token cache";
    Parse => "parse", "splitting, base64-decoding and JSON-parsing a token";
    Claims => "claims", "issuer, rule, time and audience checks";
    Verify => "verify", "the signature check (key selection and the crypto)";
    CacheInsert => "token_cache_insert", "remembering a verified token, evicting if full";
    Authorize => "authorize", "the authorization policies";
    ApplyEdits => "apply_edits", "removing and setting request headers in Envoy";
    ContextCreate => "context_create", "making the request's context (the root's create_http_context)";
    ResponseCallback => "response_headers_callback", "the filter's whole response-headers callback";
    ContextDelete => "context_delete", "releasing what was kept for the request (the context's drop)";
    Clock => "clock_pair", "two clock reads back to back: the cost of measuring itself";
}

#[cfg(any(test, feature = "profile"))]
mod timing {
    use super::Phase;
    use std::cell::{Cell, RefCell};

    type Totals = Vec<(u64, u64)>;

    thread_local! {
        static CLOCK: Cell<Option<fn() -> u64>> = const { Cell::new(None) };
        static TOTALS: RefCell<Totals> = const { RefCell::new(Vec::new()) };
    }

    /// From now on spans are timed with `clock` (nanoseconds, monotonic).
    pub fn install(clock: fn() -> u64) {
        CLOCK.with(|cell| cell.set(Some(clock)));
    }

    fn clock() -> Option<fn() -> u64> {
        CLOCK.with(Cell::get)
    }

    /// Times `phase` until the span is dropped.
    #[must_use]
    pub fn span(phase: Phase) -> Span {
        Span {
            phase,
            start: clock().map(|clock| clock()),
        }
    }

    pub struct Span {
        phase: Phase,
        start: Option<u64>,
    }

    impl Span {
        /// Ends the span here rather than at the end of its scope.
        pub fn end(self) {}
    }

    impl Drop for Span {
        fn drop(&mut self) {
            let (Some(start), Some(clock)) = (self.start, clock()) else {
                return;
            };
            add(self.phase, clock().saturating_sub(start));
        }
    }

    fn add(phase: Phase, nanos: u64) {
        TOTALS.with(|totals| {
            let Ok(mut totals) = totals.try_borrow_mut() else {
                return;
            };
            if totals.len() < Phase::ALL.len() {
                totals.resize(Phase::ALL.len(), (0, 0));
            }
            if let Some((total, count)) = totals.get_mut(phase as usize) {
                *total = total.saturating_add(nanos);
                *count = count.saturating_add(1);
            }
        });
    }

    #[cfg(test)]
    pub fn uninstall() {
        CLOCK.with(|cell| cell.set(None));
    }

    /// Measures the clock itself once (two reads), into [`Phase::Clock`].
    pub fn time_the_clock() {
        drop(span(Phase::Clock));
    }

    /// Each phase's total nanoseconds and number of spans since the last call.
    pub fn take() -> Vec<(Phase, u64, u64)> {
        let totals =
            TOTALS.with(|totals| totals.try_borrow_mut().map(|mut t| std::mem::take(&mut *t)));
        Phase::ALL
            .iter()
            .zip(totals.unwrap_or_default())
            .filter(|(_, (_, count))| *count > 0)
            .map(|(phase, (nanos, count))| (*phase, nanos, count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::timing::*;
    use super::*;
    use std::cell::Cell;
    use wasm_bindgen_test::wasm_bindgen_test;

    thread_local! {
        static NOW: Cell<u64> = const { Cell::new(0) };
    }

    fn fake_clock() -> u64 {
        NOW.with(|now| {
            now.set(now.get() + 10);
            now.get()
        })
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn spans_cost_nothing_until_a_clock_is_installed_then_add_up_per_phase() {
        drop(span(Phase::Parse));
        assert!(take().is_empty());
        install(fake_clock);
        {
            let _outer = span(Phase::Decide);
            drop(span(Phase::Parse));
            drop(span(Phase::Parse));
        }
        assert_eq!(take(), [(Phase::Decide, 50, 1), (Phase::Parse, 20, 2)]);
        assert!(take().is_empty());
        uninstall();
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn phase_names_are_unique_and_stat_safe() {
        let mut names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Phase::ALL.len());
        for (index, phase) in Phase::ALL.iter().enumerate() {
            assert_eq!(*phase as usize, index);
            assert!(phase
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!phase.help().is_empty());
        }
    }
}
