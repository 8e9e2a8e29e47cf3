//! The request's `:authority`, read once and strictly, so that the host the filter
//! judges (which app, which `hosts` of a policy) is the host Envoy routes on.
//!
//! Envoy accepts many authorities that are not `host[:port]`
//! (`grafana.example.com:x.api.example.com:443`, `admin.example.com:1:2`) and
//! matches them against a route table whose Istio-made domains also list
//! `host:*`, a prefix match: Envoy routes the first of those to Grafana. Any
//! lenient cut (at the first or the last `:`) would judge it under another host,
//! so anything but an RFC 3986 host with at most one port is refused with a 400
//! before an app, a session or a policy is consulted.
//!
//! A trailing dot stays part of the host (`example.com.` is not `example.com`),
//! as in Envoy's route table unless the connection manager sets
//! `strip_trailing_host_dot`, which removes the dot from the header itself
//! before any filter runs: either way the filter sees what the routes see.

/// `host[:port]` as the client wrote it (case kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    /// A registered name or IPv4 address, or a bracketed IPv6 literal (`[::1]`).
    pub host: &'a str,
    /// 1-5 digits, when a port follows the host.
    pub port: Option<&'a str>,
}

/// The body of the 400 answer to an authority that is not `host[:port]`.
pub const INVALID_AUTHORITY: &str = "Bad Request: the Host is not a valid host[:port]";

/// RFC 3986 3.2: `host [ ":" port ]`, where host is an IP-literal (`[` IPv6 `]`)
/// or a reg-name (unreserved, pct-encoded and sub-delims characters, which covers
/// IPv4 addresses too), and the port is 1-5 digits. An empty host is refused:
/// HTTP requires one.
pub fn parse(text: &str) -> Option<Authority<'_>> {
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']')?;
        let (literal, after) = text.split_at(end.checked_add(1)?);
        if !is_ipv6_literal(literal) {
            return None;
        }
        match after {
            "" => (literal, None),
            _ => (literal, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_port = port.is_none_or(|digits| {
        (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    (valid_port && is_reg_name_or_literal(host)).then_some(Authority { host, port })
}

/// The request's authority (`:authority`, else `host`), parsed.
pub fn of_request(headers: &crate::request::Headers) -> Option<Authority<'_>> {
    parse(
        headers
            .get(":authority")
            .or_else(|| headers.get("host"))
            .unwrap_or_default(),
    )
}

fn is_reg_name_or_literal(host: &str) -> bool {
    if host.starts_with('[') {
        return is_ipv6_literal(host);
    }
    let bytes = host.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let escape = bytes.get(index + 1..index + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
            continue;
        }
        let allowed = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !allowed {
            return false;
        }
        index += 1;
    }
    !host.is_empty()
}

/// `[` IPv6address `]`, loosely: hex digits, `:` and `.` (an IPv4 tail), with at
/// least two colons. Such a host can only meet a route table's `*`, so the exact
/// grammar does not change where it goes; IPvFuture (`[v1.x]`) is refused.
fn is_ipv6_literal(literal: &str) -> bool {
    let Some(inner) = literal
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return false;
    };
    inner
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && inner.bytes().filter(|&b| b == b':').count() >= 2
        && inner.len() <= 45
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn parts(text: &str) -> Option<(&str, Option<&str>)> {
        parse(text).map(|authority| (authority.host, authority.port))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn hosts_with_at_most_one_port() {
        let cases = [
            ("example.com", ("example.com", None)),
            ("Example.COM:8443", ("Example.COM", Some("8443"))),
            ("example.com.", ("example.com.", None)),
            ("example.com.:80", ("example.com.", Some("80"))),
            ("127.0.0.1:1", ("127.0.0.1", Some("1"))),
            ("[::1]", ("[::1]", None)),
            ("[::1]:80", ("[::1]", Some("80"))),
            (
                "[::ffff:10.0.0.1]:65535",
                ("[::ffff:10.0.0.1]", Some("65535")),
            ),
            ("a_b.example.com", ("a_b.example.com", None)),
            ("caf%C3%A9.example", ("caf%C3%A9.example", None)),
            ("%41b.test", ("%41b.test", None)),
            ("x!$&'()*+,;=.test", ("x!$&'()*+,;=.test", None)),
            ("localhost:99999", ("localhost", Some("99999"))),
        ];
        for (text, expected) in cases {
            assert_eq!(parts(text), Some(expected), "{text}");
        }
    }

    /// Each is an authority Envoy accepts and routes (by `*`, or by a `host:*`
    /// prefix); none is `host[:port]`.
    #[wasm_bindgen_test(unsupported = test)]
    fn anything_else_is_refused() {
        for text in [
            "",
            ":80",
            "example.com:",
            "grafana.example.com:x.api.example.com:443",
            "admin.example.com:1:2",
            "example.com:443:",
            "example.com:+443",
            "example.com:-1",
            "example.com:123456",
            "example.com: 443",
            "example.com:0x1bb",
            "user@example.com",
            "example.com/x",
            "example.com?x",
            "example.com#x",
            "exa mple.com",
            "example.com\t",
            "caf\u{e9}.example",
            "a%2.example",
            "a%zz.example",
            "a%",
            // An escape is three bytes: what follows it is read too.
            "ab%41<",
            "%41%4",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[::1]:80:80",
            "[]",
            "[1]",
            "[v1.x]",
            "[::g]",
            "[::1]]",
            "x[::1]",
            "\"example.com\"",
            "example.com\\",
            "<example.com>",
            "example.com{}",
            "example.com|x",
            "example.com^",
            "example.com`",
        ] {
            assert_eq!(parts(text), None, "{text:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_request_authority_falls_back_to_host() {
        use crate::request::Headers;
        let both = Headers::of(&[(":authority", "a.test:1"), ("host", "b.test")]);
        assert_eq!(of_request(&both).map(|a| a.host), Some("a.test"));
        let host_only = Headers::of(&[("host", "b.test")]);
        assert_eq!(of_request(&host_only).map(|a| a.host), Some("b.test"));
        assert_eq!(of_request(&Headers::of(&[])), None);
    }
}
