//! A `paths` / `notPaths` value: Istio's string pattern (exact, `prefix*`,
//! `*suffix`, `*`), or a path template with `{*}` (one segment) and `{**}` (any
//! number of segments), which Istio 1.22+ translates into Envoy's
//! `uri_template` matcher (`envoy.path.match.uri_template`).
//!
//! A template is checked at load as Istio validates it (`CheckValidPathTemplate`)
//! and as Envoy parses it (a template Envoy would refuse would make istiod's RBAC
//! configuration fail), and matched as Envoy's regex of it matches: `{*}` is
//! `[pchar]+`, `{**}` is `[pchar/]*`, literals are themselves, the whole path
//! (without its query) must match.

use super::pattern::Pattern;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Glob(Pattern),
    Template(PathTemplate),
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if text.contains(ONE) || text.contains(ANY) {
            return PathTemplate::parse(text).map(PathPattern::Template);
        }
        if text.contains(['{', '}']) {
            return Err(format!(
                "`{text}`: `{{` or `}}` outside a path template `{{*}}` or `{{**}}` (Istio refuses it)"
            ));
        }
        Pattern::parse(text).map(PathPattern::Glob)
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Glob(pattern) => pattern.matches(path),
            PathPattern::Template(template) => template.matches(path),
        }
    }
}

const ONE: &str = "{*}";
const ANY: &str = "{**}";

/// Parsed template: the pieces in order, `/` separators included in literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `{*}`: one or more pchars (no `/`).
    OneSegment,
    /// `{**}`: zero or more pchars or `/`. Only literals may follow it.
    AnySegments,
}

/// What `{*}` and `{**}` match in a segment: Envoy 1.40's template character
/// class `a-zA-Z0-9-._~%!$&'()+,;:@=*` (RFC 3986 pchar: unreserved, `%`, the
/// sub-delims, `:`, `@`). Observed in Envoy 1.40 (the differential test sends
/// `=`); older Envoy sources leave out `=` and `*`.
fn is_pchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=*".contains(&byte)
}

/// A literal segment of a template, as Istio's `IsValidLiteral` accepts it: the
/// pchars but `*` (a `*` beside a template is Istio's error, not a glob).
fn is_literal(segment: &str) -> bool {
    segment.bytes().all(|b| b != b'*' && is_pchar(b))
}

impl PathTemplate {
    fn parse(text: &str) -> Result<PathTemplate, String> {
        let bad = |why: &str| Err(format!("`{text}`: {why}"));
        let Some(body) = text.strip_prefix('/') else {
            return bad("a path template starts with `/`");
        };
        // One trailing `/` is part of the template (Envoy: an empty last segment).
        // (`body` holds a `{*}` or `{**}`, so it is never `/` alone.)
        let (body, trailing_slash) = match body.strip_suffix('/') {
            Some(rest) => (rest, true),
            None => (body, false),
        };
        let mut pieces = vec![Piece::Literal("/".into())];
        let mut seen_any = false;
        for (index, segment) in body.split('/').enumerate() {
            if index > 0 {
                pieces.push(Piece::Literal("/".into()));
            }
            let piece = match segment {
                ONE | ANY if seen_any => {
                    return bad("`{**}` must be the last operator of a path template")
                }
                ONE => Piece::OneSegment,
                ANY => {
                    seen_any = true;
                    Piece::AnySegments
                }
                _ if segment.contains(['{', '}']) => {
                    return bad(
                        "a path template's segments are `{*}`, `{**}` or literal text \
                         (no named variables, no `{*}` inside a segment)",
                    )
                }
                "" => return bad("a path template has no empty segment (`//`)"),
                _ if !is_literal(segment) => {
                    return bad(
                        "a path template's literal segments use only letters, digits and \
                         -._~%!$&'()+,;:@= (no `*` or `?`)",
                    )
                }
                _ => Piece::Literal(segment.to_string()),
            };
            pieces.push(piece);
        }
        if trailing_slash {
            pieces.push(Piece::Literal("/".into()));
        }
        Ok(PathTemplate {
            pieces: merge_literals(pieces),
        })
    }

    fn matches(&self, path: &str) -> bool {
        let mut rest = path.as_bytes();
        for (index, piece) in self.pieces.iter().enumerate() {
            match piece {
                Piece::Literal(literal) => match rest.strip_prefix(literal.as_bytes()) {
                    Some(after) => rest = after,
                    None => return false,
                },
                Piece::OneSegment => {
                    // Maximal: a `{*}` is followed by `/` or the end, never a pchar.
                    let length = rest.iter().take_while(|&&b| is_pchar(b)).count();
                    match rest.get(length..) {
                        Some(after) if length > 0 => rest = after,
                        _ => return false,
                    }
                }
                Piece::AnySegments => {
                    // Only literals follow: the path must end with them, and what is
                    // between must be pchars and `/`.
                    // Literals after it were merged into one piece at parse.
                    let tail = match self.pieces.get(index + 1) {
                        Some(Piece::Literal(literal)) => literal.as_str(),
                        _ => "",
                    };
                    let Some(middle) = rest.strip_suffix(tail.as_bytes()) else {
                        return false;
                    };
                    return middle.iter().all(|&b| b == b'/' || is_pchar(b));
                }
            }
        }
        rest.is_empty()
    }
}

/// Adjacent literals as one (`/` + `a` + `/` → `/a/`).
fn merge_literals(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match (merged.last_mut(), piece) {
            (Some(Piece::Literal(last)), Piece::Literal(next)) => last.push_str(&next),
            (_, piece) => merged.push(piece),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// (template, path, matches): Envoy's regex for the template (what Istio's
    /// `sanitizePathTemplate` hands it), full match.
    const CASES: &[(&str, &str, bool)] = &[
        // {*}: exactly one non-empty segment.
        ("/path/template/{*}", "/path/template/a", true),
        ("/path/template/{*}", "/path/template/a.b~c%2F", true),
        ("/path/template/{*}", "/path/template/", false),
        ("/path/template/{*}", "/path/template", false),
        ("/path/template/{*}", "/path/template/a/b", false),
        ("/path/template/{*}", "/path/template/a/", false),
        ("/path/template/{*}", "/path/template/a=b", true),
        ("/path/template/{*}", "/path/template/a*b", true),
        ("/path/template/{*}", "/path/template/a?b", false),
        ("/path/template/{*}", "/path/template/a\"b", false),
        ("/path/template/{*}", "/path/template/a b", false),
        ("/path/template/{*}", "/PATH/template/a", false),
        ("/{*}/foo", "/x/foo", true),
        ("/{*}/foo", "//foo", false),
        ("/{*}/foo", "/x/y/foo", false),
        ("/{*}/{*}", "/a/b", true),
        ("/{*}/{*}", "/a", false),
        // {**}: any number of segments, even none, at its place.
        ("/{**}/path/template", "/a/path/template", true),
        ("/{**}/path/template", "/a/b/c/path/template", true),
        ("/{**}/path/template", "//path/template", true),
        ("/{**}/path/template", "/path/template", false),
        ("/{**}/path/template", "/a/path/template/x", false),
        ("/foo/{**}", "/foo/", true),
        ("/foo/{**}", "/foo/a/b/c", true),
        ("/foo/{**}", "/foo", false),
        ("/foo/{**}", "/foobar/x", false),
        ("/foo/{**}", "/foo/a b", false),
        ("/{*}/foo/{**}/bar", "/x/foo/bar", false),
        ("/{*}/foo/{**}/bar", "/x/foo//bar", true),
        ("/{*}/foo/{**}/bar", "/x/foo/a/b/bar", true),
        ("/{*}/foo/{**}/bar", "/x/y/foo/a/bar", false),
        ("/{**}", "/", true),
        ("/{**}", "/anything/at/all", true),
        // A trailing `/` is part of the template.
        ("/{*}/foo/", "/x/foo/", true),
        ("/{*}/foo/", "/x/foo", false),
        // Literals are literal (Envoy escapes regex characters in them).
        ("/a.b/{*}", "/aXb/c", false),
        ("/a.b/{*}", "/a.b/c", true),
        ("/a+b/{*}", "/a+b/c", true),
        ("/a+b/{*}", "/aab/c", false),
    ];

    #[wasm_bindgen_test(unsupported = test)]
    fn templates_match_as_envoys_regex() {
        for &(template, path, expected) in CASES {
            let pattern = PathPattern::parse(template).unwrap();
            assert!(matches!(pattern, PathPattern::Template(_)), "{template}");
            assert_eq!(pattern.matches(path), expected, "{template} ~ {path}");
        }
    }

    /// Istio's `TestCheckValidPathTemplate` cases, and what Envoy refuses beyond it.
    #[wasm_bindgen_test(unsupported = test)]
    fn templates_are_validated_as_istio_and_envoy_do() {
        for good in [
            "/{*}/foo",
            "/{*}/foo/",
            "/foo/{**}/bar",
            "/foo/bar/{**}",
            "/{*}/{*}/foo/{**}/bar",
            "/x/{*}/y;z:@!$&'()+,~%20",
            "/{*}/a=b",
        ] {
            assert!(PathPattern::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "/foo/{**}buzz/bar",
            "/{*}/foo/{}/bar",
            "/foo/{*}/bar/*",
            "/foo/{*}/bar/**/buzz",
            "/foo/{buzz}/bar",
            "/{buzz}",
            "/foo/{buzz}/bar/{**}",
            "/foo/{buzz=*}/bar/{**}",
            "/{*}/foo/{buzz=**}/bar",
            "/{*}/foo/{**}bar",
            "/{*}/foo/{*}.txt",
            "/{*}/foo/{temp",
            "/{*}/foo/temp}/bar",
            "/{*}/foo/temp}/*",
            "/{**}/foo/temp/{*}/bar",
            "/{**}/{**}",
            "/{**}/foo/temp/{**}/bar",
            "/{*}/foo/?abc",
            // Beyond Istio's check, refused by Envoy's template parser:
            "{*}/foo",
            "//{*}",
            "/a//{*}",
            "/{*}//",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refusals_say_why() {
        let why = |text: &str| PathPattern::parse(text).unwrap_err();
        assert!(why("/{*}/foo/{buzz}/bar").contains("no named variables"));
        assert!(why("/{*}/foo/{*}.txt").contains("no named variables"));
        assert!(why("/{**}/{*}").contains("`{**}` must be the last operator"));
        assert!(why("/a//{*}").contains("no empty segment"));
        assert!(why("/{*}/a*b").contains("literal segments use only"));
        assert!(why("{*}").contains("starts with `/`"));
        assert!(why("/a/{b}").contains("outside a path template"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn other_paths_stay_istio_string_patterns() {
        assert_eq!(
            PathPattern::parse("/prefix/*").unwrap(),
            PathPattern::Glob(Pattern::Prefix("/prefix/".into()))
        );
        assert!(PathPattern::parse("/a/{b}").is_err());
        assert!(PathPattern::parse("/a}").is_err());
        assert!(PathPattern::parse("*").unwrap().matches("/x"));
    }
}
