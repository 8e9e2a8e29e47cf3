//! Where tokens are found in a request (Istio's `fromHeaders`, `fromParams`,
//! `fromCookies`), and how a token is removed before the upstream sees it.

use crate::config::{Config, TokenLocation};
use crate::request::{self, Edits, Headers};

/// Most tokens examined in one request; more is refused rather than verified.
pub const MAX_TOKENS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    /// Index into [`Config::locations`].
    pub location: usize,
}

/// Every token in every configured location, in configuration order. Returns at most
/// `MAX_TOKENS + 1` so that the caller can tell "too many" without unbounded work.
pub fn find_tokens(config: &Config, headers: &Headers) -> Vec<Found> {
    let mut found = Vec::new();
    for (index, location) in config.locations.iter().enumerate() {
        for token in tokens_at(location, headers) {
            if found.len() > MAX_TOKENS {
                return found;
            }
            found.push(Found {
                token,
                location: index,
            });
        }
    }
    found
}

fn tokens_at(location: &TokenLocation, headers: &Headers) -> Vec<String> {
    match location {
        TokenLocation::Header { name, prefix } => headers
            .get_all(name)
            .filter_map(|value| strip_prefix_ignore_case(value, prefix))
            .map(|token| token.trim().to_string())
            .filter(|token| !token.is_empty())
            .collect(),
        TokenLocation::Param(name) => query_pairs(headers.path())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .filter(|token| !token.is_empty())
            .collect(),
        TokenLocation::Cookie(name) => headers
            .cookies()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.to_string())
            .filter(|token| !token.is_empty())
            .collect(),
    }
}

/// The auth scheme in a prefix like `Bearer ` is case-insensitive (RFC 9110 11.1).
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

fn query_pairs(path: &str) -> form_urlencoded::Parse<'_> {
    let query = path.split_once('?').map_or("", |(_, query)| query);
    let query = query.split('#').next().unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
}

/// Edits that take the token out of `location` (forwardOriginalToken: false):
/// a header goes entirely, as in Envoy; a query parameter or cookie goes alone.
pub fn remove_from(location: &TokenLocation, headers: &Headers, edits: &mut Edits) {
    match location {
        TokenLocation::Header { name, .. } => edits.remove(name),
        TokenLocation::Param(name) => {
            let path = current_value(edits, headers, ":path").unwrap_or_else(|| "/".into());
            edits.set(":path", path_without_param(&path, name));
        }
        TokenLocation::Cookie(name) => {
            request::remove_cookies(headers, edits, &|cookie| cookie == name)
        }
    }
}

/// The value as already edited, so that two removals from one header compose.
fn current_value(edits: &Edits, headers: &Headers, name: &str) -> Option<String> {
    edits
        .set
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .or_else(|| headers.get(name).map(str::to_string))
}

fn path_without_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let raw_key = pair.split('=').next().unwrap_or("");
            let key: String = form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .map(|(key, _)| key.into_owned())
                .unwrap_or_default();
            !pair.is_empty() && key != name
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn config(rules: &str) -> Config {
        Config::parse(format!(r#"{{"jwtRules":{rules}}}"#).as_bytes()).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::of(pairs)
    }

    const INLINE: &str = r#""jwks":"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}""#;

    #[wasm_bindgen_test(unsupported = test)]
    fn default_locations_are_bearer_header_then_access_token() {
        let config = config(&format!(r#"[{{"issuer":"i",{INLINE}}}]"#));
        let found = find_tokens(
            &config,
            &headers(&[(":path", "/?access_token=q"), ("authorization", "bearer h")]),
        );
        let tokens: Vec<&str> = found.iter().map(|f| f.token.as_str()).collect();
        assert_eq!(tokens, ["h", "q"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn custom_header_prefix_param_and_cookie() {
        let rule = format!(
            r#"[{{"issuer":"i",{INLINE},"fromHeaders":[{{"name":"X-Jwt","prefix":"Token "}}],"fromParams":["t"],"fromCookies":["c"]}}]"#
        );
        let config = config(&rule);
        let request = headers(&[
            (":path", "/p?a=1&t=tok%2Eparam&b=2"),
            ("x-jwt", "Token tok.header"),
            ("cookie", "x=1; c=tok.cookie; y=2"),
        ]);
        let tokens: Vec<String> = find_tokens(&config, &request)
            .into_iter()
            .map(|f| f.token)
            .collect();
        assert_eq!(tokens, ["tok.header", "tok.param", "tok.cookie"]);
        let wrong_prefix = headers(&[(":path", "/"), ("x-jwt", "Bearer tok")]);
        assert!(find_tokens(&config, &wrong_prefix).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn stops_counting_past_the_limit() {
        let config = config(&format!(r#"[{{"issuer":"i",{INLINE}}}]"#));
        let many: Vec<(&str, &str)> =
            std::iter::repeat_n(("authorization", "Bearer t"), 50).collect();
        assert_eq!(find_tokens(&config, &headers(&many)).len(), MAX_TOKENS + 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn removal_keeps_everything_else() {
        let request = headers(&[(":path", "/p?a=1&t=x&b=2"), ("cookie", "x=1; c=tok; y=2")]);
        let mut edits = Edits::default();
        remove_from(&TokenLocation::Param("t".into()), &request, &mut edits);
        remove_from(&TokenLocation::Cookie("c".into()), &request, &mut edits);
        remove_from(
            &TokenLocation::Header {
                name: "authorization".into(),
                prefix: String::new(),
            },
            &request,
            &mut edits,
        );
        assert_eq!(edits.remove, ["authorization"]);
        assert_eq!(
            edits.set,
            [
                (":path".to_string(), "/p?a=1&b=2".to_string()),
                ("cookie".to_string(), "x=1; y=2".to_string())
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn removing_the_only_param_or_cookie_leaves_nothing_behind() {
        let request = headers(&[(":path", "/p?t=x"), ("cookie", "c=tok")]);
        let mut edits = Edits::default();
        remove_from(&TokenLocation::Param("t".into()), &request, &mut edits);
        remove_from(&TokenLocation::Cookie("c".into()), &request, &mut edits);
        assert_eq!(edits.set, [(":path".to_string(), "/p".to_string())]);
        assert_eq!(edits.remove, ["cookie"]);
    }
}
