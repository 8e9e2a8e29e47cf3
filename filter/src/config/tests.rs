use super::*;
use wasm_bindgen_test::wasm_bindgen_test;

const JWKS: &str = r#"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text.as_bytes())
}

fn path_of(text: &str) -> String {
    parse(text).unwrap_err().path
}

#[wasm_bindgen_test(unsupported = test)]
fn accepts_every_istio_jwt_rule_field() {
    let config = parse(
        r#"{"jwtRules":[{
            "issuer":"https://idp.test","audiences":["a","b"],"jwksUri":"https://idp.test/jwks",
            "fromHeaders":[{"name":"X-Token","prefix":"Bearer "}],"fromParams":["t"],"fromCookies":["c"],
            "forwardOriginalToken":true,"outputPayloadToHeader":"X-Payload",
            "outputClaimToHeaders":[{"header":"x-sub","claim":"sub"}],
            "spaceDelimitedClaims":["scope"],"timeout":"1.5s"}],
          "clusters":{"idp.test":"idp"},"clockSkewSeconds":30,"jwksCacheDuration":"5m",
          "jwksMinRefetchInterval":"10s","maxTokenBytes":8192,"maxJwksBytes":65536}"#,
    )
    .unwrap();
    let rule = &config.rules[0];
    assert_eq!(rule.timeout_ms, 1_500);
    assert_eq!(rule.output_payload_to_header.as_deref(), Some("x-payload"));
    assert_eq!(config.locations.len(), 3);
    assert_eq!(
        config.locations[0],
        TokenLocation::Header {
            name: "x-token".into(),
            prefix: "Bearer ".into()
        }
    );
    assert_eq!(config.output_headers, ["x-payload", "x-sub"]);
    assert_eq!(config.jwks_cache_duration_ms, 300_000);
    assert!(matches!(rule.keys, RuleKeys::Remote(0)));
}

#[wasm_bindgen_test(unsupported = test)]
fn defaults_follow_istio_and_envoy() {
    let config = parse(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":"{JWKS}"}}]}}"#
    ))
    .unwrap();
    assert_eq!(config.clock_skew_seconds, 60);
    assert_eq!(config.rules[0].timeout_ms, 5_000);
    assert!(!config.rules[0].forward_original_token);
    assert_eq!(
        config.locations,
        [
            TokenLocation::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            },
            TokenLocation::Param("access_token".into())
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rules_sharing_a_jwks_uri_share_one_source() {
    let config = parse(
        r#"{"jwtRules":[
            {"issuer":"a","jwksUri":"https://idp.test/jwks","timeout":"1s"},
            {"issuer":"b","jwks_uri":"https://idp.test/jwks","timeout":"3s"},
            {"issuer":"https://c.test"}]}"#,
    )
    .unwrap();
    assert_eq!(config.sources.len(), 2);
    assert_eq!(config.sources[0].timeout_ms, 3_000);
    assert!(
        matches!(&config.sources[1].kind, SourceKind::Discovery { issuer, .. } if issuer == "https://c.test")
    );
    // Logged as written: no `/` added to the issuer.
    assert_eq!(config.sources[1].id(), "discovery https://c.test");
}

#[wasm_bindgen_test(unsupported = test)]
fn errors_name_the_field() {
    let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let oidc = |fields: &str| {
        format!(r#"{{"oidc":{{"issuer":"https://i","clientId":"c","clientSecret":"s",{fields}}}}}"#)
    };
    let nine_keys = format!(
        r#""cookieSecrets":[{}]"#,
        vec![format!("\"{key}\""); 9].join(",")
    );
    for (text, path) in [
        (
            oidc(&format!(r#""cookieSecrets":["{key}"],"timeout":"0s""#)),
            "oidc.timeout",
        ),
        (
            oidc(&format!(r#""cookieSecrets":["{key}"],"timeout":"2m""#)),
            "oidc.timeout",
        ),
        (oidc(&nine_keys), "oidc.cookieSecrets"),
    ] {
        assert_eq!(path_of(&text), path, "{text}");
    }
    let cases = [
        (
            r#"{"jwtRules":[{"jwksUri":"https://x/j"}]}"#,
            "jwtRules[0].issuer",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","fromHeaders":[{"nam":"x"}]}]}"#,
            "jwtRules[0].fromHeaders[0].nam",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"not a url"}]}"#,
            "jwtRules[0].jwksUri",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"ftp://x/j"}]}"#,
            "jwtRules[0].jwksUri",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","timeout":"5 seconds"}]}"#,
            "jwtRules[0].timeout",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","jwks":"{}"}]}"#,
            "jwtRules[0]",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwks":"{\"keys\":[]}"}]}"#,
            "jwtRules[0].jwks",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","fromHeaders":[{"name":"bad header"}]}]}"#,
            "jwtRules[0].fromHeaders[0].name",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","outputClaimToHeaders":[{"header":"x:y","claim":"sub"}]}]}"#,
            "jwtRules[0].outputClaimToHeaders[0].header",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","audiences":[""]}]}"#,
            "jwtRules[0].audiences[0]",
        ),
        (r#"{"jwtRules":[{"issuer":"not-a-url"}]}"#, "jwtRules[0]"),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j"},{"issuer":"i","jwksUri":"https://x/j"}]}"#,
            "jwtRules[1].issuer",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j"}],"bogus":1}"#,
            "bogus",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j"}],"maxTokenBytes":10}"#,
            "maxTokenBytes",
        ),
        (r#"{"jwtRules":[{"issuer":7}]}"#, "jwtRules[0].issuer"),
        (r#"{"jwtRules":[]}"#, "jwtRules"),
    ];
    for (text, path) in cases {
        assert_eq!(path_of(text), path, "{text}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_fields_are_errors_with_their_name() {
    let error = parse(r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/j","audience":["a"]}]}"#)
        .unwrap_err();
    assert_eq!(error.path, "jwtRules[0].audience");
    assert!(
        error.problem.contains("unknown field `audience`"),
        "{error}"
    );
    let top = parse(r#"{"jwtRule":[]}"#).unwrap_err();
    assert!(top.problem.contains("unknown field `jwtRule`"), "{top}");
}

#[wasm_bindgen_test(unsupported = test)]
fn empty_or_malformed_text_is_rejected() {
    for text in ["", "  ", "{", "[]", "null", r#"{"jwtRules":[]} x"#] {
        assert!(parse(text).is_err(), "{text:?}");
    }
    // YAML (or anything not an object) is told that the configuration is JSON.
    for text in [
        "jwtRules:\n- issuer: a\n",
        "  issuer: x",
        "---\njwtRules: []",
    ] {
        let error = parse(text).unwrap_err().to_string();
        assert!(
            error.starts_with("the plugin configuration must be JSON"),
            "{error}"
        );
    }
    let error = parse(r#"{"jwtRules": [}"#).unwrap_err().to_string();
    assert!(!error.contains("must be JSON"), "{error}");
}

/// Istio's principals carry no scheme; one written with `spiffe://` loads (Istio
/// accepts it too) and never matches, so the load warns.
#[wasm_bindgen_test(unsupported = test)]
fn principals_with_a_scheme_are_warned_about() {
    let config = parse(
        r#"{"jwtRules":[{"issuer":"a","jwksUri":"https://idp.test/jwks"}],
            "authorizationPolicies":[{"rules":[
              {"from":[{"source":{"principals":["spiffe://cluster.local/ns/a/sa/b"]}}]},
              {"from":[{"source":{"notPrincipals":["cluster.local/ns/a/sa/c"]}}]},
              {"when":[{"key":"source.principal","values":["spiffe://x/ns/y/sa/z"]}]}]}],
            "apps":[{"name":"one","hosts":["one.test"],"authorizationPolicies":[{"rules":[
              {"from":[{"source":{"notPrincipals":["spiffe://*"]}}]}]}]}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.warnings,
        [
            "authorizationPolicies: principal `spiffe://cluster.local/ns/a/sa/b` never matches: \
             Istio's principals have no `spiffe://`; write `cluster.local/ns/a/sa/b`",
            "authorizationPolicies: principal `spiffe://x/ns/y/sa/z` never matches: \
             Istio's principals have no `spiffe://`; write `x/ns/y/sa/z`",
            "apps[0].authorizationPolicies: principal `spiffe://*` never matches: \
             Istio's principals have no `spiffe://`; write `*`",
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn accepts_the_istio_schema_properties() {
    // Every property of Istio's JWTRule schema is a field we accept.
    let properties = [
        "audiences",
        "forwardOriginalToken",
        "fromCookies",
        "fromHeaders",
        "fromParams",
        "issuer",
        "jwks",
        "jwks_uri",
        "jwksUri",
        "outputClaimToHeaders",
        "outputPayloadToHeader",
        "spaceDelimitedClaims",
        "timeout",
    ];
    for property in properties {
        let text = format!(r#"{{"jwtRules":[{{"{property}":null}}]}}"#);
        let error = parse(&text).unwrap_err();
        assert!(
            !error.problem.contains("unknown field"),
            "{property}: {error}"
        );
    }
}

/// A `RequestAuthentication` resource pasted into `jwtRules` counts as its rules;
/// errors name the path inside it.
#[wasm_bindgen_test(unsupported = test)]
fn request_authentication_resources_stand_for_their_rules() {
    let config = parse(
        r#"{"jwtRules":[
            {"issuer":"https://a.test","jwksUri":"https://a.test/jwks"},
            {"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication",
             "metadata":{"name":"jwt","namespace":"foo","labels":{"x":"y"}},
             "spec":{"selector":{"matchLabels":{"app":"x"}},"jwtRules":[
               {"issuer":"https://b.test","jwksUri":"https://b.test/jwks"},
               {"issuer":"https://c.test","jwksUri":"https://c.test/jwks","fromHeaders":[{"name":"x-jwt"}]}]},
             "status":{}}]}"#,
    )
    .unwrap();
    let issuers: Vec<&str> = config.rules.iter().map(|r| r.issuer.as_str()).collect();
    assert_eq!(
        issuers,
        ["https://a.test", "https://b.test", "https://c.test"]
    );
    assert!(config.locations.contains(&TokenLocation::Header {
        name: "x-jwt".into(),
        prefix: String::new()
    }));

    let resource = |spec: &str| {
        format!(
            r#"{{"jwtRules":[{{"issuer":"https://a.test","jwksUri":"https://a.test/jwks"}},
                {{"apiVersion":"security.istio.io/v1beta1","kind":"RequestAuthentication","spec":{spec}}}]}}"#
        )
    };
    assert_eq!(
        path_of(&resource(
            r#"{"jwtRules":[{"issuer":"https://b.test","jwksUri":"nope"}]}"#
        )),
        "jwtRules[1].spec.jwtRules[0].jwksUri"
    );
    let duplicate = parse(&resource(
        r#"{"jwtRules":[{"issuer":"https://a.test","jwksUri":"https://a.test/k"}]}"#,
    ))
    .unwrap_err();
    assert_eq!(duplicate.path, "jwtRules[1].spec.jwtRules[0].issuer");
    assert!(duplicate
        .problem
        .contains("already configured in jwtRules[0]"));
    assert_eq!(
        path_of(r#"{"jwtRules":[{"apiVersion":"v1","kind":"RequestAuthentication","spec":{}}]}"#),
        "jwtRules[0].apiVersion"
    );
    assert_eq!(
        path_of(
            r#"{"jwtRules":[{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","spec":{}}]}"#
        ),
        "jwtRules[0].kind"
    );
    assert_eq!(
        path_of(
            r#"{"jwtRules":[{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication"}]}"#
        ),
        "jwtRules[0].spec"
    );
    // A resource without rules is no rule: with nothing else, the configuration
    // has none.
    assert_eq!(
        path_of(
            r#"{"jwtRules":[{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication","spec":{}}]}"#
        ),
        "jwtRules"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn signature_verification_is_auto_host_or_module() {
    let with = |value: &str| {
        parse(&format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwks":"{JWKS}"}}]{value}}}"#
        ))
    };
    assert_eq!(
        with("").unwrap().signature_verification,
        SignatureVerification::Auto
    );
    for (text, mode) in [
        ("auto", SignatureVerification::Auto),
        ("host", SignatureVerification::Host),
        ("module", SignatureVerification::Module),
    ] {
        let config = with(&format!(r#","signatureVerification":"{text}""#)).unwrap();
        assert_eq!(config.signature_verification, mode);
        // Parsing only reads the field; the host is probed at load (host::root).
        assert!(!config.signature_backend.uses_host());
    }
    for bad in [r#""Host""#, r#""""#, "true", "1"] {
        let error = with(&format!(r#","signatureVerification":{bad}"#)).unwrap_err();
        assert_eq!(error.path, "signatureVerification", "{bad}: {error}");
    }
    let error = with(r#","signatureVerification":"boringssl""#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "signatureVerification: `boringssl` is not `auto`, `host` or `module`"
    );
}

/// `redirectUri`, `cookieDomain` and `allowedRedirectDomains` (one sign-in for a domain).
#[wasm_bindgen_test(unsupported = test)]
fn one_sign_in_for_a_domain() {
    let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let with = |oidc: &str, rest: &str| {
        format!(
            r#"{{"oidc":{{"issuer":"https://i","clientId":"c","clientSecret":"s",
                "cookieSecrets":["{key}"]{oidc}}}{rest}}}"#
        )
    };
    let domain =
        r#","cookieDomain":".example.com","redirectUri":"https://auth.example.com/sso/cb""#;
    let config = parse(&with(domain, "")).unwrap();
    let oidc = config.top_level.oidc.as_ref().unwrap();
    assert_eq!(
        oidc.redirect_uri.as_deref(),
        Some("https://auth.example.com/sso/cb")
    );
    assert_eq!(oidc.redirect_host.as_deref(), Some("auth.example.com"));
    assert_eq!(oidc.callback_path, "/sso/cb");
    assert_eq!(oidc.domain.as_deref(), Some("example.com"));
    assert_eq!(oidc.cookie_domain.as_deref(), Some(".example.com"));
    assert_eq!(
        oidc.allowed_redirect_domains,
        [crate::oidc::domain::AllowedDomain::domain_and_subdomains(
            "example.com"
        )]
    );
    // Apps on hosts of the domain share the top level's sign-in.
    let apps = r#","apps":[{"name":"a","hosts":["a.example.com"]},{"name":"b","hosts":["*.b.example.com"]}]"#;
    assert!(parse(&with(domain, apps)).is_ok());
    let local = r#","cookieDomain":"example.test","cookieSecure":false,
        "redirectUri":"http://auth.example.test:8080/oauth2/callback",
        "allowedRedirectDomains":[".example.test:8080","app.other.test"]"#;
    assert_eq!(
        parse(&with(local, ""))
            .unwrap()
            .top_level
            .oidc
            .unwrap()
            .allowed_redirect_domains
            .len(),
        2
    );

    let cases = [
        (
            with(r#","redirectUri":"https://auth.example.com/cb""#, ""),
            "oidc.redirectUri",
            "cookieDomain",
        ),
        (
            with(
                r#","cookieDomain":"example.com","redirectUri":"http://auth.example.com/cb""#,
                "",
            ),
            "oidc.redirectUri",
            "https",
        ),
        (
            with(
                r#","cookieDomain":"example.com","redirectUri":"https://auth.example.org/cb""#,
                "",
            ),
            "oidc.redirectUri",
            "not within",
        ),
        (
            with(
                r#","cookieDomain":"example.com","redirectUri":"/oauth2/callback""#,
                "",
            ),
            "oidc.redirectUri",
            "",
        ),
        (
            with(
                r#","cookieDomain":"example.com","redirectUri":"https://auth.example.com/cb?x=1""#,
                "",
            ),
            "oidc.redirectUri",
            "query",
        ),
        (
            with(&format!(r#"{domain},"callbackPath":"/cb""#), ""),
            "oidc.callbackPath",
            "only one",
        ),
        (
            with(r#","cookieDomain":"example.com; Secure""#, ""),
            "oidc.cookieDomain",
            "domain name",
        ),
        (
            with(r#","cookieDomain":"https://example.com""#, ""),
            "oidc.cookieDomain",
            "domain name",
        ),
        (
            with(r#","allowedRedirectDomains":[".example.com"]"#, ""),
            "oidc.allowedRedirectDomains",
            "only with `redirectUri`",
        ),
        (
            with(&format!(r#"{domain},"allowedRedirectDomains":[]"#), ""),
            "oidc.allowedRedirectDomains",
            "at least one",
        ),
        (
            with(
                &format!(r#"{domain},"allowedRedirectDomains":["a.example.com","*.example.com"]"#),
                "",
            ),
            "oidc.allowedRedirectDomains[1]",
            "not a host",
        ),
        (
            with(
                domain,
                r#","apps":[{"name":"a","hosts":["a.example.com","a.example.org"]}]"#,
            ),
            "apps[0].hosts[1]",
            "not within cookieDomain",
        ),
        (
            with(domain, r#","apps":[{"name":"a","hosts":["*.com"]}]"#),
            "apps[0].hosts[0]",
            "not within cookieDomain",
        ),
        // The callback host is another login's: the filter there could not finish it.
        (
            with(
                domain,
                &format!(
                    r#","apps":[{{"name":"a","hosts":["auth.example.com"],"oidc":{{"issuer":"https://i",
                    "clientId":"c","clientSecret":"s","cookieSecrets":["{key}"]}}}}]"#
                ),
            ),
            "oidc.redirectUri",
            "apps[0]",
        ),
        (
            with(
                "",
                &format!(
                    r#","apps":[{{"name":"a","hosts":["a.example.com"],"oidc":{{"issuer":"https://i",
                    "clientId":"c","clientSecret":"s","cookieSecrets":["{key}"],
                    "cookieDomain":"example.com","redirectUri":"https://auth.example.com/cb"}}}}]"#
                ),
            ),
            "apps[0].oidc.redirectUri",
            "the top level",
        ),
        (
            with(&format!(r#"{domain},"redirectUrl":"x""#), ""),
            "oidc.redirectUrl",
            "",
        ),
    ];
    for (text, path, problem) in cases {
        let error = parse(&text).unwrap_err();
        assert_eq!(error.path, path, "{text}: {error}");
        assert!(error.problem.contains(problem), "{text}: {error}");
    }
    // An app's own login whose callback host is one of its hosts.
    let own = format!(
        r#"{{"apps":[{{"name":"a","hosts":["a.example.com","auth.example.com"],"oidc":{{"issuer":"https://i",
        "clientId":"c","clientSecret":"s","cookieSecrets":["{key}"],
        "cookieDomain":"example.com","redirectUri":"https://auth.example.com/cb"}}}}]}}"#
    );
    assert!(parse(&own).is_ok(), "{:?}", parse(&own).err());
}

const INTROSPECTION: &str = r#""issuer":"https://idp.test","introspectionEndpoint":"https://idp.test/introspect","clientId":"gw""#;

fn introspection(fields: &str) -> Result<Config, ConfigError> {
    parse(&format!(
        r#"{{"introspection":[{{{INTROSPECTION},{fields}}}]}}"#
    ))
}

#[wasm_bindgen_test(unsupported = test)]
fn introspection_rules_alone_are_a_configuration() {
    let config = introspection(
        r#""clientSecret":"s","audiences":["api"],"fromHeaders":[{"name":"X-Token"}],
           "fromCookies":["at"],"forwardOriginalToken":true,
           "outputClaimToHeaders":[{"header":"x-client","claim":"client_id"}],
           "cacheDuration":"2m","negativeCacheDuration":"3s","timeout":"750ms",
           "tokenEndpointAuthMethod":"client_secret_post""#,
    )
    .unwrap();
    let rule = &config.introspection[0];
    assert_eq!(rule.cache_duration_ms, 120_000);
    assert_eq!(rule.negative_cache_duration_ms, 3_000);
    assert_eq!(rule.timeout_ms, 750);
    assert_eq!(rule.client_auth, ClientAuth::Post);
    assert_eq!(rule.locations, [0, 1]);
    assert_eq!(config.output_headers, ["x-client"]);
    assert!(config.rules.is_empty());
    // Defaults: `Authorization: Bearer` only, basic auth, 60 s and 5 s.
    let config = introspection(r#""clientSecret":"s""#).unwrap();
    let rule = &config.introspection[0];
    assert_eq!(
        config.locations,
        [TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into()
        }]
    );
    assert_eq!(rule.client_auth, ClientAuth::Basic);
    assert_eq!(
        (rule.cache_duration_ms, rule.negative_cache_duration_ms),
        (60_000, 5_000)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn introspection_errors_name_the_field() {
    let cases = [
        (r#""clientSecret":"s","extra":1"#, "introspection[0].extra"),
        (
            r#""clientSecret":"s","cacheDuration":"forever""#,
            "introspection[0].cacheDuration",
        ),
        (
            r#""clientSecret":"s","cacheDuration":"25h""#,
            "introspection[0].cacheDuration",
        ),
        (
            r#""clientSecret":"s","negativeCacheDuration":"x""#,
            "introspection[0].negativeCacheDuration",
        ),
        (
            r#""clientSecret":"s","timeout":"0s""#,
            "introspection[0].timeout",
        ),
        (
            r#""clientSecret":"s","audiences":[""]"#,
            "introspection[0].audiences[0]",
        ),
        (
            r#""clientSecret":"s","fromHeaders":[{"name":"a b"}]"#,
            "introspection[0].fromHeaders[0].name",
        ),
        (
            r#""clientSecret":"s","fromCookies":[""]"#,
            "introspection[0].fromCookies[0]",
        ),
        (
            r#""clientSecret":"s","tokenEndpointAuthMethod":"none""#,
            "introspection[0].tokenEndpointAuthMethod",
        ),
        (
            r#""clientSecret":"short","tokenEndpointAuthMethod":"client_secret_jwt""#,
            "introspection[0].tokenEndpointAuthMethod",
        ),
        (
            r#""clientSecret":"s","outputClaimToHeaders":[{"header":"x y","claim":"c"}]"#,
            "introspection[0].outputClaimToHeaders[0].header",
        ),
        (r#""extra2":1"#, "introspection[0].extra2"),
        (
            r#""tokenEndpointAuthMethod":"private_key_jwt""#,
            "introspection[0].clientPrivateKeyFromEnv",
        ),
        (
            r#""clientSecret":"s","clientKeyId":"k""#,
            "introspection[0].clientKeyId",
        ),
        (r#""audiences":[]"#, "introspection[0].clientSecret"),
        (
            r#""clientSecret":"s","clientSecretFromEnv":"V""#,
            "introspection[0]",
        ),
        (
            r#""clientSecretFromEnv":"UNSET_VARIABLE""#,
            "introspection[0].clientSecretFromEnv",
        ),
    ];
    for (fields, path) in cases {
        let error = introspection(fields).unwrap_err();
        assert_eq!(error.path, path, "{fields}: {error}");
    }
    let no_endpoint =
        r#"{"introspection":[{"issuer":"urn:idp","clientId":"gw","clientSecret":"s"}]}"#;
    assert_eq!(
        path_of(no_endpoint),
        "introspection[0].introspectionEndpoint"
    );
    let bad_endpoint = r#"{"introspection":[{"issuer":"https://idp.test","introspectionEndpoint":"ftp://x","clientId":"gw","clientSecret":"s"}]}"#;
    assert_eq!(
        path_of(bad_endpoint),
        "introspection[0].introspectionEndpoint"
    );
    let twice = format!(
        r#"{{"introspection":[{{{INTROSPECTION},"clientSecret":"s"}},{{{INTROSPECTION},"clientSecret":"s"}}]}}"#
    );
    assert_eq!(path_of(&twice), "introspection[1].issuer");
    let no_issuer = r#"{"introspection":[{"introspectionEndpoint":"https://i.test/i","clientId":"gw","clientSecret":"s"}]}"#;
    assert_eq!(path_of(no_issuer), "introspection[0].issuer");
    let cache = format!(
        r#"{{"introspection":[{{{INTROSPECTION},"clientSecret":"s"}}],"introspectionCache":{{"maxBytes":1}}}}"#
    );
    assert_eq!(path_of(&cache), "introspectionCache.maxBytes");
}

#[wasm_bindgen_test(unsupported = test)]
fn introspection_secrets_come_from_the_environment() {
    let text =
        format!(r#"{{"introspection":[{{{INTROSPECTION},"clientSecretFromEnv":"GW_SECRET"}}]}}"#);
    let env = |name: &str| (name == "GW_SECRET").then(|| " from-env \n".to_string());
    let config = Config::parse_with_env(text.as_bytes(), &env).unwrap();
    assert_eq!(config.introspection[0].client_secret, "from-env");
    let error = Config::parse_with_env(text.as_bytes(), &|_| Some("  ".into())).unwrap_err();
    assert!(!error.problem.contains("  "), "{error}");
    assert_eq!(error.path, "introspection[0].clientSecretFromEnv");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_introspection_endpoint_may_come_from_discovery_shared_with_jwt_rules() {
    let config = parse(
        r#"{"jwtRules":[{"issuer":"https://idp.test"}],
            "introspection":[{"issuer":"https://idp.test","clientId":"gw","clientSecret":"s"}]}"#,
    )
    .unwrap();
    assert_eq!(config.sources.len(), 1);
    assert_eq!(
        config.introspection[0].endpoint,
        crate::introspection::Endpoint::Discovered(0)
    );
}
