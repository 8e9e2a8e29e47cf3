//! Istio's string matching: exact, `prefix*`, `*suffix`, and `*` for any
//! non-empty value.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Present,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        if text == "*" {
            return Ok(Pattern::Present);
        }
        let pattern = if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_string())
        } else if let Some(suffix) = text.strip_prefix('*') {
            Pattern::Suffix(suffix.to_string())
        } else {
            Pattern::Exact(text.to_string())
        };
        let inner = match &pattern {
            Pattern::Exact(s) | Pattern::Prefix(s) | Pattern::Suffix(s) => s,
            Pattern::Present => "",
        };
        if inner.contains('*') {
            return Err(format!(
                "`{text}`: only exact, `prefix*`, `*suffix` or `*` are supported"
            ));
        }
        Ok(pattern)
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(exact) => value == exact,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Pattern::Present => !value.is_empty(),
        }
    }

    /// The pattern as it was written, for messages.
    pub fn written(&self) -> String {
        match self {
            Pattern::Exact(s) => s.clone(),
            Pattern::Prefix(s) => format!("{s}*"),
            Pattern::Suffix(s) => format!("*{s}"),
            Pattern::Present => "*".to_string(),
        }
    }

    /// The same pattern for ASCII-case-insensitive matching (hosts).
    pub fn lowercased(&self) -> Pattern {
        match self {
            Pattern::Exact(s) => Pattern::Exact(s.to_ascii_lowercase()),
            Pattern::Prefix(s) => Pattern::Prefix(s.to_ascii_lowercase()),
            Pattern::Suffix(s) => Pattern::Suffix(s.to_ascii_lowercase()),
            Pattern::Present => Pattern::Present,
        }
    }
}

/// A `namespaces` (or `source.namespace`) value as Istio translates it: the regex
/// `.*/ns/<value>/.*` (each `*` of the value `.*`) over the peer's whole identity,
/// so any `/ns/<value>/` in it counts, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePattern {
    /// `*/ns/<value>/*`, matched whole with `*` for any run of characters.
    glob: String,
}

impl NamespacePattern {
    pub fn parse(text: &str) -> Result<NamespacePattern, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(NamespacePattern {
            glob: format!("*/ns/{text}/*"),
        })
    }

    /// `principal` is the peer's identity without `spiffe://`.
    pub fn matches(&self, principal: &str) -> bool {
        glob_matches(self.glob.as_bytes(), principal.as_bytes())
    }
}

/// A `serviceAccounts` value (`<namespace>/<name>`) as Istio translates it: the
/// regex `spiffe://.+/ns/<namespace>/(.+/|)sa/<name>(/.+)?` over the peer's
/// identity, any trust domain. Names are literal (Istio quotes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountPattern {
    /// `/ns/<namespace>/`
    namespace: String,
    /// `sa/<name>`
    account: String,
}

impl ServiceAccountPattern {
    /// `<namespace>/<name>`; the short `<name>` needs the policy's namespace, which
    /// a bare `spec` does not have.
    pub fn parse(text: &str) -> Result<ServiceAccountPattern, String> {
        let Some((namespace, name)) = text.split_once('/') else {
            return Err(format!(
                "`{text}`: write `<namespace>/{text}` (a policy given as a bare spec has no \
                 namespace of its own)"
            ));
        };
        let label = |part: &str| {
            !part.is_empty() && !part.contains(['/', '*']) && !part.contains(char::is_whitespace)
        };
        if !label(namespace) || !label(name) {
            return Err(format!(
                "`{text}` is not `<namespace>/<service account>` (no wildcards)"
            ));
        }
        Ok(ServiceAccountPattern {
            namespace: format!("/ns/{namespace}/"),
            account: format!("sa/{name}"),
        })
    }

    /// `principal` is the peer's identity without `spiffe://`.
    pub fn matches(&self, principal: &str) -> bool {
        let mut from = 0;
        while let Some(found) = principal
            .get(from..)
            .and_then(|rest| rest.find(&self.namespace))
        {
            let at = from + found;
            // A non-empty trust domain before `/ns/`.
            if at > 0 {
                let rest = principal
                    .get(at + self.namespace.len()..)
                    .unwrap_or_default();
                if self.account_in(rest) {
                    return true;
                }
            }
            from = at + 1;
        }
        false
    }

    /// `rest` (after `/ns/<namespace>/`) is `(.+/|)sa/<name>(/.+)?`.
    fn account_in(&self, rest: &str) -> bool {
        let mut from = 0;
        while let Some(found) = rest.get(from..).and_then(|tail| tail.find(&self.account)) {
            let at = from + found;
            let before_ok = at == 0 || (at >= 2 && rest.as_bytes().get(at - 1) == Some(&b'/'));
            let after = rest.get(at + self.account.len()..).unwrap_or_default();
            let after_ok = after.is_empty() || (after.len() > 1 && after.starts_with('/'));
            if before_ok && after_ok {
                return true;
            }
            from = at + 1;
        }
        false
    }
}

/// A `trustDomains` value as Istio translates it: the trust domain of the peer's
/// SPIFFE identity (up to its first `/`) is the value, or any for `*`, or with one
/// `*` inside, starts and ends as the value does (`[^/]*` for the `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDomainPattern {
    /// Before and after the `*`; `None` without one (an exact trust domain).
    parts: (String, Option<String>),
}

impl TrustDomainPattern {
    pub fn parse(text: &str) -> Result<TrustDomainPattern, String> {
        if text.is_empty() || text.contains('/') || text.matches('*').count() > 1 {
            return Err(format!(
                "`{text}` is not a trust domain, `*`, or a trust domain with one `*`"
            ));
        }
        let parts = match text.split_once('*') {
            Some((before, after)) => (before.to_string(), Some(after.to_string())),
            None => (text.to_string(), None),
        };
        Ok(TrustDomainPattern { parts })
    }

    /// `principal` is the peer's identity without `spiffe://`.
    pub fn matches(&self, principal: &str) -> bool {
        let Some((domain, _)) = principal.split_once('/') else {
            return false;
        };
        match &self.parts {
            (exact, None) => domain == exact,
            (before, Some(after)) => {
                domain.len() >= before.len() + after.len()
                    && domain.starts_with(before.as_str())
                    && domain.ends_with(after.as_str())
            }
        }
    }
}

/// `text` whole against `pattern`, where `*` is any run of bytes (`.*`) and every
/// other byte is itself. Linear backtracking to the last `*`: no blow-up.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(&byte) if text.get(t) == Some(&byte) => {
                p += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star, from)) => {
                    p = star + 1;
                    t = from + 1;
                    last_star = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

/// A `requestPrincipals` (or `request.auth.principal`) value as Istio translates
/// it: split at its last `/` into an issuer and a subject, each matched on its own
/// (`iss` and `sub` of the token), not the value against `iss/sub` as one string.
/// So `https://idp.test/*` is the issuer `https://idp.test` with any subject (not
/// the issuer `https://idp.test/x`), and a value without `/` is an issuer with an
/// empty subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalPattern {
    issuer: Part,
    subject: Part,
}

/// One side of a [`PrincipalPattern`]: Envoy's string matchers as Istio emits them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// `.+`: any non-empty value.
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Part {
    fn matches(&self, value: &str) -> bool {
        match self {
            Part::Any => !value.is_empty(),
            Part::Exact(exact) => value == exact,
            Part::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Part::Suffix(suffix) => value.ends_with(suffix.as_str()),
        }
    }
}

impl PrincipalPattern {
    /// Istio's `requestPrincipalGenerator`, case by case.
    pub fn parse(text: &str) -> Result<PrincipalPattern, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        let split = text.rfind('/').map(|slash| {
            let (issuer, subject) = text.split_at(slash);
            (issuer, subject.get(1..).unwrap_or_default())
        });
        let (issuer, subject) = if text == "*" {
            (Part::Any, Part::Any)
        } else if let Some(rest) = text.strip_prefix('*') {
            match split {
                Some(("*", subject)) => (Part::Any, Part::Exact(subject.into())),
                Some((issuer, subject)) => (
                    Part::Suffix(issuer.get(1..).unwrap_or_default().into()),
                    Part::Exact(subject.into()),
                ),
                None => (Part::Any, Part::Suffix(rest.into())),
            }
        } else if let Some(rest) = text.strip_suffix('*') {
            match split {
                Some((issuer, "*")) => (Part::Exact(issuer.into()), Part::Any),
                Some((issuer, subject)) => (
                    Part::Exact(issuer.into()),
                    Part::Prefix(subject.strip_suffix('*').unwrap_or(subject).into()),
                ),
                None => (Part::Prefix(rest.into()), Part::Any),
            }
        } else {
            let (issuer, subject) = split.unwrap_or((text, ""));
            (Part::Exact(issuer.into()), Part::Exact(subject.into()))
        };
        Ok(PrincipalPattern { issuer, subject })
    }

    /// `principal` is the token's (`iss`, `sub`).
    pub fn matches(&self, principal: (&str, &str)) -> bool {
        self.issuer.matches(principal.0) && self.subject.matches(principal.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Istio's `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`.
    #[wasm_bindgen_test(unsupported = test)]
    fn service_accounts_match_istios_regex() {
        let sleep = ServiceAccountPattern::parse("foo/sleep").unwrap();
        for (principal, expected) in [
            ("cluster.local/ns/foo/sa/sleep", true),
            ("other.td/ns/foo/sa/sleep", true),
            ("cluster.local/ns/foo/sa/sleep/extra", true),
            ("cluster.local/ns/foo/k/v/sa/sleep", true),
            ("cluster.local/ns/foo/sa/sleep-2", false),
            ("cluster.local/ns/foo/sa/sleep/", false),
            ("cluster.local/ns/bar/sa/sleep", false),
            ("cluster.local/ns/foo/sa/sleepy", false),
            ("/ns/foo/sa/sleep", false),
            ("cluster.local/ns/bar/sa/x/ns/foo/sa/sleep", true),
            ("cluster.local/ns/foo//sa/sleep", false),
        ] {
            assert_eq!(sleep.matches(principal), expected, "{principal}");
        }
        for bad in ["sleep", "foo/", "/sleep", "foo/sl*", "a/b/c", "f o/x"] {
            assert!(ServiceAccountPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn trust_domains_match_the_first_segment() {
        let cases = [
            ("cluster.local", "cluster.local/ns/a/sa/b", true),
            ("cluster.local", "cluster.local.evil/ns/a/sa/b", false),
            ("*", "any.td/ns/a/sa/b", true),
            ("*.local", "cluster.local/ns/a/sa/b", true),
            ("*.local", "cluster.locals/ns/a/sa/b", false),
            ("prod-*", "prod-eu/ns/a/sa/b", true),
            ("a*a", "a/ns/x", false),
            ("a*a", "aa/ns/x", true),
        ];
        for (pattern, principal, expected) in cases {
            assert_eq!(
                TrustDomainPattern::parse(pattern)
                    .unwrap()
                    .matches(principal),
                expected,
                "{pattern} vs {principal}"
            );
        }
        for bad in ["", "a/b", "**", "a*b*c"] {
            assert!(TrustDomainPattern::parse(bad).is_err(), "{bad}");
        }
    }

    /// Istio's `.*/ns/<value>/.*` over the whole identity.
    #[wasm_bindgen_test(unsupported = test)]
    fn namespaces_match_any_ns_segment_of_the_identity() {
        let cases = [
            ("foo", "cluster.local/ns/foo/sa/sleep", true),
            ("foo", "cluster.local/ns/foobar/sa/sleep", false),
            ("foo", "cluster.local/ns/bar/sa/x/ns/foo/y", true),
            ("foo", "cluster.local/ns/bar/sa/foo", false),
            ("f*", "cluster.local/ns/foo/sa/sleep", true),
            ("*o", "cluster.local/ns/foo/sa/sleep", true),
            ("f*o", "cluster.local/ns/foo/sa/sleep", true),
            // `.*` crosses `/`, as the regex does.
            ("f*", "cluster.local/ns/f/x/sa/y", true),
            ("*", "cluster.local/ns/foo/sa/sleep", true),
            ("*", "cluster.local/sa/sleep", false),
            ("foo", "", false),
        ];
        for (pattern, principal, expected) in cases {
            assert_eq!(
                NamespacePattern::parse(pattern).unwrap().matches(principal),
                expected,
                "{pattern} vs {principal}"
            );
        }
        assert!(!glob_matches(b"a*b*c", b"abcab"));
        assert!(glob_matches(b"a*b*c", b"aXbYbZc"));
        assert!(glob_matches(b"**", b""));
        assert!(!glob_matches(b"", b"x"));
    }

    /// Each value as Istio's translation matches it against `iss` and `sub`.
    #[wasm_bindgen_test(unsupported = test)]
    fn request_principals_split_at_the_last_slash() {
        let cases = [
            ("*", ("https://idp.test", "alice"), true),
            ("*", ("https://idp.test", ""), false),
            (
                "https://idp.test/alice",
                ("https://idp.test", "alice"),
                true,
            ),
            (
                "https://idp.test/alice",
                ("https://idp.test/x", "alice"),
                false,
            ),
            // The issuer exactly, any subject: not an issuer that only starts so.
            ("https://idp.test/*", ("https://idp.test", "bob"), true),
            (
                "https://idp.test/*",
                ("https://idp.test/tenant", "bob"),
                false,
            ),
            ("https://idp.test/*", ("https://idp.test", ""), false),
            ("https://idp.test/b*", ("https://idp.test", "bob"), true),
            ("https://idp.test/b*", ("https://idp.test", "alice"), false),
            ("*/alice", ("https://any.test", "alice"), true),
            ("*/alice", ("https://any.test", "alice2"), false),
            ("*.test/alice", ("https://idp.test", "alice"), true),
            ("*@example.com", ("https://idp.test", "a@example.com"), true),
            (
                "*@example.com",
                ("https://idp.test/a@example.com", "x"),
                false,
            ),
            // The last `/` is the scheme's: issuer `https:/`, subject prefix `idp`.
            ("https://idp*", ("https://idp.test", "bob"), false),
            ("https://idp*", ("https:/", "idp-x"), true),
            ("idp*", ("idp.test", "bob"), true),
            ("idp*", ("other", "bob"), false),
            // No `/`: an issuer with an empty subject.
            ("https:", ("https:", ""), true),
            ("issuer", ("issuer", "alice"), false),
        ];
        for (pattern, principal, expected) in cases {
            assert_eq!(
                PrincipalPattern::parse(pattern).unwrap().matches(principal),
                expected,
                "{pattern} vs {principal:?}"
            );
        }
        assert!(PrincipalPattern::parse("").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn istio_match_forms() {
        let cases = [
            ("/api", "/api", true),
            ("/api", "/api/", false),
            ("/api/*", "/api/v1", true),
            ("/api/*", "/apix", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("*", "anything", true),
            ("*", "", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::parse(pattern).unwrap().matches(value),
                expected,
                "{pattern} vs {value}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_other_wildcards() {
        for bad in ["", "a*b", "*a*", "**"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
