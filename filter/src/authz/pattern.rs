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

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

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
