//! Fixed inputs shared by the fuzz targets: the test key set, a configuration
//! that uses it, a signer for fuzzed claims, and the fixed clock.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use oidc_filter::authenticator::{KeyLookup, Keys};
use oidc_filter::config::Config;
use oidc_filter::jwks::{self, KeySet};
use oidc_filter::request::Headers;
use std::sync::OnceLock;

/// The fixed clock (seconds) every target uses; seed tokens are valid at it.
pub const NOW: u64 = 1_700_000_000;
pub const ISSUER: &str = "https://issuer.test";
pub const CLIENT_ID: &str = "api";
pub const NONCE: &str = "n-123";

/// The public keys of filter/testdata: one per algorithm, kid `kid-<ALG>`.
pub const JWKS: &str = include_str!("../fixtures/jwks.json");
const ED25519_PEM: &str = include_str!("../../testdata/ed25519.pem");

pub fn key_set() -> &'static KeySet {
    static SET: OnceLock<KeySet> = OnceLock::new();
    SET.get_or_init(|| jwks::parse_jwks(JWKS.as_bytes(), 1 << 20).unwrap())
}

/// Inline keys, every token location kind, output headers and policies: the
/// whole bearer path with no remote fetch.
pub fn config_text() -> String {
    let jwks = serde_json::to_string(JWKS).unwrap();
    format!(
        r#"{{"jwtRules":[{{"issuer":"{ISSUER}","audiences":["{CLIENT_ID}"],"jwks":{jwks},
            "fromHeaders":[{{"name":"authorization","prefix":"Bearer "}},{{"name":"x-jwt"}}],
            "fromParams":["access_token"],"fromCookies":["jwt"],
            "outputPayloadToHeader":"x-payload",
            "outputClaimToHeaders":[{{"header":"x-sub","claim":"sub"}},{{"header":"x-team","claim":"org.team"}}],
            "spaceDelimitedClaims":["roles"]}},
          {{"issuer":"https://remote.test","jwksUri":"https://remote.test/jwks"}}],
          "publicPaths":["/healthz","/static/*"],
          "authorizationPolicies":[
            {{"action":"DENY","rules":[{{"to":[{{"operation":{{"paths":["/admin*"]}}}}],
              "when":[{{"key":"request.auth.claims[groups]","notValues":["admins"]}}]}}]}},
            {{"rules":[{{"from":[{{"source":{{"requestPrincipals":["{ISSUER}/*"]}}}}],
              "when":[{{"key":"request.auth.claims[scope]","values":["read"]}}]}}]}}]}}"#
    )
}

pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::parse(config_text().as_bytes()).unwrap())
}

/// Remote key sets: the fixed set, fresh, and refetching is allowed.
pub struct FixedRemote;

impl KeyLookup for FixedRemote {
    fn remote_keys(&self, _source: usize) -> Keys<'_> {
        Keys::Ready {
            set: key_set(),
            may_refetch: true,
        }
    }
}

/// Signs `header_json.payload_json` with the Ed25519 test key, so fuzzed claims
/// get past signature verification.
pub fn sign_ed25519(header: &[u8], payload: &[u8]) -> String {
    static KEY: OnceLock<ed25519_compact::KeyPair> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let body: String = ED25519_PEM
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).unwrap();
        // PKCS#8 Ed25519: the 32-byte seed ends the document.
        let seed = ed25519_compact::Seed::from_slice(&der[der.len() - 32..]).unwrap();
        ed25519_compact::KeyPair::from_seed(seed)
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sk.sign(input.as_bytes(), None);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

pub fn headers(pairs: &[(&str, &str)]) -> Headers {
    Headers::new(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    )
}

/// Header values the filter writes must never carry CR, LF or other controls.
pub fn assert_safe_header_value(name: &str, value: &str) {
    assert!(
        oidc_filter::request::is_safe_header_value(value),
        "unsafe value for {name}: {value:?}"
    );
}

/// A browser-login configuration for the test issuer: client `api`, the fixed
/// key set as the issuer's keys, cookie key `[1; 32]`.
pub fn oidc_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = format!(
            r#"{{"oidc":{{"issuer":"{ISSUER}","clientId":"{CLIENT_ID}","clientSecret":"s3cret",
                "cookieSecrets":["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
                "outputClaimToHeaders":[{{"header":"x-email","claim":"email"}}],
                "forwardToken":{{"token":"id_token","header":"authorization"}}}}}}"#
        );
        Config::parse(text.as_bytes()).unwrap()
    })
}

pub fn provider() -> oidc_filter::oidc::provider::Provider {
    let url =
        |path: &str| oidc_filter::http_url::HttpUrl::parse(&format!("{ISSUER}{path}")).unwrap();
    oidc_filter::oidc::provider::Provider {
        issuer: ISSUER.into(),
        authorization_endpoint: url("/auth"),
        token_endpoint: url("/token"),
        jwks_uri: url("/jwks"),
        end_session_endpoint: Some(url("/logout")),
        callback_iss_required: false,
    }
}

/// Entropy that always delivers the same bytes.
pub struct FixedEntropy;

impl oidc_filter::oidc::flow::HostCrypto for FixedEntropy {
    fn fill(&mut self, bytes: &mut [u8]) -> bool {
        bytes.fill(0x42);
        true
    }
}
