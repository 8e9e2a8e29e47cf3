use crate::config::{Config, ConfigError};
use crate::metrics::{AppCounter, Counter};
use crate::pipeline::{decide, Inputs, Verdict, VmState};
use crate::request::Headers;
use crate::session::Session;
use std::collections::HashMap;
use wasm_bindgen_test::wasm_bindgen_test;

const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn oidc(client: &str, extra: &str) -> String {
    format!(
        r#"{{"issuer":"https://idp.test","clientId":"{client}","clientSecret":"s",
            "cookieSecrets":["{KEY_A}"]{extra}}}"#
    )
}

/// Top-level login for `top`, an app `grafana` with its own login, and an app
/// `api` with its own policies and public paths but the top level's login.
fn gateway() -> String {
    format!(
        r#"{{"jwtRules":[{{"issuer":"https://idp.test"}}],
            "oidc":{top},
            "publicPaths":["/healthz"],
            "authorizationPolicies":[{{"rules":[{{"to":[{{"operation":{{"notPaths":["/admin"]}}}}]}}]}}],
            "apps":[
              {{"name":"grafana","hosts":["grafana.example.com","*.grafana.example.com"],
                "oidc":{grafana},"publicPaths":["/public/*"]}},
              {{"name":"api","hosts":["api.example.com"],"allowMissing":true,
                "authorizationPolicies":[]}}
            ]}}"#,
        top = oidc("top", ""),
        grafana = oidc("grafana", ""),
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text.as_bytes())
}

fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse_with_env(text.as_bytes(), &|name| env.get(name).cloned())
}

fn app_name<'a>(config: &'a Config, authority: &str) -> &'a str {
    let headers = Headers::of(&[(":authority", authority), (":path", "/")]);
    &config.app_for(&headers).unwrap().name
}

fn app_of<'a>(config: &'a Config, authority: &str) -> Option<&'a str> {
    let headers = Headers::of(&[(":authority", authority), (":path", "/")]);
    config.app_for(&headers).map(|app| app.name.as_str())
}

#[wasm_bindgen_test(unsupported = test)]
fn the_app_whose_hosts_match_the_host_is_chosen() {
    let config = parse(&gateway()).unwrap();
    assert_eq!(app_name(&config, "grafana.example.com"), "grafana");
    assert_eq!(app_name(&config, "GRAFANA.example.com:8443"), "grafana");
    assert_eq!(app_name(&config, "eu.grafana.example.com"), "grafana");
    assert_eq!(app_name(&config, "api.example.com"), "api");
    assert_eq!(app_name(&config, "other.example.com"), "");
    // A trailing dot is part of the host, as in Envoy's route table: the catch-all.
    assert_eq!(app_name(&config, "grafana.example.com."), "");
    assert_eq!(app_name(&config, "api.example.com.:443"), "");
}

/// Envoy's order among virtual hosts: an exact name, then the longest suffix,
/// whatever the order of `apps`.
#[wasm_bindgen_test(unsupported = test)]
fn the_most_specific_host_wins_as_in_envoy() {
    let config = parse(
        r#"{"jwtRules":[{"issuer":"https://idp.test"}],"apps":[
            {"name":"any","hosts":["*.example.com"]},
            {"name":"docs","hosts":["*.docs.example.com"]},
            {"name":"api","hosts":["api.docs.example.com"]},
            {"name":"short","hosts":["*.com"]}]}"#,
    )
    .unwrap();
    assert_eq!(app_name(&config, "api.docs.example.com"), "api");
    assert_eq!(app_name(&config, "x.docs.example.com"), "docs");
    assert_eq!(app_name(&config, "docs.example.com"), "any");
    assert_eq!(app_name(&config, "example.com"), "short");
    assert_eq!(app_name(&config, "example.org"), "");
}

/// Authorities Envoy accepts and routes (an Istio gateway's `host:*` domains are
/// prefix matches): none is `host[:port]`, so none is judged under any app.
#[wasm_bindgen_test(unsupported = test)]
fn an_authority_that_is_not_host_and_port_selects_nothing() {
    let config = parse(&gateway()).unwrap();
    for authority in [
        "grafana.example.com:x.api.example.com:443",
        "api.example.com:1:2",
        "grafana.example.com:",
        "grafana.example.com:443:",
        "",
        ":443",
        "user@api.example.com",
        "api.example.com/x",
    ] {
        assert_eq!(app_of(&config, authority), None, "{authority:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn an_app_replaces_the_fields_it_sets_and_keeps_the_others() {
    let config = parse(&gateway()).unwrap();
    let (grafana, api, top) = (&config.apps[0], &config.apps[1], &config.top_level);
    assert_eq!(grafana.index, Some(0));
    assert_eq!(top.index, None);
    // grafana: its own login and public paths, the top level's policies.
    let grafana_oidc = grafana.oidc.as_ref().unwrap();
    assert_eq!(grafana_oidc.client_id, "grafana");
    assert_eq!(grafana_oidc.cookie_name, "oidc_session_grafana");
    assert_eq!(grafana_oidc.login_cookie_name, "oidc_session_grafana_login");
    assert_eq!(grafana.public_paths.len(), 1);
    assert_eq!(grafana.policies.len(), 1);
    assert!(!grafana.allow_missing);
    // api: the top level's login; its own (empty) policies and allowMissing.
    let api_oidc = api.oidc.as_ref().unwrap();
    assert_eq!(api_oidc.client_id, "top");
    assert_eq!(api_oidc.cookie_name, "oidc_session");
    assert_eq!(
        api_oidc.session_purpose,
        top.oidc.as_ref().unwrap().session_purpose
    );
    assert!(api.policies.is_empty());
    assert_eq!(api.public_paths.len(), 1);
    assert!(api.allow_missing);
    // One discovery for the issuer, however many logins and rules use it.
    assert_eq!(config.sources.len(), 1);
    assert_eq!(grafana_oidc.source, 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn each_login_seals_for_itself() {
    let config = parse(&gateway()).unwrap();
    let top = config.top_level.oidc.as_ref().unwrap();
    let grafana = config.apps[0].oidc.as_ref().unwrap();
    // The same key and, here, the same cookie name: the app still cannot open
    // the top level's session, nor the other way round.
    let session = Session::from_json(br#"{"c":{"sub":"u"},"t":9,"e":9}"#).unwrap();
    let sealed = session
        .seal(&top.cookie_keys, &top.session_purpose, [1; 12])
        .unwrap();
    let headers = Headers::of(&[("cookie", &format!("oidc_session={sealed}"))]);
    assert!(Session::open(
        &top.cookie_keys,
        "oidc_session",
        &top.session_purpose,
        &headers
    )
    .is_some());
    assert!(Session::open(
        &grafana.cookie_keys,
        "oidc_session",
        &grafana.session_purpose,
        &headers
    )
    .is_none());
    assert_ne!(top.login_purpose, grafana.login_purpose);
    assert_eq!(top.session_purpose, "oidc_session");
}

fn decide_for(config: &Config, authority: &str, path: &str) -> (u32, VmState) {
    let headers = Headers::of(&[
        (":authority", authority),
        (":path", path),
        (":method", "GET"),
        ("accept", "application/json"),
    ]);
    let inputs = Inputs {
        config,
        app: config.app_for(&headers).unwrap(),
        headers: &headers,
        keys: &crate::pipeline::tests::NoRemote,
        provider: None,
        peer: &Default::default(),
        now_ms: 1_000_000,
        final_attempt: false,
    };
    let mut vm = VmState::new(config, [3; 16]);
    let status = match decide(&inputs, &mut vm, &mut crate::pipeline::tests::NoEntropy) {
        Verdict::Allow { .. } => 200,
        Verdict::Deny(denial) => denial.status,
        Verdict::Forbidden { .. } => 403,
        Verdict::Reply(reply) => reply.status,
        other => panic!("unexpected {other:?}"),
    };
    (status, vm)
}

/// A shared `cookieDomain` sends every login's cookies to every host: none of
/// them goes upstream, whichever app the request is for.
#[wasm_bindgen_test(unsupported = test)]
fn no_logins_cookies_go_upstream_whichever_app_is_chosen() {
    let config = parse(&gateway()).unwrap();
    assert_eq!(
        config.login_cookie_names,
        ["oidc_session", "oidc_session_grafana"]
    );
    let cookies = "oidc_session=a; oidc_session_1=b; oidc_session_login=c; \
                   oidc_session_grafana_0=d; oidc_session_grafana_login=e; theme=dark";
    for (authority, path) in [
        ("api.example.com", "/healthz"),
        ("grafana.example.com", "/public/x"),
        ("other.example.com", "/healthz"),
    ] {
        let headers = Headers::of(&[
            (":authority", authority),
            (":path", path),
            (":method", "GET"),
            ("cookie", cookies),
        ]);
        let inputs = Inputs {
            config: &config,
            app: config.app_for(&headers).unwrap(),
            headers: &headers,
            keys: &crate::pipeline::tests::NoRemote,
            provider: None,
            peer: &Default::default(),
            now_ms: 1_000_000,
            final_attempt: false,
        };
        let mut vm = VmState::new(&config, [3; 16]);
        let verdict = decide(&inputs, &mut vm, &mut crate::pipeline::tests::NoEntropy);
        let Verdict::Allow { edits, .. } = verdict else {
            panic!("{authority}{path}: {verdict:?}")
        };
        assert_eq!(
            edits.set,
            [("cookie".to_string(), "theme=dark".to_string())],
            "{authority}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn requests_are_judged_and_counted_by_their_app() {
    let config = parse(&gateway()).unwrap();
    // Public paths are the app's own: grafana's replace the top level's.
    assert_eq!(
        decide_for(&config, "grafana.example.com", "/public/x").0,
        200
    );
    assert_eq!(
        decide_for(&config, "grafana.example.com", "/healthz").0,
        401
    );
    assert_eq!(decide_for(&config, "other.example.com", "/healthz").0, 200);
    assert_eq!(decide_for(&config, "other.example.com", "/public/x").0, 401);
    // api: anonymous requests pass its empty policy list (allowMissing).
    let (status, vm) = decide_for(&config, "api.example.com", "/admin");
    assert_eq!(status, 200);
    assert_eq!(vm.counters.get(Counter::AllowedAnonymous), 1);
    assert_eq!(vm.counters.get_for(1, AppCounter::Allowed), 1);
    let (status, vm) = decide_for(&config, "grafana.example.com", "/x");
    assert_eq!(status, 401);
    assert_eq!(vm.counters.get_for(0, AppCounter::Denied), 1);
    assert_eq!(vm.counters.get_for(1, AppCounter::Denied), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn errors_name_the_app_and_field() {
    let with_app = |app: &str| {
        let text = format!(
            r#"{{"jwtRules":[{{"issuer":"https://idp.test"}}],"apps":[{{"name":"ok","hosts":["ok.test"]}},{app}]}}"#
        );
        parse(&text).unwrap_err().to_string()
    };
    assert_eq!(
        with_app(
            r#"{"name":"b","hosts":["b.test"],"oidc":{"issuer":"https://idp.test","clientSecret":"s","cookieSecrets":["x"]}}"#
        ),
        "apps[1].oidc.clientId: is required"
    );
    assert!(with_app(r#"{"hosts":["b.test"]}"#).starts_with("apps[1].name: "));
    assert!(with_app(r#"{"name":"Bad_Name","hosts":["b.test"]}"#).starts_with("apps[1].name: "));
    assert!(with_app(r#"{"name":"ok","hosts":["b.test"]}"#).contains("already the name of apps[0]"));
    assert_eq!(
        with_app(r#"{"name":"b"}"#),
        "apps[1].hosts: at least one host is required"
    );
    assert!(with_app(r#"{"name":"b","hosts":["b.test:80"]}"#).starts_with("apps[1].hosts[0]: "));
    assert!(with_app(r#"{"name":"b","hosts":["x.test","ok.test"]}"#)
        .starts_with("apps[1].hosts[1]: `ok.test` is already a host of apps[0]"));
    assert!(
        with_app(r#"{"name":"b","hosts":["b.test"],"publicPaths":["x"]}"#)
            .starts_with("apps[1].publicPaths[0]: ")
    );
    assert!(with_app(
        r#"{"name":"b","hosts":["b.test"],"authorizationPolicies":[{"action":"CUSTOM"}]}"#
    )
    .starts_with("apps[1].authorizationPolicies[0].action: "));
    assert!(
        with_app(r#"{"name":"b","hosts":["b.test"],"cookieName":"x"}"#)
            .contains("apps[1].cookieName")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn logins_whose_cookies_a_browser_would_mix_up_are_refused() {
    let two = |top_extra: &str, app_extra: &str| {
        parse(&format!(
            r#"{{"oidc":{},"apps":[{{"name":"b","hosts":["b.test"],"oidc":{}}}]}}"#,
            oidc("top", top_extra),
            oidc("b", app_extra)
        ))
    };
    assert!(two("", "").is_ok(), "default names differ");
    let same = two(r#","cookieName":"s""#, r#","cookieName":"s""#).unwrap_err();
    assert_eq!(same.path, "apps[0].oidc.cookieName");
    assert!(same.problem.contains("collides with `s` of oidc"), "{same}");
    let chunk = two(r#","cookieName":"s""#, r#","cookieName":"s_1""#).unwrap_err();
    assert_eq!(chunk.path, "apps[0].oidc.cookieName");
    let domains = two(
        r#","cookieName":"s","cookieDomain":"a.test""#,
        r#","cookieName":"s","cookieDomain":"b.test""#,
    );
    assert!(domains.is_ok(), "different cookieDomain");
    let shared_domain = two(
        r#","cookieDomain":"example.com""#,
        r#","cookieName":"oidc_session","cookieDomain":"example.com""#,
    );
    assert!(shared_domain.is_err());
    // `.example.com` and `Example.COM` are one scope to a browser; a subdomain's
    // cookies go to its hosts with the parent's.
    for (top, app) in [
        (".example.com", "example.com"),
        ("example.com", "Example.COM"),
        (".example.com", "b.example.com"),
    ] {
        let overlapping = two(
            &format!(r#","cookieName":"s","cookieDomain":"{top}""#),
            &format!(r#","cookieName":"s","cookieDomain":"{app}""#),
        );
        assert!(overlapping.is_err(), "{top} and {app}");
    }
    let host_only_and_domain = two(
        r#","cookieName":"s","cookieDomain":".example.com""#,
        r#","cookieName":"s""#,
    );
    assert!(host_only_and_domain.is_err());
    let unrelated = two(
        r#","cookieName":"s","cookieDomain":"example.com""#,
        r#","cookieName":"s","cookieDomain":"badexample.com""#,
    );
    assert!(unrelated.is_ok());
}

#[wasm_bindgen_test(unsupported = test)]
fn secrets_come_from_the_named_environment_variables() {
    let text = r#"{"oidc":{"issuer":"https://idp.test","clientId":"c",
        "clientSecretFromEnv":"CLIENT_SECRET","cookieSecretsFromEnv":"COOKIE_KEYS"}}"#;
    let keys = format!("{KEY_B}, {KEY_A}\n");
    let config = parse_with(
        text,
        &[("CLIENT_SECRET", " s3cret\n"), ("COOKIE_KEYS", &keys)],
    )
    .unwrap();
    // No `{:?}` of the configuration, an app or a login shows a secret.
    for text in [
        format!("{config:?}"),
        format!("{:?}", config.top_level),
        format!("{:?}", config.top_level.oidc),
    ] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("[1, 1") && !text.contains(KEY_B), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
    let oidc = config.top_level.oidc.unwrap();
    assert_eq!(oidc.client_secret, "s3cret");
    // The first key seals: KEY_B, then KEY_A (all zero bytes).
    assert_eq!(oidc.cookie_secrets.len(), 2);
    assert_eq!(oidc.cookie_secrets[0], [1; 32]);
    assert_eq!(oidc.cookie_secrets[1], [0; 32]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_missing_empty_or_bad_variable_is_named_and_its_value_never_shown() {
    let text = |client: &str, cookies: &str| {
        format!(
            r#"{{"apps":[{{"name":"a","hosts":["a.test"],"oidc":{{"issuer":"https://idp.test",
                "clientId":"c",{client},{cookies}}}}}]}}"#
        )
    };
    let env_form = text(
        r#""clientSecretFromEnv":"CLIENT_SECRET""#,
        r#""cookieSecretsFromEnv":"COOKIE_KEYS""#,
    );
    let err = |env: &[(&str, &str)]| parse_with(&env_form, env).unwrap_err().to_string();
    assert_eq!(
        err(&[("COOKIE_KEYS", KEY_A)]),
        "apps[0].oidc.clientSecretFromEnv: environment variable `CLIENT_SECRET` is not set"
    );
    assert_eq!(
        err(&[("CLIENT_SECRET", " \n"), ("COOKIE_KEYS", KEY_A)]),
        "apps[0].oidc.clientSecretFromEnv: environment variable `CLIENT_SECRET` is empty"
    );
    assert_eq!(
        err(&[("CLIENT_SECRET", "s")]),
        "apps[0].oidc.cookieSecretsFromEnv: environment variable `COOKIE_KEYS` is not set"
    );
    let secret_key = "c2VjcmV0LWJ1dC1zaG9ydA==";
    let short = err(&[
        ("CLIENT_SECRET", "s"),
        ("COOKIE_KEYS", &format!("{KEY_A},{secret_key}")),
    ]);
    assert_eq!(
        short,
        "apps[0].oidc.cookieSecretsFromEnv: key 2 in environment variable `COOKIE_KEYS` \
         must be base64 of 32 random bytes, not 16; make one with `openssl rand -base64 32`"
    );
    let not_base64 = err(&[("CLIENT_SECRET", "s"), ("COOKIE_KEYS", "!!not-base64!!")]);
    assert!(not_base64.ends_with(
        "key 1 in environment variable `COOKIE_KEYS` is not base64 of 32 random bytes; \
         make one with `openssl rand -base64 32`"
    ));
    // `openssl rand -hex 16`, as oauth2-proxy's docs advise: named as hex.
    let hex = err(&[
        ("CLIENT_SECRET", "s"),
        ("COOKIE_KEYS", "3f2a9c0e5b7d41e8a6c2f0b9d8e7a615"),
    ]);
    assert!(
        hex.ends_with(
            "must be base64 of 32 random bytes, not 24 (it looks like hex, as `openssl rand \
             -hex` makes; this filter reads base64); make one with `openssl rand -base64 32`"
        ),
        "{hex}"
    );
    assert!(!not_base64.contains("!!not"));
    let nine = [KEY_A; 9].join(" ");
    assert!(err(&[("CLIENT_SECRET", "s"), ("COOKIE_KEYS", &nine)]).contains("at most 8 keys"));
    let both = text(
        r#""clientSecret":"s","clientSecretFromEnv":"CLIENT_SECRET""#,
        &format!(r#""cookieSecrets":["{KEY_A}"]"#),
    );
    assert_eq!(
        parse_with(&both, &[("CLIENT_SECRET", "s")])
            .unwrap_err()
            .to_string(),
        "apps[0].oidc: set only one of `clientSecret` and `clientSecretFromEnv`"
    );
    let both_keys = text(
        r#""clientSecret":"s""#,
        &format!(r#""cookieSecrets":["{KEY_A}"],"cookieSecretsFromEnv":"COOKIE_KEYS""#),
    );
    assert_eq!(
        parse_with(&both_keys, &[("COOKIE_KEYS", KEY_A)])
            .unwrap_err()
            .to_string(),
        "apps[0].oidc: set only one of `cookieSecrets` and `cookieSecretsFromEnv`"
    );
    let neither = text(r#""clientSecret":"s""#, r#""scopes":["openid"]"#);
    assert_eq!(
        parse(&neither).unwrap_err().to_string(),
        "apps[0].oidc.cookieSecrets: at least one base64 32-byte key is required"
    );
}
