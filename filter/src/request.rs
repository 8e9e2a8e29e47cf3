//! The request as the core sees it: header pairs as Envoy hands them over, and the
//! changes the core asks the host to make.

/// Request headers with lowercase names (Envoy's form), pseudo-headers included.
/// Every name and value sits in one string: reading a request's headers is two
/// allocations, not two per header. Its `Debug` shows the names only: values carry
/// tokens and session cookies.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    /// Byte offsets in `text`: name start, name end (= value start), value end.
    pairs: Vec<[u32; 3]>,
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Names with their values hidden, for the `Debug` of what carries credentials.
pub(crate) fn names_only<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> Vec<&'a str> {
    pairs.map(|(name, _)| name.as_str()).collect()
}

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut headers = Self::default();
        for (name, value) in &pairs {
            headers.push(name, value);
        }
        headers
    }

    /// Headers as proxy-wasm serializes a header map: a little-endian u32 count,
    /// a (name length, value length) u32 pair per header, then each name and
    /// value followed by a NUL. Bytes that are not UTF-8 are replaced (U+FFFD);
    /// a map cut short keeps the headers read so far.
    pub fn from_map_bytes(bytes: &[u8]) -> Self {
        let mut headers = Self::default();
        let word = |at: usize| {
            bytes
                .get(at..at.saturating_add(4))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| u32::from_le_bytes(b) as usize)
        };
        let Some(count) = word(0) else {
            return headers;
        };
        let mut data = count.saturating_mul(8).saturating_add(4);
        headers.text.reserve(bytes.len().saturating_sub(data));
        headers.pairs.reserve(count.min(bytes.len() / 8));
        for index in 0..count {
            let sizes = (word(4 + index * 8), word(8 + index * 8));
            let (Some(name_len), Some(value_len)) = sizes else {
                break;
            };
            let name_end = data.saturating_add(name_len);
            let value_start = name_end.saturating_add(1);
            let value_end = value_start.saturating_add(value_len);
            let (Some(name), Some(value)) =
                (bytes.get(data..name_end), bytes.get(value_start..value_end))
            else {
                break;
            };
            headers.push(
                &String::from_utf8_lossy(name),
                &String::from_utf8_lossy(value),
            );
            data = value_end.saturating_add(1);
        }
        headers
    }

    pub fn push(&mut self, name: &str, value: &str) {
        let offset = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        let start = offset(&self.text);
        self.text.push_str(name);
        let middle = offset(&self.text);
        self.text.push_str(value);
        self.pairs.push([start, middle, offset(&self.text)]);
    }

    /// Every (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|[start, middle, end]| {
            let slice = |from: &u32, to: &u32| {
                self.text
                    .get(*from as usize..*to as usize)
                    .unwrap_or_default()
            };
            (slice(start, middle), slice(middle, end))
        })
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    pub fn get_all<'s: 'n, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + 'n {
        self.iter()
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| value)
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

/// Edits that remove client copies of the identity headers the filter writes, in
/// every spelling: `_` and `-` are one character to CGI, WSGI and PHP upstreams
/// (`x_user_email` and `x-user-email` both become `HTTP_X_USER_EMAIL`), whichever
/// of the two the configuration or the client used.
pub fn remove_identity_headers(output_headers: &[String], headers: &Headers, edits: &mut Edits) {
    for (name, _) in headers.iter() {
        if output_headers
            .iter()
            .any(|output| same_header_to_cgi(output, name))
        {
            edits.remove(name);
        }
    }
}

/// Lowercase names equal once `_` and `-` are taken as one.
fn same_header_to_cgi(a: &str, b: &str) -> bool {
    let fold = |byte: u8| if byte == b'_' { b'-' } else { byte };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Header pairs in proxy-wasm's serialization, the format [`Headers::from_map_bytes`]
/// reads: the host takes a local reply's headers this way.
pub fn map_bytes<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    let size = |bytes: &[u8]| u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes();
    let text: usize = pairs
        .iter()
        .map(|(name, value)| name.as_ref().len() + value.as_ref().len() + 2)
        .sum();
    let mut bytes = Vec::with_capacity(4 + 8 * pairs.len() + text);
    bytes.extend(u32::try_from(pairs.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (name, value) in pairs {
        bytes.extend(size(name.as_ref()));
        bytes.extend(size(value.as_ref()));
    }
    for (name, value) in pairs {
        bytes.extend(name.as_ref());
        bytes.push(0);
        bytes.extend(value.as_ref());
        bytes.push(0);
    }
    bytes
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
/// Its `Debug` hides the values set (a forwarded token, a claim).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Edits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

impl std::fmt::Debug for Edits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edits")
            .field("remove", &self.remove)
            .field("set", &names_only(self.set.iter()))
            .finish()
    }
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
        headers.get_all(name)
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
    fn a_serialized_header_map_reads_back_in_order() {
        let bytes = map_bytes::<&[u8], &[u8]>(&[
            (b":path", b"/a?b=c"),
            (b"cookie", b"a=1"),
            (b"empty", b""),
            (b"cookie", b"b=2"),
            (b"x-bin", b"caf\xc3\xa9 \xff"),
        ]);
        let headers = Headers::from_map_bytes(&bytes);
        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(
            pairs,
            [
                (":path", "/a?b=c"),
                ("cookie", "a=1"),
                ("empty", ""),
                ("cookie", "b=2"),
                ("x-bin", "caf\u{e9} \u{fffd}"),
            ]
        );
        assert_eq!(headers.path(), "/a?b=c");
        assert_eq!(
            headers.get_all("cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(headers.cookie("b"), Some("2"));
        assert_eq!(headers.get("missing"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_cut_or_lying_header_map_keeps_what_it_holds() {
        let whole = map_bytes(&[("a", "1"), ("bb", "22")]);
        for cut in 0..whole.len() {
            let headers = Headers::from_map_bytes(&whole[..cut]);
            assert!(headers.iter().count() <= 2);
        }
        assert_eq!(Headers::from_map_bytes(&whole).iter().count(), 2);
        // A count far beyond the bytes: nothing read, nothing huge reserved.
        let mut lying = u32::MAX.to_le_bytes().to_vec();
        lying.extend([1, 0, 0, 0, 1, 0, 0, 0, b'a', 0, b'1', 0]);
        assert_eq!(Headers::from_map_bytes(&lying).iter().count(), 0);
        assert_eq!(Headers::from_map_bytes(&[]).iter().count(), 0);
        let huge_sizes = [
            1u32.to_le_bytes(),
            u32::MAX.to_le_bytes(),
            u32::MAX.to_le_bytes(),
        ]
        .concat();
        assert_eq!(Headers::from_map_bytes(&huge_sizes).iter().count(), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn debug_shows_header_names_but_no_value() {
        let request = headers(&[("authorization", "Bearer tok3n"), ("cookie", "s=sealed")]);
        let mut edits = Edits::default();
        edits.set("x-forwarded-token", "tok3n".into());
        edits.remove("cookie");
        for text in [format!("{request:?}"), format!("{edits:?}")] {
            assert!(
                !text.contains("tok3n") && !text.contains("sealed"),
                "{text}"
            );
        }
        assert!(format!("{request:?}").contains("authorization"));
        assert!(format!("{edits:?}").contains("x-forwarded-token"));
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
        // Only what the client sent, in its order; the absent `x-group` needs no edit.
        assert_eq!(
            edits.remove,
            ["x-user-email", "x_user_email", "x-user_email", "x_group"]
        );
    }

    /// An output header configured with `_` (`x_user_email`) loses the client's
    /// dashed copy too.
    #[wasm_bindgen_test(unsupported = test)]
    fn identity_headers_configured_with_underscores_go_in_every_spelling() {
        let output = ["x_user_email".to_string()];
        let request = headers(&[
            ("x-user-email", "a"),
            ("x_user_email", "b"),
            ("x-user_email", "c"),
            ("x-user-emails", "d"),
            ("x-user", "e"),
        ]);
        let mut edits = Edits::default();
        remove_identity_headers(&output, &request, &mut edits);
        assert_eq!(
            edits.remove,
            ["x-user-email", "x_user_email", "x-user_email"]
        );
    }
}
