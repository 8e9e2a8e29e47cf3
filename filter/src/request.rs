//! The request as the core sees it: header pairs as Envoy hands them over, and the
//! changes the core asks the host to make.

/// Request headers with lowercase names (Envoy's form), pseudo-headers included.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pairs: Vec<(String, String)>,
}

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> &str {
        self.get(":path").unwrap_or("/")
    }

    /// Every `name=value` pair of every `cookie` header, in order. Quoted values
    /// lose their quotes (RFC 6265 `cookie-value`).
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.get_all("cookie")
            .flat_map(cookie_pairs)
            .filter_map(|pair| pair.name_value)
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// One `;`-separated piece of a `cookie` header: its text as sent (trimmed), and
/// its name and unquoted value when it has the `name=value` form.
pub struct CookiePair<'a> {
    pub raw: &'a str,
    pub name_value: Option<(&'a str, &'a str)>,
}

/// The one cookie parser of the filter (RFC 6265 5.4 `cookie-string`, leniently).
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = CookiePair<'_>> {
    header
        .split(';')
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
        .map(|raw| {
            let name_value = raw.split_once('=').map(|(name, value)| {
                let value = value.trim();
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|inner| inner.strip_suffix('"'))
                    .unwrap_or(value);
                (name.trim(), unquoted)
            });
            CookiePair { raw, name_value }
        })
}

/// Edits that take the cookies `is_removed` names out of the request, keeping every
/// other cookie byte for byte (quotes included). Composes with earlier cookie edits.
pub fn remove_cookies(headers: &Headers, edits: &mut Edits, is_removed: &dyn Fn(&str) -> bool) {
    let current: Vec<&str> = Forwarded { headers, edits }.get_all("cookie");
    let mut removed_any = false;
    let mut kept: Vec<&str> = Vec::new();
    for pair in current.iter().flat_map(|header| cookie_pairs(header)) {
        match pair.name_value {
            Some((name, _)) if is_removed(name) => removed_any = true,
            _ => kept.push(pair.raw),
        }
    }
    if !removed_any {
        return;
    }
    // A set replaces every value of the header; with nothing left it goes.
    if kept.is_empty() {
        edits.set.retain(|(key, _)| key != "cookie");
        edits.remove("cookie");
    } else {
        edits.set("cookie", kept.join("; "));
    }
}

/// Edits that remove client copies of the identity headers the filter writes, and
/// their underscore spellings (`x_user_email` for `x-user-email`), which CGI, WSGI
/// and PHP upstreams read as the same header.
pub fn remove_identity_headers(output_headers: &[String], headers: &Headers, edits: &mut Edits) {
    for name in output_headers {
        edits.remove(name);
    }
    for (name, _) in &headers.pairs {
        if name.contains('_') {
            let dashed = name.replace('_', "-");
            if output_headers.contains(&dashed) {
                edits.remove(name);
            }
        }
    }
}

#[cfg(test)]
impl Headers {
    /// Request headers from literal pairs, for tests.
    pub fn of(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Header changes for the upstream request, applied in order: removals, then sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

impl Edits {
    pub fn remove(&mut self, name: &str) {
        if !self.remove.iter().any(|known| known == name) {
            self.remove.push(name.to_string());
        }
    }

    /// Sets `name`, replacing any earlier value we set for it.
    pub fn set(&mut self, name: &str, value: String) {
        self.set.retain(|(known, _)| known != name);
        self.set.push((name.to_string(), value));
    }
}

/// The request as it will be forwarded: the client's headers after the filter's
/// edits. Authorization reads this view, so a condition on a header sees the value
/// the upstream will get (a claim the filter wrote, not a client's copy of it).
#[derive(Clone, Copy)]
pub struct Forwarded<'a> {
    pub headers: &'a Headers,
    pub edits: &'a Edits,
}

impl<'a> Forwarded<'a> {
    /// Every value of `name` (lowercase) after the edits: a header we set has our
    /// one value; a header we removed has none.
    pub fn get_all(&self, name: &str) -> Vec<&'a str> {
        match self.edited(name) {
            Some(value) => value.into_iter().collect(),
            None => self.client_values(name).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        match self.edited(name) {
            Some(value) => value,
            None => self.client_values(name).next(),
        }
    }

    pub fn path(&self) -> &'a str {
        self.get(":path").unwrap_or("/")
    }

    /// `Some` when our edits decide the header: its one value, or none.
    fn edited(&self, name: &str) -> Option<Option<&'a str>> {
        let edits: &'a Edits = self.edits;
        if let Some((_, value)) = edits.set.iter().find(|(key, _)| key == name) {
            return Some(Some(value.as_str()));
        }
        edits.remove.iter().any(|key| key == name).then_some(None)
    }

    fn client_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        let headers: &'a Headers = self.headers;
        headers
            .pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Header values we write must not smuggle a second header or end the block.
pub fn is_safe_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::of(pairs)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn removing_cookies_keeps_the_others_byte_for_byte() {
        let request = headers(&[
            ("cookie", r#"app="a b;c"; oidc_session=x;  theme=dark"#),
            ("cookie", "oidc_session_0=y; flag; z=\"q\""),
        ]);
        let mut edits = Edits::default();
        remove_cookies(&request, &mut edits, &|name| {
            name.starts_with("oidc_session")
        });
        // `"a b;c"` is split at its `;` by every cookie parser (RFC 6265 forbids `;`
        // in values); each piece is kept as sent.
        assert_eq!(
            Forwarded {
                headers: &request,
                edits: &edits
            }
            .get_all("cookie"),
            [r#"app="a b; c"; theme=dark; flag; z="q""#]
        );
        let mut none_left = Edits::default();
        remove_cookies(
            &headers(&[("cookie", "oidc_session=1")]),
            &mut none_left,
            &|_| true,
        );
        assert_eq!(none_left.remove, ["cookie"]);
        assert!(none_left.set.is_empty());
        let mut untouched = Edits::default();
        remove_cookies(&request, &mut untouched, &|name| name == "absent");
        assert_eq!(untouched, Edits::default());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parsed_cookies_lose_only_their_quotes() {
        let request = headers(&[("cookie", r#"a="1"; b=2 ; =3; c"#)]);
        let pairs: Vec<_> = request.cookies().collect();
        assert_eq!(pairs, [("a", "1"), ("b", "2"), ("", "3")]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn identity_headers_go_in_every_spelling() {
        let output = ["x-user-email".to_string(), "x-group".to_string()];
        let request = headers(&[
            ("x-user-email", "a"),
            ("x_user_email", "b"),
            ("x-user_email", "c"),
            ("x_group", "d"),
            ("x_other", "e"),
        ]);
        let mut edits = Edits::default();
        remove_identity_headers(&output, &request, &mut edits);
        assert_eq!(
            edits.remove,
            [
                "x-user-email",
                "x-group",
                "x_user_email",
                "x-user_email",
                "x_group"
            ]
        );
    }
}
