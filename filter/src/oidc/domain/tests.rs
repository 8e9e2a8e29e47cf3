use super::*;
use crate::config::Config;
use wasm_bindgen_test::wasm_bindgen_test;

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn config(fields: &str) -> Config {
    Config::parse(
        format!(
            r#"{{"oidc":{{"issuer":"https://idp.test","clientId":"c","clientSecret":"s",
                "cookieSecrets":["{KEY}"],"cookieDomain":"example.com"{fields}}}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn domain_config() -> Config {
    config(r#","redirectUri":"https://auth.example.com/oauth2/callback""#)
}

fn callback_on(authority: &str) -> Headers {
    Headers::of(&[
        (":scheme", "https"),
        (":authority", authority),
        (":path", "/oauth2/callback"),
    ])
}

fn location(config: &Config, return_to: &str) -> String {
    let oidc = config.top_level.oidc.as_ref().unwrap();
    return_location(oidc, &callback_on("auth.example.com"), return_to)
}

#[wasm_bindgen_test(unsupported = test)]
fn hosts_within_a_domain() {
    for (host, domain, inside) in [
        ("example.com", "example.com", true),
        ("a.example.com", "example.com", true),
        ("A.b.EXAMPLE.com", "example.com", true),
        ("badexample.com", "example.com", false),
        ("example.com.evil.com", "example.com", false),
        ("a.example.com.", "example.com", false),
        ("example.com.", "example.com", false),
        (".example.com", "example.com", true),
        ("com", "example.com", false),
        ("", "example.com", false),
        ("a.example.com", "", false),
        ("caf\u{e9}.example.com", "example.com", true),
        ("x\u{e9}example.com", "example.com", false),
    ] {
        assert_eq!(within(host, domain), inside, "{host} in {domain}");
    }
}

/// The return-URL check: every spelling that could leave the allowed hosts falls
/// back to `/` on the callback host.
#[wasm_bindgen_test(unsupported = test)]
fn return_urls_go_to_allowed_hosts_only() {
    let config = domain_config();
    let allowed = [
        (
            "https://a.example.com/reports?id=7",
            "https://a.example.com/reports?id=7",
        ),
        ("https://example.com/", "https://example.com/"),
        (
            "https://deep.a.example.com/x",
            "https://deep.a.example.com/x",
        ),
        ("HTTPS://A.Example.COM/Path", "https://a.example.com/Path"),
        ("https://a.example.com:443/x", "https://a.example.com/x"),
        (
            "https://xn--bcher-kva.example.com/",
            "https://xn--bcher-kva.example.com/",
        ),
        // The callback's own origin: a path, as without redirectUri.
        ("https://auth.example.com/after?x=1", "/after?x=1"),
        ("https://auth.example.com//evil.com", "/"),
        ("/local?q=1", "/local?q=1"),
    ];
    for (return_to, expected) in allowed {
        assert_eq!(location(&config, return_to), expected, "{return_to}");
    }
    let refused = [
        "https://evil.com/",
        "https://example.com.evil.com/",
        "https://a.example.com.evil.com/",
        "https://evil.com?.example.com",
        "https://evil.com/.example.com",
        "https://evil.com#.example.com",
        "https://a.example.com@evil.com/",
        "https://a.example.com:pw@evil.com/",
        "https://evil.com\\.example.com/",
        "https://a.example.com\\@evil.com/",
        "https:\\\\evil.com",
        "https:/evil.com",
        "//evil.com/",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "HTTPS://EVIL.COM/",
        "https://A.EXAMPLE.COM.Evil.Com/",
        "https://a.example.com%40evil.com/",
        "https://evil.com%2f.example.com/",
        "https://evil.com\u{3002}example.com/",
        "https://evil%2ecom/",
        "https://a.example.com%2eevil.com/",
        "https://a.example%2ecom/",
        "https://badexample.com/",
        "https://exa\u{43c}ple.com/",
        "https://a.\u{435}xample.com/",
        "https://a.example.com./",
        "https://example.com./",
        "https://a.example.com:8443/",
        "https://a.example.com:0/",
        "https://a.example.com:99999/",
        "http://a.example.com/",
        "javascript:alert(1)",
        "JavaScript://a.example.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://a.example.com/",
        "https://a.example.com/\tx",
        "https://a.example.com/\r\nset-cookie: x=1",
        " https://a.example.com/",
        "https://[::1]/",
        "https://127.0.0.1/",
        "",
        "https://",
        "a.example.com/x",
    ];
    for return_to in refused {
        assert_eq!(location(&config, return_to), "/", "{return_to:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn allowed_domains_name_hosts_ports_and_subdomains() {
    let config = domain_config();
    let mut oidc = (**config.top_level.oidc.as_ref().unwrap()).clone();
    oidc.allowed_redirect_domains = [
        "app.example.com",
        ".tools.example.com:8443",
        "w.example.com:*",
    ]
    .iter()
    .map(|text| AllowedDomain::parse(text).unwrap())
    .collect();
    let callback = callback_on("auth.example.com");
    for (return_to, expected) in [
        ("https://app.example.com/", "https://app.example.com/"),
        ("https://x.app.example.com/", "/"),
        ("https://other.example.com/", "/"),
        ("https://app.example.com:8443/", "/"),
        (
            "https://tools.example.com:8443/a",
            "https://tools.example.com:8443/a",
        ),
        (
            "https://b.tools.example.com:8443/",
            "https://b.tools.example.com:8443/",
        ),
        ("https://b.tools.example.com/", "/"),
        ("https://w.example.com:1234/", "https://w.example.com:1234/"),
        ("https://w.example.com/", "https://w.example.com/"),
    ] {
        assert_eq!(
            return_location(&oidc, &callback, return_to),
            expected,
            "{return_to}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn plain_http_returns_only_where_the_block_speaks_http() {
    let config = config(
        r#","cookieSecure":false,"redirectUri":"http://auth.example.com:8080/cb",
            "allowedRedirectDomains":[".example.com:8080"]"#,
    );
    let oidc = config.top_level.oidc.as_ref().unwrap();
    let callback = Headers::of(&[(":scheme", "http"), (":authority", "auth.example.com:8080")]);
    for (return_to, expected) in [
        (
            "http://a.example.com:8080/x?y=1",
            "http://a.example.com:8080/x?y=1",
        ),
        ("http://a.example.com/x", "/"),
        ("http://auth.example.com:8080/z", "/z"),
        ("http://evil.com:8080/", "/"),
    ] {
        assert_eq!(
            return_location(oidc, &callback, return_to),
            expected,
            "{return_to}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn without_redirect_uri_only_the_callbacks_origin() {
    let config = config("");
    assert_eq!(location(&config, "https://a.example.com/x"), "/");
    assert_eq!(location(&config, "https://auth.example.com/x"), "/x");
    assert_eq!(location(&config, "/x?y"), "/x?y");
    assert_eq!(location(&config, "//evil.com"), "/");
}

#[wasm_bindgen_test(unsupported = test)]
fn allowed_domain_entries() {
    for good in [
        "example.com",
        ".example.com",
        "a.example.com:8443",
        ".example.com:*",
        "localhost",
        "127.0.0.1:8080",
    ] {
        assert!(AllowedDomain::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        ".",
        "*.example.com",
        "Example.com",
        "https://example.com",
        "example.com/",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:+1",
        "example.com:80:80",
        "..example.com",
        "exa mple.com",
        "user@example.com",
        "example.com.",
        "caf\u{e9}.com",
    ] {
        assert!(AllowedDomain::parse(bad).is_err(), "{bad:?}");
    }
}
