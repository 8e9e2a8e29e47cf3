//! Request paths as rules see them. A path like `/static/../admin` or `//admin`
//! could match a public or allowed pattern here and then reach `/admin` upstream
//! after the app normalizes it, so rules match the normalized path, and only an
//! already-clean path may be public.

/// The path without query or fragment, with `.`/`..` segments resolved and
/// repeated slashes merged (RFC 3986 5.2.4, and Envoy's `merge_slashes`).
pub fn normalized(raw: &str) -> String {
    let path = without_query(raw);
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut result = format!("/{}", segments.join("/"));
    let keeps_trailing_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if keeps_trailing_slash && result.len() > 1 {
        result.push('/');
    }
    result
}

pub fn without_query(raw: &str) -> &str {
    raw.split(['?', '#']).next().unwrap_or("/")
}

/// True when the path is already in normal form and hides nothing in escapes that
/// an upstream might decode into `/`, `\` or `.`.
pub fn is_clean(raw: &str) -> bool {
    let path = without_query(raw);
    let lowered = path.to_ascii_lowercase();
    let hidden = ["%2e", "%2f", "%5c"]
        .iter()
        .any(|escape| lowered.contains(escape));
    path.starts_with('/') && !hidden && !path.contains('\\') && normalized(path) == path
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn resolves_dots_and_merges_slashes() {
        let cases = [
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/static/../admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b/", "/a/b/"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/", "/"),
            ("/x?y=/../z", "/x"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalized(raw), expected, "{raw}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_plain_paths_are_clean() {
        for clean in ["/", "/healthz", "/static/app.js", "/a/b/?q=../x"] {
            assert!(is_clean(clean), "{clean}");
        }
        for unclean in [
            "/static/../admin",
            "//admin",
            "/static/%2e%2e/admin",
            "/a%2Fb",
            "/a\\b",
            "/./a",
            "relative",
        ] {
            assert!(!is_clean(unclean), "{unclean}");
        }
    }
}
