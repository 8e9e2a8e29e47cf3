//! Request paths as rules see them. A path like `/static/../admin` or `//admin`
//! could match a public or allowed pattern here and then reach `/admin` upstream
//! after the app normalizes it, so rules match the normalized path, and only an
//! already-clean path may be public.
//!
//! Path parameters: servlet containers (Tomcat, Jetty, Spring) cut each segment
//! at its first `;` before they resolve dot segments, so `/static/..;/admin` is
//! their `/admin` and `/admin;jsessionid=x` their `/admin`. Rules see the path
//! the same way; a segment that is only parameters (`/;x/admin`) is empty and
//! merged like `//`. Escapes are not decoded (as for `%2e`): `%3B` is data to
//! those servers, which decode after cutting parameters, but a server that
//! decodes first would cut there, so a path containing `;` or `%3B` is never
//! public.

/// The paths the policies judge a request by. The normalized path is what the
/// upstream serves; but Envoy routes on the path as the client sent it (unless
/// the connection manager sets `normalize_path`, as Istio does, and then the two
/// are one), so `/admin/..;/manager/html` goes to the `/admin` route's backend,
/// which serves `/manager/html`. A path not in normal form is therefore judged
/// under both readings, the raw one without its query as well: it is denied if
/// either is denied, and allowed only if both are allowed.
pub fn policy_readings(raw: &str) -> (String, Option<&str>) {
    let normal = normalized(raw);
    let as_sent = without_query(raw);
    let second = (as_sent != normal).then_some(as_sent);
    (normal, second)
}

/// The path without query or fragment, with path parameters (`;…`) cut from each
/// segment, `.`/`..` segments resolved (RFC 3986 5.2.4) and repeated slashes
/// merged (Envoy's `merge_slashes`).
pub fn normalized(raw: &str) -> String {
    let path = without_query(raw);
    let mut segments: Vec<&str> = Vec::new();
    let mut last = "";
    for segment in path.split('/') {
        last = segment.split(';').next().unwrap_or_default();
        match last {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let mut result = format!("/{}", segments.join("/"));
    // `/a/b/..` names the directory `/a/`, as `/a/b/` does.
    if matches!(last, "" | "." | "..") && result.len() > 1 {
        result.push('/');
    }
    result
}

pub fn without_query(raw: &str) -> &str {
    raw.split(['?', '#']).next().unwrap_or("/")
}

/// True when the path is already in normal form and hides nothing in escapes or
/// parameters that an upstream might turn into `/`, `\`, `.` or a cut segment.
pub fn is_clean(raw: &str) -> bool {
    let path = without_query(raw);
    let lowered = path.to_ascii_lowercase();
    // `;` starts path parameters, which servers cut (see the module comment);
    // `%3b` is one for a server that decodes before cutting.
    let hidden = [";", "%3b", "%2e", "%2f", "%5c"]
        .iter()
        .any(|marker| lowered.contains(marker));
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
            ("/a/b/.", "/a/b/"),
            ("/", "/"),
            ("", "/"),
            ("relative", "/relative"),
            ("/x?y=/../z", "/x"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalized(raw), expected, "{raw}");
        }
    }

    /// The servlet tricks: each path is what Tomcat, Jetty and Spring serve.
    #[wasm_bindgen_test(unsupported = test)]
    fn cuts_path_parameters_from_every_segment() {
        let cases = [
            ("/a;x=1/b;y", "/a/b"),
            ("/static/..;/admin", "/admin"),
            ("/static/..;x=1/admin", "/admin"),
            ("/static/.;/admin", "/static/admin"),
            ("/admin;jsessionid=ABC123", "/admin"),
            ("/admin;jsessionid=ABC123?next=/x", "/admin"),
            ("/admin;/", "/admin/"),
            ("/admin;/users", "/admin/users"),
            ("/;x/admin", "/admin"),
            ("/;/admin;", "/admin"),
            ("/a/b;c/../d", "/a/d"),
            ("/a/b/..;", "/a/"),
            ("/a;b;c", "/a"),
            ("/api/x?q=a;b", "/api/x"),
            // Escapes stay as they are, as for `%2e`: the servers above decode
            // `%3B` after cutting parameters, so it is data to them.
            ("/admin%3bx/y", "/admin%3bx/y"),
            ("/static/..%3B/admin", "/static/..%3B/admin"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalized(raw), expected, "{raw}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn paths_not_in_normal_form_are_also_judged_as_sent() {
        let cases = [
            ("/admin", ("/admin", None)),
            ("/admin?x=/../y;z", ("/admin", None)),
            (
                "/admin/..;/manager/html",
                ("/manager/html", Some("/admin/..;/manager/html")),
            ),
            (
                "/admin;jsessionid=1?q",
                ("/admin", Some("/admin;jsessionid=1")),
            ),
            ("/public/../admin", ("/admin", Some("/public/../admin"))),
            ("//admin", ("/admin", Some("//admin"))),
            ("/a/%2e%2e/b", ("/a/%2e%2e/b", None)),
        ];
        for (raw, (normal, second)) in cases {
            assert_eq!(policy_readings(raw), (normal.to_string(), second), "{raw}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_plain_paths_are_clean() {
        for clean in [
            "/",
            "/healthz",
            "/static/app.js",
            "/a/b/?q=../x",
            "/a?q=x;y",
        ] {
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
            "/static/..;/admin",
            "/static/app.js;jsessionid=x",
            "/static;/app.js",
            "/static/;x/app.js",
            "/admin;/",
            "/static/..%3b/admin",
            "/static/..%3B/admin",
            "/static/app.js%3bx",
        ] {
            assert!(!is_clean(unclean), "{unclean}");
        }
    }
}
