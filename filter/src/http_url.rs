//! Absolute http(s) URLs: the issuers, JWKS and IdP endpoints the filter calls or
//! redirects browsers to.
//!
//! A deliberately narrow parser instead of the `url` crate (see docs/development.md
//! "Module size"): WHATWG parsing with IDNA is about a tenth of the module, and these URLs
//! come from configuration and discovery documents, where anything unusual is more
//! likely a mistake than a need. So: scheme `http` or `https`; an ASCII host name
//! (IDNs in punycode), an IPv4 address or a bracketed IPv6 one; an optional port;
//! a path and query of visible ASCII. No user info, no fragment, no `%` in the host,
//! nothing that would have to be percent-encoded first. The scheme and host are
//! lowercased and a default port dropped, so equal URLs print equally.

use std::fmt::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    scheme: Scheme,
    /// Lowercase; an IPv6 address keeps its brackets.
    host: String,
    /// Only a port other than the scheme's default.
    port: Option<u16>,
    /// Starts with `/`.
    path: String,
    query: Option<String>,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let (scheme, rest) = split_scheme(text).ok_or("is not an http(s) URL with a host")?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        let (host, port) = parse_authority(authority)?;
        if rest.contains('#') {
            return Err("must not have a fragment (`#...`)".into());
        }
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        check_text(path, is_path_char)?;
        check_text(query.unwrap_or(""), is_query_char)?;
        if path.split('/').any(is_dot_segment) {
            return Err("has `.` or `..` path segments".into());
        }
        Ok(HttpUrl {
            scheme,
            host,
            port: port.filter(|&port| port != scheme.default_port()),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query: query.map(str::to_string),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, unless it is the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// `host` or `host:port`, as in a `:authority` header.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The query's form-decoded pairs.
    pub fn query_pairs(&self) -> form_urlencoded::Parse<'_> {
        form_urlencoded::parse(self.query().unwrap_or_default().as_bytes())
    }

    /// Path and query, as in a `:path` header.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// This URL with `pairs` form-encoded after any query it already has.
    pub fn with_query_pairs<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> HttpUrl {
        let existing = self.query.clone().unwrap_or_default();
        let query = form_urlencoded::Serializer::for_suffix(existing, 0)
            .extend_pairs(pairs)
            .finish();
        HttpUrl {
            query: Some(query).filter(|query| !query.is_empty()),
            ..self.clone()
        }
    }

    /// This URL's origin with another path (which must start with `/`) and no query.
    pub fn with_path(&self, path: &str) -> HttpUrl {
        HttpUrl {
            path: path.into(),
            query: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path_and_query()
        )
    }
}

/// The scheme (any case) and what follows its `://`.
fn split_scheme(text: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else {
        return None;
    };
    Some((scheme, rest))
}

#[inline(never)]
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    if !authority.is_ascii() || authority.contains('%') {
        return Err("has a host name that is not ASCII (write IDNs in punycode)".into());
    }
    if authority.contains('@') {
        return Err("must not carry user info (`user@`)".into());
    }
    let (host, port) = split_port(authority)?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => ipv6_host(bracketed.trim_end_matches(']'))?,
        None => name_or_ipv4(&host)?,
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) => Some(
            digits
                .parse::<u16>()
                .ok()
                .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("has an invalid port `{digits}`"))?,
        ),
    };
    Ok((host, port))
}

/// A bracketed IPv6 host in its canonical form (RFC 5952, as browsers print it).
/// An embedded dotted IPv4 tail (`::ffff:1.2.3.4`) is refused: write it in hex.
#[inline(never)]
fn ipv6_host(address: &str) -> Result<String, String> {
    let invalid = || format!("has an invalid IPv6 host `[{address}]`");
    let pieces = ipv6_pieces(address).ok_or_else(invalid)?;
    Ok(format!("[{}]", ipv6_text(&pieces)))
}

/// The eight 16-bit pieces of an IPv6 address written with hex pieces and at most
/// one `::`.
fn ipv6_pieces(address: &str) -> Option<[u16; 8]> {
    // A loop, not `collect::<Option<Vec<_>>>()`: smaller code.
    let parse = |part: &str| -> Option<Vec<u16>> {
        let mut pieces = Vec::new();
        if part.is_empty() {
            return Some(pieces);
        }
        for piece in part.split(':') {
            let valid =
                (1..=4).contains(&piece.len()) && piece.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return None;
            }
            pieces.push(u16::from_str_radix(piece, 16).ok()?);
        }
        Some(pieces)
    };
    let (head, tail) = match address.split_once("::") {
        Some((head, tail)) => (parse(head)?, Some(parse(tail)?)),
        None => (parse(address)?, None),
    };
    let mut pieces = [0u16; 8];
    match tail {
        None if head.len() == 8 => pieces.copy_from_slice(&head),
        Some(tail) if head.len() + tail.len() < 8 => {
            for (slot, piece) in pieces.iter_mut().zip(&head) {
                *slot = *piece;
            }
            for (slot, piece) in pieces.iter_mut().rev().zip(tail.iter().rev()) {
                *slot = *piece;
            }
        }
        _ => return None,
    }
    Some(pieces)
}

/// RFC 5952: lowercase hex without leading zeros, the first longest run of two or
/// more zero pieces as `::`.
fn ipv6_text(pieces: &[u16; 8]) -> String {
    let mut best = (0, 0); // (start, length)
    let mut run = (0, 0);
    for (index, &piece) in pieces.iter().enumerate() {
        if piece == 0 {
            run = if run.1 == 0 {
                (index, 1)
            } else {
                (run.0, run.1 + 1)
            };
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let hex = |range: &[u16]| -> String {
        let mut text = String::new();
        for piece in range {
            if !text.is_empty() {
                text.push(':');
            }
            let _ = write!(text, "{piece:x}");
        }
        text
    };
    if best.1 < 2 {
        return hex(pieces);
    }
    let (before, rest) = pieces.split_at(best.0.min(8));
    let after = rest.get(best.1..).unwrap_or_default();
    format!("{}::{}", hex(before), hex(after))
}

/// A host name, lowercased, or an IPv4 address in dotted-decimal. Browsers read a
/// host whose last label is a number as IPv4 in any of its old forms (`127.1`,
/// `0x7f.0.0.1`, `2130706433`); only the plain form is accepted, so the filter and
/// a browser always mean the same address.
#[inline(never)]
fn name_or_ipv4(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err(format!("has an invalid host `{host}`"));
    }
    let last_label = host.strip_suffix('.').unwrap_or(host).rsplit('.').next();
    let numeric = last_label.is_some_and(|label| {
        let hex = label
            .strip_prefix("0x")
            .or_else(|| label.strip_prefix("0X"));
        match hex {
            Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
            None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
        }
    });
    if numeric {
        let parts: Vec<&str> = host.split('.').collect();
        let canonical = parts.len() == 4
            && parts.iter().all(|part| {
                let digits =
                    !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit());
                let no_leading_zero = *part == "0" || !part.starts_with('0');
                digits && no_leading_zero && part.parse::<u8>().is_ok()
            });
        if !canonical {
            return Err(format!(
                "has a host `{host}` that is not a dotted-decimal IPv4 address"
            ));
        }
    }
    Ok(host.to_ascii_lowercase())
}

fn check_text(text: &str, allowed: fn(char) -> bool) -> Result<(), String> {
    match text.chars().find(|&c| !allowed(c)) {
        Some(bad) => Err(format!(
            "has a character that must be percent-encoded (U+{:04X})",
            u32::from(bad)
        )),
        None => Ok(()),
    }
}

/// `.` and `..`, also percent-encoded: browsers resolve them, this filter refuses them.
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | "%2e" | ".." | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// Splits `host[:port]`; a bracketed IPv6 host holds colons of its own.
fn split_port(authority: &str) -> Result<(String, Option<&str>), String> {
    let Some(bracketed) = authority.strip_prefix('[') else {
        return Ok(match authority.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        });
    };
    let (address, after) = bracketed
        .split_once(']')
        .ok_or("has an unclosed `[` in its host")?;
    let host = format!("[{address}]");
    match after {
        "" => Ok((host, None)),
        _ => match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None => Err(format!("has text after its IPv6 host: `{after}`")),
        },
    }
}

/// Visible ASCII that browsers leave as is in a path (they turn `\\` into `/`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '`' | '{' | '}' | '\\' | '#')
}

/// As [`is_path_char`]; browsers also percent-encode `'` in an http(s) query.
fn is_query_char(c: char) -> bool {
    is_path_char(c) && c != '\''
}
#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn url(text: &str) -> HttpUrl {
        HttpUrl::parse(text).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_and_normalizes_what_endpoints_look_like() {
        let u = url("HTTPS://IdP.Example.com:8443/realms/a/.well-known/jwks?x=1&y=%20");
        assert_eq!(u.scheme(), Scheme::Https);
        assert_eq!(u.host(), "idp.example.com");
        assert_eq!(u.port(), Some(8443));
        assert_eq!(u.path(), "/realms/a/.well-known/jwks");
        assert_eq!(u.query(), Some("x=1&y=%20"));
        assert_eq!(u.authority(), "idp.example.com:8443");
        assert_eq!(
            u.to_string(),
            "https://idp.example.com:8443/realms/a/.well-known/jwks?x=1&y=%20"
        );
        let root = url("http://127.0.0.1:80");
        assert_eq!((root.port(), root.port_or_default()), (None, 80));
        assert_eq!(root.to_string(), "http://127.0.0.1/");
        assert_eq!(url("http://[0:0:0:0:0:0:0:1]/").host(), "[::1]");
        assert_eq!(url("http://[2001:DB8::A]/").host(), "[2001:db8::a]");
        assert_eq!(url("http://[1:0:0:2:0:0:0:3]/").host(), "[1:0:0:2::3]");
        assert_eq!(url("http://[1:0:2:0:3:0:4:0]/").host(), "[1:0:2:0:3:0:4:0]");
        assert_eq!(url("http://[::]/").host(), "[::]");
        assert_eq!(url("http://[::ffff:102:304]/").host(), "[::ffff:102:304]");
        assert_eq!(url("http://[1:2:3:4:5:6:7:8]/").host(), "[1:2:3:4:5:6:7:8]");
        assert_eq!(url("https://idp.test/a'b").path(), "/a'b");
        let v6 = url("http://[::1]:9000/jwks");
        assert_eq!((v6.host(), v6.port()), ("[::1]", Some(9000)));
        assert_eq!(url("https://h.test:/x").port(), None);
        assert_eq!(url("https://h.test?q").path_and_query(), "/?q");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_what_endpoints_should_not_be() {
        for text in [
            "",
            "idp.test/jwks",
            "ftp://idp.test/",
            "https:/idp.test/",
            "https:///jwks",
            "https://user:pw@idp.test/",
            "https://idp.test/jwks#frag",
            "https://idp.test:99999/",
            "https://idp.test:+80/",
            "https://idp.test:8a/",
            "https://[::1/",
            "https://[]/",
            "https://[::1]x/",
            "https://[g::1]/",
            "https://idp test/",
            "https://idp.test/a b",
            "https://idp.test/a\"b",
            "https://idp.test/?a=<b>",
            "https://idp.test\\jwks",
            "http://pB\u{22e}A/",
            "https://x%C8%AE.test/jwks",
            "https://caf\u{e9}.test/",
            "https://idp.test/caf\u{e9}",
            "https://idp.test/?it's",
            "https://idp.test/a/../jwks",
            "https://idp.test/a/%2E/jwks",
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://2130706433/",
            "http://1.2.3.04/",
            "http://[::ffff:1.2.3.4]/",
            "http://[1:2:3:4:5:6:7:8:9]/",
            "http://[1::2::3]/",
            "http://[12345::1]/",
            "http://[1:2:3:4:5:6:7::8]/",
            "http://10.0.0.1./",
        ] {
            assert!(HttpUrl::parse(text).is_err(), "{text}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn query_pairs_are_form_encoded_after_an_existing_query() {
        let plain = url("https://idp.test/auth").with_query_pairs([("a", "x y"), ("b", "&=")]);
        assert_eq!(plain.to_string(), "https://idp.test/auth?a=x+y&b=%26%3D");
        let existing = url("https://idp.test/auth?tenant=1").with_query_pairs([("a", "1")]);
        assert_eq!(existing.query(), Some("tenant=1&a=1"));
        let other = url("https://idp.test:8443/realm/?q=1")
            .with_path("/realm/.well-known/openid-configuration");
        assert_eq!(
            other.to_string(),
            "https://idp.test:8443/realm/.well-known/openid-configuration"
        );
    }
}
