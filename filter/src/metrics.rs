//! What the filter counts, under one prefix. The core counts into plain integers;
//! the host copies them into Envoy stats on its timer, so a request never pays a
//! host call for metrics.

use crate::response::AuthError;

/// Every stat name starts with this (Envoy shows them as `wasmcustom.<name>`, and
/// the Prometheus endpoint as `<name>` with `.` written `_`).
pub const PREFIX: &str = "oidc_filter";

macro_rules! counters {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter { $($variant),* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$variant),*];

            /// The stat name without [`PREFIX`].
            pub fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name),* }
            }

            pub fn help(self) -> &'static str {
                match self { $(Counter::$variant => $help),* }
            }
        }
    };
}

counters! {
    AllowedToken => "requests_allowed.token", "allowed with a valid bearer token";
    AllowedSession => "requests_allowed.session", "allowed with a valid session cookie";
    AllowedPublic => "requests_allowed.public_path", "allowed without authentication (publicPaths)";
    AllowedAnonymous => "requests_allowed.anonymous", "allowed without a credential by the policies (allowMissing)";
    AllowedPreflight => "requests_allowed.cors_preflight", "CORS preflight let through without authentication (bypassCorsPreflight) and allowed by the policies";
    DeniedMissing => "requests_denied.jwt_missing", "401 Jwt is missing";
    DeniedInvalid => "requests_denied.jwt_invalid", "401 Jwt verification fails";
    DeniedMalformed => "requests_denied.jwt_malformed", "401 a malformed token (Jwt header is an invalid JSON, …)";
    DeniedExpired => "requests_denied.jwt_expired", "401 Jwt is expired";
    DeniedNotYetValid => "requests_denied.jwt_not_yet_valid", "401 Jwt not yet valid";
    DeniedUnknownIssuer => "requests_denied.jwt_unknown_issuer", "401 Jwt issuer is not configured";
    DeniedUnknownKey => "requests_denied.jwt_unknown_key", "401 Jwks doesn't have key to match kid or alg from Jwt";
    DeniedAudience => "requests_denied.jwt_audience", "403 Audiences in Jwt are not allowed";
    DeniedJwksUnavailable => "requests_denied.jwks_unavailable", "401 Jwks remote fetch is failed";
    DeniedTokenInactive => "requests_denied.token_inactive", "401 Token is not active (introspection)";
    DeniedIntrospectionUnavailable => "requests_denied.introspection_unavailable", "503 Token introspection is unavailable (fail closed)";
    IntrospectionCalls => "introspection.calls", "introspection endpoint called";
    IntrospectionCacheHits => "introspection.cache_hit", "token answered from the introspection cache";
    IntrospectionActive => "introspection.active", "introspection answered active (and acceptable)";
    IntrospectionInactive => "introspection.inactive", "introspection answered not active, or active but not acceptable (audience, issuer, times)";
    IntrospectionFailures => "introspection.failed", "introspection call failed (unreachable, timeout, non-200, malformed reply, refused at dispatch, no room)";
    DeniedRbac => "requests_denied.rbac", "403 RBAC: access denied";
    DeniedNoSession => "requests_denied.no_session", "401 for an API request without session or token";
    DeniedInvalidAuthority => "requests_denied.invalid_authority", "400 the Host (:authority) is not host[:port]";
    AuditMatched => "policies.audit_matched", "an AUDIT policy matched a request (its decision unchanged)";
    DryRunAllowed => "policies.dry_run_allowed", "the dry-run policies would have allowed a request";
    DryRunDenied => "policies.dry_run_denied", "the dry-run policies would have denied a request";
    LoginStarted => "login.started", "browser sent to the identity provider";
    LoginCompleted => "login.completed", "callback exchanged and a session issued";
    LoginFailed => "login.failed", "callback rejected or token exchange failed";
    LoginReplayed => "login.replayed", "callback sent again: answered without calling the identity provider";
    RefreshSucceeded => "refresh.succeeded", "session renewed with its refresh token";
    RefreshFailed => "refresh.failed", "refresh failed: the user logs in again";
    Logout => "logout", "logout path served";
    JwksFetchSucceeded => "jwks_fetch.succeeded", "JWKS fetched and parsed";
    JwksFetchFailed => "jwks_fetch.failed", "JWKS fetch or parse failed";
    DiscoveryFetchSucceeded => "discovery_fetch.succeeded", "OpenID discovery document fetched";
    DiscoveryFetchFailed => "discovery_fetch.failed", "OpenID discovery fetch or parse failed";
    TokenCacheHit => "token_cache.hit", "token served from the verified-token cache";
    TokenCacheMiss => "token_cache.miss", "token parsed and its signature checked";
    SessionCacheHit => "session_cache.hit", "session served from the session cache";
    SessionCacheMiss => "session_cache.miss", "session cookie decrypted and parsed";
    SignatureHostFailures => "signature_verification.host_failures", "the host's verify_signature failed (refused, no or unreadable result): that signature counted as not verified";
}

impl Counter {
    pub fn denied(error: AuthError) -> Self {
        match error {
            AuthError::Missing => Self::DeniedMissing,
            AuthError::VerificationFails => Self::DeniedInvalid,
            AuthError::Expired => Self::DeniedExpired,
            AuthError::NotYetValid => Self::DeniedNotYetValid,
            AuthError::UnknownIssuer => Self::DeniedUnknownIssuer,
            AuthError::KidAlgMismatch => Self::DeniedUnknownKey,
            AuthError::AudienceNotAllowed => Self::DeniedAudience,
            AuthError::JwksFetchFailed => Self::DeniedJwksUnavailable,
            AuthError::Inactive => Self::DeniedTokenInactive,
            AuthError::IntrospectionUnavailable => Self::DeniedIntrospectionUnavailable,
            AuthError::BadFormat
            | AuthError::HeaderBadBase64
            | AuthError::HeaderBadJson
            | AuthError::HeaderBadAlg
            | AuthError::AlgNotSupported
            | AuthError::HeaderBadKid
            | AuthError::PayloadBadBase64
            | AuthError::PayloadBadJson
            | AuthError::ClaimNotString(_)
            | AuthError::ClaimNotInteger(_)
            | AuthError::ClaimOutOfRange(_)
            | AuthError::AudNotStringList
            | AuthError::SignatureBadBase64
            | AuthError::Ed25519WrongLength => Self::DeniedMalformed,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the request was forwarded (`Some(Allowed)`) or answered 401/403
    /// (`Some(Denied)`), for the per-app counters; `None` for everything else.
    pub fn outcome(self) -> Option<AppCounter> {
        let name = self.name();
        if name.starts_with("requests_allowed.") {
            Some(AppCounter::Allowed)
        } else if name.starts_with("requests_denied.") {
            Some(AppCounter::Denied)
        } else {
            None
        }
    }
}

/// Each app's own count of allowed and denied requests, so that an operator of a
/// gateway sees which app fails: `<PREFIX>.app.<name>.requests_allowed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCounter {
    Allowed,
    Denied,
}

impl AppCounter {
    pub const ALL: [AppCounter; 2] = [AppCounter::Allowed, AppCounter::Denied];

    /// The stat name without [`PREFIX`].
    pub fn name(self, app: &str) -> String {
        match self {
            AppCounter::Allowed => format!("app.{app}.requests_allowed"),
            AppCounter::Denied => format!("app.{app}.requests_denied"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Gauges, set from the VM's state when stats are copied out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    TokenCacheEntries,
    TokenCacheBytes,
    SessionCacheEntries,
    SessionCacheBytes,
    VmMemoryBytes,
    /// 1 from each plugin (in each VM) whose RS*/ES* signatures the host verifies.
    SignatureVerificationHost,
    IntrospectionCacheEntries,
    IntrospectionCacheBytes,
    IntrospectionInFlight,
}

impl Gauge {
    pub const ALL: &'static [Gauge] = &[
        Gauge::TokenCacheEntries,
        Gauge::TokenCacheBytes,
        Gauge::SessionCacheEntries,
        Gauge::SessionCacheBytes,
        Gauge::VmMemoryBytes,
        Gauge::SignatureVerificationHost,
        Gauge::IntrospectionCacheEntries,
        Gauge::IntrospectionCacheBytes,
        Gauge::IntrospectionInFlight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gauge::TokenCacheEntries => "token_cache.entries",
            Gauge::TokenCacheBytes => "token_cache.bytes",
            Gauge::SessionCacheEntries => "session_cache.entries",
            Gauge::SessionCacheBytes => "session_cache.bytes",
            Gauge::VmMemoryBytes => "vm_memory_bytes",
            Gauge::SignatureVerificationHost => "signature_verification.host",
            Gauge::IntrospectionCacheEntries => "introspection.cache_entries",
            Gauge::IntrospectionCacheBytes => "introspection.cache_bytes",
            Gauge::IntrospectionInFlight => "introspection.in_flight",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One reporter's share of each gauge. Envoy keeps a single gauge per name for
/// every VM (the main thread's and each worker's) and every plugin in a VM; were
/// each to set its own value, the gauge would show whichever wrote last. So each
/// reporter adds the change of its value since its last report, and the gauge is
/// the sum over all of them.
#[derive(Debug, Default, Clone)]
pub struct GaugeShares {
    reported: Vec<u64>,
}

impl GaugeShares {
    /// What to add to the gauge so that this reporter's share becomes `value`.
    pub fn change_to(&mut self, gauge: Gauge, value: u64) -> i64 {
        if self.reported.len() < Gauge::ALL.len() {
            self.reported.resize(Gauge::ALL.len(), 0);
        }
        let Some(reported) = self.reported.get_mut(gauge.index()) else {
            return 0;
        };
        let change = i128::from(value) - i128::from(*reported);
        let change = i64::try_from(change).unwrap_or(if change < 0 { i64::MIN } else { i64::MAX });
        *reported = value;
        change
    }
}

/// Counts since the VM started, and how much of each the host has already
/// passed on to Envoy.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    counts: Vec<u64>,
    reported: Vec<u64>,
    /// Per app (by position in `apps`), per [`AppCounter`]: counted, reported.
    apps: Vec<[(u64, u64); 2]>,
    /// Log lines of what AUDIT and dry-run policies saw, until the host logs them.
    notes: Vec<String>,
}

/// Most notes kept between two requests; past it the oldest go.
const MAX_NOTES: usize = 16;

impl Counters {
    /// A line for the log (see `notes`), bounded.
    pub fn note(&mut self, line: String) {
        if self.notes.len() >= MAX_NOTES {
            self.notes.remove(0);
        }
        self.notes.push(line);
    }

    /// The lines noted since the last call, for the host to log.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn add(&mut self, counter: Counter) {
        self.add_many(counter, 1);
    }

    /// [`Counters::add`], and for a request of app `app` (`None`: the top level)
    /// its allowed or denied count too.
    pub fn add_for(&mut self, app: Option<usize>, counter: Counter) {
        self.add(counter);
        let (Some(app), Some(outcome)) = (app, counter.outcome()) else {
            return;
        };
        if self.apps.len() <= app {
            self.apps.resize(app.saturating_add(1), [(0, 0); 2]);
        }
        if let Some((count, _)) = self
            .apps
            .get_mut(app)
            .and_then(|counts| counts.get_mut(outcome.index()))
        {
            *count = count.saturating_add(1);
        }
    }

    pub fn get_for(&self, app: usize, counter: AppCounter) -> u64 {
        self.apps
            .get(app)
            .and_then(|counts| counts.get(counter.index()))
            .map_or(0, |(count, _)| *count)
    }

    /// What changed per app since the last call, marking it reported.
    pub fn take_unreported_apps(&mut self) -> Vec<(usize, AppCounter, u64)> {
        let mut changed = Vec::new();
        for (app, counts) in self.apps.iter_mut().enumerate() {
            for (counter, (count, reported)) in AppCounter::ALL.iter().zip(counts.iter_mut()) {
                if count > reported {
                    changed.push((app, *counter, *count - *reported));
                    *reported = *count;
                }
            }
        }
        changed
    }

    pub fn add_many(&mut self, counter: Counter, amount: u64) {
        if self.counts.len() < Counter::ALL.len() {
            self.counts.resize(Counter::ALL.len(), 0);
        }
        if let Some(count) = self.counts.get_mut(counter.index()) {
            *count = count.saturating_add(amount);
        }
    }

    /// For counts kept elsewhere (the caches count their own hits): the total so far.
    pub fn set_total(&mut self, counter: Counter, total: u64) {
        let current = self.get(counter);
        if total > current {
            self.add_many(counter, total - current);
        }
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.counts.get(counter.index()).copied().unwrap_or(0)
    }

    /// What changed since the last call, marking it reported.
    pub fn take_unreported(&mut self) -> Vec<(Counter, u64)> {
        self.reported.resize(self.counts.len(), 0);
        let mut changed = Vec::new();
        for ((counter, count), reported) in Counter::ALL
            .iter()
            .zip(&self.counts)
            .zip(self.reported.iter_mut())
        {
            if count > reported {
                changed.push((*counter, count - *reported));
                *reported = *count;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn names_are_unique_and_stat_safe() {
        let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.extend(Gauge::ALL.iter().map(|g| g.name()));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate metric name");
        for name in names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.'),
                "{name}"
            );
        }
        for (index, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.index(), index);
        }
        for (index, gauge) in Gauge::ALL.iter().enumerate() {
            assert_eq!(gauge.index(), index);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn gauge_shares_add_up_across_reporters() {
        // Two reporters (two workers' VMs) feeding one Envoy gauge.
        let (mut first, mut second) = (GaugeShares::default(), GaugeShares::default());
        let mut envoy_gauge = 0i64;
        envoy_gauge += first.change_to(Gauge::TokenCacheEntries, 3);
        envoy_gauge += second.change_to(Gauge::TokenCacheEntries, 5);
        assert_eq!(envoy_gauge, 8);
        envoy_gauge += first.change_to(Gauge::TokenCacheEntries, 1);
        envoy_gauge += second.change_to(Gauge::TokenCacheEntries, 5);
        assert_eq!(envoy_gauge, 6);
        envoy_gauge += first.change_to(Gauge::TokenCacheEntries, 0);
        assert_eq!(envoy_gauge, 5);
        assert_eq!(first.change_to(Gauge::VmMemoryBytes, u64::MAX), i64::MAX);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_new_counts_are_reported() {
        let mut counters = Counters::default();
        assert!(counters.take_unreported().is_empty());
        counters.add(Counter::AllowedToken);
        counters.add_many(Counter::TokenCacheHit, 3);
        assert_eq!(
            counters.take_unreported(),
            [(Counter::AllowedToken, 1), (Counter::TokenCacheHit, 3)]
        );
        counters.add(Counter::AllowedToken);
        assert_eq!(counters.take_unreported(), [(Counter::AllowedToken, 1)]);
        assert!(counters.take_unreported().is_empty());
        assert_eq!(counters.get(Counter::AllowedToken), 2);
        counters.set_total(Counter::TokenCacheHit, 10);
        counters.set_total(Counter::TokenCacheHit, 4);
        assert_eq!(counters.take_unreported(), [(Counter::TokenCacheHit, 7)]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn apps_count_their_allowed_and_denied_requests_only() {
        let mut counters = Counters::default();
        counters.add_for(Some(1), Counter::AllowedSession);
        counters.add_for(Some(1), Counter::AllowedPublic);
        counters.add_for(Some(1), Counter::DeniedRbac);
        counters.add_for(Some(1), Counter::LoginStarted);
        counters.add_for(Some(0), Counter::DeniedMissing);
        counters.add_for(None, Counter::AllowedToken);
        assert_eq!(counters.get_for(1, AppCounter::Allowed), 2);
        assert_eq!(counters.get_for(1, AppCounter::Denied), 1);
        assert_eq!(counters.get_for(0, AppCounter::Denied), 1);
        assert_eq!(counters.get_for(2, AppCounter::Allowed), 0);
        assert_eq!(counters.get(Counter::AllowedToken), 1);
        assert_eq!(counters.get(Counter::LoginStarted), 1);
        assert_eq!(
            counters.take_unreported_apps(),
            [
                (0, AppCounter::Denied, 1),
                (1, AppCounter::Allowed, 2),
                (1, AppCounter::Denied, 1)
            ]
        );
        counters.add_for(Some(0), Counter::DeniedExpired);
        assert_eq!(
            counters.take_unreported_apps(),
            [(0, AppCounter::Denied, 1)]
        );
        assert_eq!(
            AppCounter::Allowed.name("grafana"),
            "app.grafana.requests_allowed"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_request_counter_is_an_allowed_or_denied_outcome() {
        for counter in Counter::ALL {
            let request = counter.name().starts_with("requests_");
            assert_eq!(counter.outcome().is_some(), request, "{counter:?}");
        }
        assert_eq!(Counter::DeniedNoSession.outcome(), Some(AppCounter::Denied));
        assert_eq!(
            Counter::AllowedAnonymous.outcome(),
            Some(AppCounter::Allowed)
        );
    }
}
