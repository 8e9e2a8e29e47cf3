//! The plugin configuration (`Config::parse`), and what is derived from a parsed
//! one (remote sources, their first fetch request).
//!
//! First byte even: the rest is the configuration as is (arbitrary bytes).
//! First byte odd: the rest is JSON merged into a valid full configuration
//! (objects merge key by key, arrays element by element, anything else replaces),
//! so that mutations reach the checks behind a well-formed document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_filter::config::{Config, RuleKeys, TokenLocation};
use oidc_filter::{duration, fetch};
use serde_json::Value;

const BASE: &str = r#"{
  "jwtRules": [
    {"issuer": "https://issuer.test", "audiences": ["api"],
     "jwks": "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
     "fromHeaders": [{"name": "X-Jwt", "prefix": "Bearer "}], "fromParams": ["t"], "fromCookies": ["c"],
     "forwardOriginalToken": true, "outputPayloadToHeader": "x-payload",
     "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}],
     "spaceDelimitedClaims": ["roles"], "timeout": "1.5s"},
    {"issuer": "https://remote.test", "jwksUri": "https://remote.test:8443/keys"},
    {"issuer": "https://discovered.test/realm"}
  ],
  "oidc": {"issuer": "https://idp.test", "clientId": "app", "clientSecret": "secret",
           "scopes": ["openid", "email"], "callbackPath": "/cb", "logoutPath": "/logout",
           "postLogoutRedirectUri": "/bye", "cookieName": "s", "cookieDomain": "app.test",
           "cookieSecure": true, "sessionTtl": "8h",
           "cookieSecrets": ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
           "tokenEndpointAuthMethod": "client_secret_post",
           "forwardToken": {"token": "id_token", "header": "x-id-token"},
           "outputClaimToHeaders": [{"header": "x-email", "claim": "email"}], "timeout": "2s"},
  "authorizationPolicies": [
    {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"], "methods": ["POST"]}}]}]},
    {"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["dev"]},
                         {"key": "request.headers[x-tenant]", "notValues": ["other"]}]}]}
  ],
  "publicPaths": ["/healthz", "/static/*"],
  "clusters": {"idp.test": "idp", "remote.test:8443": "remote"},
  "clockSkewSeconds": 30, "jwksCacheDuration": "5m", "jwksMinRefetchInterval": "10s",
  "maxTokenBytes": 8192, "maxJwksBytes": 65536
}"#;

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) => {
            for (index, value) in patch.into_iter().enumerate() {
                match base.get_mut(index) {
                    Some(existing) => merge(existing, value),
                    None => base.push(value),
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn check(bytes: &[u8]) {
    let config = match Config::parse(bytes) {
        Ok(config) => config,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let logins = std::iter::once(&config.top_level)
        .chain(&config.apps)
        .filter_map(|app| app.oidc.as_ref());
    assert!(!config.rules.is_empty() || logins.clone().next().is_some());
    for rule in &config.rules {
        assert!(!rule.issuer.is_empty());
        assert!(!rule.locations.is_empty(), "a rule with no token location");
        for &location in &rule.locations {
            assert!(location < config.locations.len());
        }
        if let RuleKeys::Remote(source) = rule.keys {
            assert!(source < config.sources.len());
        }
    }
    for location in &config.locations {
        if let TokenLocation::Header { name, .. } = location {
            assert_eq!(name, &name.to_ascii_lowercase());
        }
    }
    for header in &config.output_headers {
        assert_eq!(header, &header.to_ascii_lowercase());
    }
    for oidc in logins {
        assert!(oidc.source < config.sources.len());
        assert!(!oidc.cookie_secrets.is_empty());
        assert!(oidc.callback_path.starts_with('/') && oidc.logout_path.starts_with('/'));
    }
    for source in &config.sources {
        let _ = source.id();
        let _ = fetch::start(&config, source);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = duration::parse_millis(text);
    }
    if mode % 2 == 0 {
        check(rest);
    } else if let Ok(patch) = serde_json::from_slice::<Value>(rest) {
        let mut config: Value = serde_json::from_str(BASE).unwrap();
        merge(&mut config, patch);
        check(&serde_json::to_vec(&config).unwrap());
    }
});
