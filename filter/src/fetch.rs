//! The HTTP requests the filter makes through Envoy (OIDC discovery, JWKS), and the
//! checks on their replies. Envoy reports connect and TLS failures as a synthetic
//! 503, so the status of every reply is checked, never assumed.

use crate::config::{Config, RemoteSource, SourceKind};
use crate::http_url::HttpUrl;
use crate::jwks::{self, KeySet};
use std::collections::BTreeMap;

/// A request to dispatch through an Envoy cluster. A token endpoint call carries
/// the client's credentials, a code or a refresh token in its headers and body:
/// `Debug` shows only the header names and the body's size.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("cluster", &self.cluster)
            .field("headers", &names)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Which document a dispatched request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Discovery,
    Jwks,
}

#[derive(Debug)]
pub enum Next {
    Fetch(Step, HttpRequest),
    Done { keys: KeySet, jwks_text: Vec<u8> },
    Failed(String),
}

/// Largest discovery document read; real ones are a few KB.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// The first request for a source: discovery, or the JWKS directly.
pub fn start(config: &Config, source: &RemoteSource) -> Next {
    match &source.kind {
        SourceKind::Jwks(url) => {
            Next::Fetch(Step::Jwks, get(url, &config.clusters, source.timeout_ms))
        }
        SourceKind::Discovery { url, .. } => Next::Fetch(
            Step::Discovery,
            get(&discovery_url(url), &config.clusters, source.timeout_ms),
        ),
    }
}

/// What follows a reply. `body` is `None` when the host could not read it.
pub fn on_reply(
    config: &Config,
    source: &RemoteSource,
    step: Step,
    status: Option<u32>,
    body: Option<&[u8]>,
) -> Next {
    let body = match (status, body) {
        (Some(200), Some(body)) => body,
        (Some(200), None) => return Next::Failed(format!("{step:?} reply has no readable body")),
        (Some(status), _) => return Next::Failed(format!("{step:?} fetch answered HTTP {status}")),
        (None, _) => {
            return Next::Failed(format!(
                "{step:?} fetch failed (no status: timeout or reset)"
            ))
        }
    };
    match step {
        Step::Discovery => {
            let SourceKind::Discovery { issuer, .. } = &source.kind else {
                return Next::Failed("unexpected discovery reply".into());
            };
            match jwks_uri_from_discovery(body, issuer) {
                Ok(url) => Next::Fetch(Step::Jwks, get(&url, &config.clusters, source.timeout_ms)),
                Err(why) => Next::Failed(why),
            }
        }
        Step::Jwks => match jwks::parse_jwks(body, config.max_jwks_bytes) {
            Ok(keys) => Next::Done {
                keys,
                jwks_text: body.to_vec(),
            },
            Err(why) => Next::Failed(why),
        },
    }
}

/// Largest body worth reading for a step; a larger reply fails without being read.
pub fn max_body_bytes(config: &Config, step: Step) -> usize {
    match step {
        Step::Discovery => MAX_DISCOVERY_BYTES,
        Step::Jwks => config.max_jwks_bytes,
    }
}

pub fn get(url: &HttpUrl, clusters: &BTreeMap<String, String>, timeout_ms: u64) -> HttpRequest {
    request("GET", url, clusters, timeout_ms)
}

/// A form POST (token endpoint); `extra_headers` carry client authentication.
pub fn post_form(
    url: &HttpUrl,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
    form: &[(&str, &str)],
    extra_headers: Vec<(String, String)>,
) -> HttpRequest {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
        .into_bytes();
    let mut request = request("POST", url, clusters, timeout_ms);
    request.headers.push((
        "content-type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    request.headers.extend(extra_headers);
    request.body = Some(body);
    request
}

fn request(
    method: &str,
    url: &HttpUrl,
    clusters: &BTreeMap<String, String>,
    timeout_ms: u64,
) -> HttpRequest {
    HttpRequest {
        cluster: cluster_for(url, clusters),
        headers: vec![
            (":method".into(), method.into()),
            (":path".into(), url.path_and_query()),
            (":authority".into(), url.authority()),
            (":scheme".into(), url.scheme().as_str().into()),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
        timeout_ms,
    }
}

/// The configured cluster for the URL's `host:port` (or `host`), else Istio's
/// outbound cluster name, which a sidecar or gateway already has for a ServiceEntry.
pub fn cluster_for(url: &HttpUrl, clusters: &BTreeMap<String, String>) -> String {
    let host = url.host();
    let port = url.port_or_default();
    clusters
        .get(&format!("{host}:{port}"))
        .or_else(|| clusters.get(host))
        .cloned()
        .unwrap_or_else(|| format!("outbound|{port}||{host}"))
}

/// `<issuer>/.well-known/openid-configuration` (OIDC Discovery 1.0, section 4).
pub fn discovery_url(issuer: &HttpUrl) -> HttpUrl {
    issuer.with_path(&format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    ))
}

/// The `jwks_uri` of a discovery document whose `issuer` is the one configured, as
/// OIDC Discovery section 4.3 requires.
pub fn jwks_uri_from_discovery(body: &[u8], issuer: &str) -> Result<HttpUrl, String> {
    if body.len() > MAX_DISCOVERY_BYTES {
        return Err("discovery document is too large".into());
    }
    let document = crate::strict_json::parse(body)
        .map_err(|e| format!("discovery document is not JSON: {e}"))?;
    let published = document
        .get("issuer")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if published != issuer {
        return Err(format!(
            "discovery document names issuer `{published}`, not `{issuer}`"
        ));
    }
    let uri = document
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or("discovery document has no `jwks_uri`")?;
    parse_http_url(uri).map_err(|why| format!("`jwks_uri` {why}"))
}

/// An http(s) URL with a host; see [`HttpUrl`] for what it refuses.
pub fn parse_http_url(text: &str) -> Result<HttpUrl, String> {
    HttpUrl::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn url(text: &str) -> HttpUrl {
        HttpUrl::parse(text).unwrap()
    }

    /// A token endpoint call's credentials, code or refresh token never show.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_shows_only_header_names_and_the_body_size() {
        let request = HttpRequest {
            cluster: "idp".into(),
            headers: vec![("authorization".into(), "Basic c2VjcmV0".into())],
            body: Some(b"refresh_token=r-secret".to_vec()),
            timeout_ms: 1,
        };
        let text = format!("{request:?}");
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("r-secret"),
            "{text}"
        );
        assert!(
            text.contains("authorization") && text.contains("22"),
            "{text}"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_plain_http_urls_are_accepted() {
        // The first was found by the `config` fuzz target when `url` parsed these.
        for text in [
            "http://pB\u{22e}A/",
            "http:\\\\B\u{22e}/",
            "ftp://idp.test/",
        ] {
            assert!(parse_http_url(text).is_err(), "{text}");
        }
        let ok = parse_http_url("https://IdP.test:8443/a%C3%A9?q=%FF").unwrap();
        assert_eq!(ok.host(), "idp.test");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cluster_defaults_to_istio_outbound_naming() {
        let none = BTreeMap::new();
        assert_eq!(
            cluster_for(&url("https://idp.example.com/jwks"), &none),
            "outbound|443||idp.example.com"
        );
        assert_eq!(
            cluster_for(&url("http://IdP.example.com:8080/j"), &none),
            "outbound|8080||idp.example.com"
        );
        let mut clusters = BTreeMap::new();
        clusters.insert("idp.example.com".to_string(), "idp".to_string());
        clusters.insert("127.0.0.1:9000".to_string(), "local".to_string());
        assert_eq!(
            cluster_for(&url("https://idp.example.com/jwks"), &clusters),
            "idp"
        );
        assert_eq!(
            cluster_for(&url("http://127.0.0.1:9000/jwks"), &clusters),
            "local"
        );
        assert_eq!(
            cluster_for(&url("http://127.0.0.1:9001/jwks"), &clusters),
            "outbound|9001||127.0.0.1"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn requests_carry_path_query_and_authority() {
        let request = get(
            &url("https://idp.test:8443/keys?v=2"),
            &BTreeMap::new(),
            5000,
        );
        assert!(request
            .headers
            .contains(&(":path".into(), "/keys?v=2".into())));
        assert!(request
            .headers
            .contains(&(":authority".into(), "idp.test:8443".into())));
        assert!(request.headers.contains(&(":method".into(), "GET".into())));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn discovery_url_appends_the_well_known_path() {
        let cases = [
            (
                "https://idp.test",
                "https://idp.test/.well-known/openid-configuration",
            ),
            (
                "https://idp.test/",
                "https://idp.test/.well-known/openid-configuration",
            ),
            (
                "https://idp.test/realms/x",
                "https://idp.test/realms/x/.well-known/openid-configuration",
            ),
        ];
        for (issuer, expected) in cases {
            assert_eq!(discovery_url(&url(issuer)).to_string(), expected);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn discovery_must_name_our_issuer_and_an_http_jwks_uri() {
        let good = br#"{"issuer":"https://idp.test","jwks_uri":"https://keys.idp.test/jwks"}"#;
        assert_eq!(
            jwks_uri_from_discovery(good, "https://idp.test")
                .unwrap()
                .to_string(),
            "https://keys.idp.test/jwks"
        );
        assert!(jwks_uri_from_discovery(good, "https://other.test").is_err());
        let bad_uri = br#"{"issuer":"i","jwks_uri":"file:///etc/passwd"}"#;
        assert!(jwks_uri_from_discovery(bad_uri, "i").is_err());
        assert!(jwks_uri_from_discovery(b"<html>", "i").is_err());
        assert!(jwks_uri_from_discovery(br#"{"issuer":"i"}"#, "i").is_err());
    }
}
