//! Cookie values too large for one cookie are split into numbered chunks
//! (`name_0`, `name_1`, …), as oauth2-proxy does; stale chunks are expired.

use crate::request::Headers;

/// Largest value put in one cookie: browsers keep name + value + attributes under
/// 4096 bytes, and 3800 leaves room for the rest.
pub const MAX_CHUNK_BYTES: usize = 3800;
/// Most chunks written or read for one value.
pub const MAX_CHUNKS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    pub domain: Option<String>,
    /// `Secure`; turned off only by an explicit option, for plain-HTTP local use.
    pub secure: bool,
}

/// Whether a login whose session cookie is `name` sets `cookie`: `name` itself,
/// its chunks `<name>_<n>`, its login cookie `<name>_login`, or (one sign-in for
/// a domain) the cookie of one login in flight, `<name>_login_<id>`.
pub fn is_set_by(name: &str, cookie: &str) -> bool {
    match cookie.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('_').is_some_and(|suffix| {
            let login_id = suffix.strip_prefix("login_").is_some_and(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            });
            suffix == "login"
                || login_id
                || (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
        }),
        None => false,
    }
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

/// The value stored under `name`: the single cookie, or its chunks joined in order.
pub fn read(headers: &Headers, name: &str) -> Option<String> {
    if let Some(single) = headers.cookie(name) {
        return Some(single.to_string());
    }
    let mut joined = String::new();
    for index in 0..MAX_CHUNKS {
        match headers.cookie(&chunk_name(name, index)) {
            Some(part) => joined.push_str(part),
            None if index == 0 => return None,
            None => break,
        }
    }
    Some(joined)
}

/// Every cookie name of `name`'s family the request carries (to expire stale ones).
pub fn present(headers: &Headers, name: &str) -> Vec<String> {
    let prefix = format!("{name}_");
    let mut names: Vec<String> = headers
        .cookies()
        .map(|(key, _)| key)
        .filter(|key| {
            *key == name
                || key
                    .strip_prefix(&prefix)
                    .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `Set-Cookie` values storing `value` under `name` for `max_age` seconds, plus
/// expiries for any chunk of an earlier, larger value. `None` when the value needs
/// more than [`MAX_CHUNKS`] chunks.
pub fn store(
    name: &str,
    value: &str,
    max_age: u64,
    attributes: &CookieAttributes,
    present: &[String],
) -> Option<Vec<String>> {
    let mut written = Vec::new();
    if value.len() <= MAX_CHUNK_BYTES {
        written.push((name.to_string(), value.to_string()));
    } else {
        let parts = split(value);
        if parts.len() > MAX_CHUNKS {
            return None;
        }
        written.extend(
            parts
                .into_iter()
                .enumerate()
                .map(|(index, part)| (chunk_name(name, index), part.to_string())),
        );
    }
    let mut headers: Vec<String> = written
        .iter()
        .map(|(cookie, part)| set_cookie(cookie, part, Some(max_age), attributes))
        .collect();
    for stale in present
        .iter()
        .filter(|stale| !written.iter().any(|(cookie, _)| cookie == *stale))
    {
        headers.push(set_cookie(stale, "", Some(0), attributes));
    }
    Some(headers)
}

/// `Set-Cookie` values that expire every cookie of the family the request carries.
pub fn clear(present: &[String], attributes: &CookieAttributes) -> Vec<String> {
    present
        .iter()
        .map(|name| set_cookie(name, "", Some(0), attributes))
        .collect()
}

/// Sealed values are base64url, so any byte boundary is a character boundary.
fn split(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let cut = rest.len().min(MAX_CHUNK_BYTES);
        let cut = (0..=cut)
            .rev()
            .find(|i| rest.is_char_boundary(*i))
            .unwrap_or(0);
        if cut == 0 {
            break;
        }
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    parts
}

pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    attributes: &CookieAttributes,
) -> String {
    let mut header = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if attributes.secure {
        header.push_str("; Secure");
    }
    if let Some(domain) = &attributes.domain {
        header.push_str("; Domain=");
        header.push_str(domain);
    }
    if let Some(max_age) = max_age {
        header.push_str(&format!("; Max-Age={max_age}"));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const ATTRIBUTES: CookieAttributes = CookieAttributes {
        domain: None,
        secure: true,
    };

    fn request_with(set_cookies: &[String]) -> Headers {
        let cookie = set_cookies
            .iter()
            .map(|header| header.split(';').next().unwrap().to_string())
            .filter(|pair| !pair.ends_with('='))
            .collect::<Vec<_>>()
            .join("; ");
        Headers::new(vec![("cookie".into(), format!("other=1; {cookie}"))])
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn small_values_use_one_cookie() {
        let headers = store("s", "abc", 60, &ATTRIBUTES, &[]).unwrap();
        assert_eq!(
            headers,
            ["s=abc; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"]
        );
        assert_eq!(read(&request_with(&headers), "s").as_deref(), Some("abc"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn large_values_are_chunked_and_read_back() {
        let value = "x".repeat(MAX_CHUNK_BYTES * 2 + 10);
        let headers = store("s", &value, 60, &ATTRIBUTES, &[]).unwrap();
        assert_eq!(headers.len(), 3);
        assert!(headers.iter().all(|h| h.len() < 4000));
        let request = request_with(&headers);
        assert_eq!(read(&request, "s").as_deref(), Some(value.as_str()));
        assert_eq!(present(&request, "s"), ["s_0", "s_1", "s_2"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn shrinking_expires_stale_chunks() {
        let present = vec!["s_0".to_string(), "s_1".to_string(), "s_2".to_string()];
        let headers = store("s", "small", 60, &ATTRIBUTES, &present).unwrap();
        assert_eq!(headers.len(), 4);
        assert!(headers[1..]
            .iter()
            .all(|h| h.contains("Max-Age=0") && h.starts_with("s_")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn too_large_is_refused() {
        let value = "x".repeat(MAX_CHUNK_BYTES * MAX_CHUNKS + 1);
        assert_eq!(store("s", &value, 60, &ATTRIBUTES, &[]), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_missing_first_chunk_is_no_value() {
        let request = Headers::new(vec![("cookie".into(), "s_1=abc".into())]);
        assert_eq!(read(&request, "s"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_login_sets_its_session_chunks_and_login_cookies() {
        for cookie in ["s", "s_0", "s_12", "s_login", "s_login_AbC-_x9z"] {
            assert!(is_set_by("s", cookie), "{cookie}");
        }
        for cookie in [
            "",
            "t",
            "s_",
            "s_x",
            "s_login_",
            "s_login_a.b",
            "s_loginx",
            "ss_0",
            "s_1a",
        ] {
            assert!(!is_set_by("s", cookie), "{cookie}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn attributes_are_written() {
        let local = CookieAttributes {
            domain: Some("example.test".into()),
            secure: false,
        };
        let header = set_cookie("s", "v", None, &local);
        assert_eq!(
            header,
            "s=v; Path=/; HttpOnly; SameSite=Lax; Domain=example.test"
        );
    }
}
