"""The filter's metrics end to end: every outcome we can cause is counted, and
Envoy 1.40 exports the counts in /stats (as `wasmcustom.oidc_filter.<name>`) and
in /stats/prometheus.

One Envoy with one worker (--concurrency 1) so that one VM does all the
counting and the counts are exact. Two listeners: a bearer-only API (the
denial reasons) and an app with browser login (sessions, login, logout).
"""

import re
from pathlib import Path

import pytest
import requests
import yaml

from harness import stats
from harness.client import get, upstream_view
from harness.envoy import Listener
from harness.jwks_server import ERROR_500
from harness.idp import default_client
from harness.login import SAME_ORIGIN, login
from harness.oidc_app import CLIENT_ID, CLIENT_SECRET, html_session, oidc_config, upstream
from harness.plugin import jwks_cluster_name, plugin_config, rule
from harness.ports import free_port
from harness.tokens import cached_key, claims, flip_signature_bit, generate_key, sign

ISSUER = "https://issuer-metrics.test"
BROKEN_ISSUER = "https://issuer-broken-jwks.test"
AUDIENCE = "metrics-api"
DENY_ADMIN = [
    {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
]

# Each denial reason this module causes, and how many times.
DENIALS = {
    "jwt_missing": 1,
    "jwt_invalid": 1,  # a flipped signature bit
    "jwt_malformed": 1,  # garbage (Envoy: "Jwt header is an invalid Base64url encoded")
    "jwt_expired": 1,
    "jwt_not_yet_valid": 1,
    "jwt_unknown_issuer": 1,
    "jwt_unknown_key": 1,
    "jwt_audience": 1,
    "jwks_unavailable": 1,
    "rbac": 1,
    "no_session": 1,
    "invalid_authority": 1,  # a Host that is not host[:port]
}
METRICS_RS = Path(__file__).resolve().parents[1] / "filter" / "src" / "metrics.rs"


def declared_metrics() -> tuple[list[str], list[str]]:
    """(counter names, gauge names) as filter/src/metrics.rs declares them, so a
    metric added there is checked here too."""
    source = METRICS_RS.read_text()
    counters = re.findall(r'^\s*\w+ => "([a-z_.]+)", "', source, re.MULTILINE)
    gauges = re.findall(r'Gauge::\w+ => "([a-z_.]+)"', source)
    return counters, gauges


COUNTERS, GAUGES = declared_metrics()


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "metrics")


@pytest.fixture(scope="module")
def env(module_stack, key):
    """Starts the IdP, two JWKS servers (one answering 500) and Envoy; returns
    a dict of URLs and the Envoy."""
    good = module_stack.jwks_server({"keys": [key.jwk()]})
    broken = module_stack.jwks_server({"keys": []})
    broken.set_mode(ERROR_500)
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    client = default_client(
        f"{app_url}/oauth2/callback", f"{app_url}/signed-out", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    idp = module_stack.idp(clients=[client])
    token_rules = [
        rule(ISSUER, good, audiences=[AUDIENCE]),
        rule(BROKEN_ISSUER, broken, timeout="1s"),
    ]
    clusters = {s.authority: jwks_cluster_name(s) for s in (good, broken)}
    api = Listener(
        "api",
        {
            "jwtRules": token_rules,
            "clusters": clusters,
            "authorizationPolicies": DENY_ADMIN,
            "publicPaths": ["/healthz"],
        },
    )
    app_config = oidc_config(idp)
    app_config["jwtRules"] += token_rules
    app_config["clusters"].update(clusters)
    app = Listener("app", app_config, port=app_port)
    envoy = module_stack.envoy(api, app, servers=(good, broken), clusters={"idp": idp.port}, concurrency=1)
    return {"envoy": envoy, "api": envoy.url("api"), "app": app_url}


def token(key, **extra):
    return sign({}, claims(ISSUER, **({"aud": AUDIENCE} | extra)), key)


def assert_status(response, status):
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:200]}"


def drive_denials(api, key):
    """One request per denial reason; see DENIALS."""
    assert_status(get(api, "/x"), 401)  # jwt_missing
    assert_status(get(api, "/x", token="not.a.jwt"), 401)  # jwt_malformed
    assert_status(get(api, "/x", token=flip_signature_bit(token(key))), 401)  # jwt_invalid
    assert_status(get(api, "/x", token=token(key, exp=1_000_000, iat=999_000)), 401)  # jwt_expired
    assert_status(get(api, "/x", token=token(key, nbf=4_000_000_000)), 401)  # jwt_not_yet_valid
    assert_status(get(api, "/x", token=sign({}, claims("https://nobody.test", aud=AUDIENCE), key)), 401)
    stranger = generate_key("ES256", kid="not-in-the-set")
    assert_status(get(api, "/x", token=token(stranger)), 401)  # jwt_unknown_key
    assert_status(get(api, "/x", token=token(key, aud="someone-else")), 403)  # jwt_audience
    assert_status(get(api, "/x", token=sign({}, claims(BROKEN_ISSUER), key)), 401)  # jwks_unavailable
    assert_status(get(api, "/admin/users", token=token(key)), 403)  # rbac
    assert_status(get(api, "/x", headers={"Host": "api.test:1:2"}), 400)  # invalid_authority


def drive_allowed(api, key):
    """Two requests with the same token (a cache miss, then a hit), one public."""
    same = token(key, sub="cache-me")
    upstream_view(get(api, "/data", token=same))
    upstream_view(get(api, "/data", token=same))
    upstream_view(get(api, "/healthz"))


def drive_browser(app):
    """An API call without session, a real login, a request on the session, a logout."""
    no_session = requests.get(f"{app}/api", headers={"Accept": "application/json"}, allow_redirects=False)
    assert_status(no_session, 401)
    session = html_session()
    login(session, f"{app}/start", "alice")  # ends on the upstream: allowed on the session
    upstream(session.get(f"{app}/again", allow_redirects=False))
    assert_status(session.get(f"{app}/oauth2/logout", headers=SAME_ORIGIN, allow_redirects=False), 302)


@pytest.fixture(scope="module")
def counted(env, key):
    """Drives every outcome once, then waits until the filter's timer has
    reported them; returns the filter's metrics as /stats shows them."""
    drive_denials(env["api"], key)
    drive_allowed(env["api"], key)
    drive_browser(env["app"])
    expected = {f"requests_denied.{reason}": count for reason, count in DENIALS.items()}
    expected.update(
        {
            "requests_allowed.token": 2,
            "requests_allowed.public_path": 1,
            "requests_allowed.session": 2,
            "login.started": 1,
            "login.completed": 1,
            "logout": 1,
            "jwks_fetch.succeeded": 2,  # our key set and the IdP's
            "jwks_fetch.failed": 1,
            "discovery_fetch.succeeded": 1,
            "token_cache.miss": 1,
            "token_cache.hit": 1,
            "session_cache.hit": 1,
        }
    )
    return stats.wait_for(env["envoy"].admin_url, expected, timeout=15)


def test_every_denial_reason_is_counted_once(counted):
    denied = {name.split(".", 1)[1]: value for name, value in counted.items() if name.startswith("requests_denied.")}
    print(f"denials: {denied}")
    # The introspection denials are driven in test_introspection.py.
    assert denied == DENIALS | {"introspection_unavailable": 0, "token_inactive": 0}


def test_allowed_requests_logins_and_fetches_are_counted(counted):
    print(f"all filter metrics: {counted}")
    assert counted["requests_allowed.public_path"] == 1
    # Two bearer requests on the API; the login walk ends on the upstream
    # (session) and one more request rides on the session.
    assert counted["requests_allowed.token"] == 2
    assert counted["requests_allowed.session"] == 2
    assert counted["login.started"] == 1 and counted["login.completed"] == 1
    assert counted.get("login.failed", 0) == 0
    assert counted["logout"] == 1
    assert counted["jwks_fetch.failed"] >= 1
    assert counted["discovery_fetch.succeeded"] >= 1
    assert counted.get("discovery_fetch.failed", 0) == 0


def test_every_declared_metric_is_in_stats(counted):
    assert len(COUNTERS) >= 27 and len(GAUGES) == 9, "metrics.rs parsing"
    missing = [name for name in COUNTERS + GAUGES if name not in counted]
    assert not missing, f"not in /stats as wasmcustom.oidc_filter.*: {missing}"


def test_gauges_are_present_and_sane(env, counted):
    current = stats.custom(env["envoy"].admin_url)
    print({name: current.get(name) for name in GAUGES})
    # The token cache is the API listener's plugin, the session cache the app's:
    # both show, as each plugin adds its own share to the one Envoy gauge.
    assert current["token_cache.entries"] >= 1
    assert current["token_cache.bytes"] >= current["token_cache.entries"] * 100, "a cached token costs bytes"
    assert current["session_cache.entries"] == 1
    assert current["session_cache.bytes"] > 0
    # Linear memory of every VM of the filter (main thread and the one worker),
    # whole 64 KiB pages: at least the module's data, far from runaway.
    memory = current["vm_memory_bytes"]
    assert memory % 65536 == 0
    assert 1 << 20 <= memory <= 256 << 20


def prometheus_name(name: str) -> str:
    """Envoy 1.40 drops `wasmcustom.`, adds no `envoy_` prefix to custom stats,
    writes `.` as `_`, and adds no `_total` to counters."""
    return "oidc_filter_" + name.replace(".", "_")


def test_prometheus_names_types_and_values(env, counted):
    text = stats.prometheus_text(env["envoy"].admin_url)
    samples = stats.prometheus_samples(text)
    types = stats.prometheus_types(text)
    ours = {name: value for name, value in samples.items() if "oidc_filter" in name}
    print("\n".join(f"{name} {value:g}  ({types.get(name.split('{')[0])})" for name, value in sorted(ours.items())))
    in_stats = stats.custom(env["envoy"].admin_url)
    for kind, names in (("counter", COUNTERS), ("gauge", GAUGES)):
        for name in names:
            family = prometheus_name(name)
            assert types.get(family) == kind, f"{family}: TYPE {types.get(family)}"
            assert f"{family}{{}}" in samples, f"{family} has no sample"
    # Counters only grow: /stats read after /stats/prometheus is never lower.
    for name in COUNTERS:
        assert samples[f"{prometheus_name(name)}{{}}"] <= in_stats[name]
    assert samples["oidc_filter_requests_denied_jwt_expired{}"] == DENIALS["jwt_expired"]
    # Envoy's own per-plugin Wasm stats, named after the filter config's `name`.
    for name in ("vm_reload", "vm_reload_backoff", "vm_reload_failure", "vm_reload_success"):
        assert types.get(f"envoy_wasm_oidc_filter_{name}") == "counter"


PROMETHEUS_EXAMPLE = Path(__file__).resolve().parents[1] / "envoy-local" / "prometheus-example.yml"


def test_prometheus_example_scrapes_and_names_real_metrics(env, counted):
    """envoy-local/prometheus-example.yml: its scrape parameters work on Envoy
    1.40's admin, and every metric its alerts use is one Envoy exports."""
    scrape_config, rules, _ = yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text())
    (job,) = scrape_config["scrape_configs"]
    params = {name: values[0] for name, values in job["params"].items()}
    reply = requests.get(f"{env['envoy'].admin_url}{job['metrics_path']}", params=params, timeout=5)
    assert reply.status_code == 200
    scraped = stats.prometheus_types(reply.text)
    assert "oidc_filter_requests_denied_jwt_expired" in scraped
    assert "oidc_filter_login_failed" not in scraped, "usedonly leaves out what never changed"
    assert all(name.startswith(("oidc_filter_", "envoy_wasm_oidc_filter_", "envoy_http_")) for name in scraped)
    exported = stats.prometheus_types(stats.prometheus_text(env["envoy"].admin_url))
    for alert in rules["groups"][0]["rules"]:
        expression = alert["expr"]
        for name in re.findall(r"\b((?:oidc_filter|envoy_wasm)_[a-z_]+)\[", expression):
            assert name in exported, f"{alert['alert']}: {name} is not an exported metric"
        for pattern in re.findall(r'__name__=~"([^"]+)"', expression):
            assert any(re.fullmatch(pattern, name) for name in exported), f"{alert['alert']}: {pattern} matches nothing"


# A range function straight over a selector of several metric names: the
# function drops `__name__`, the series are left with equal label sets, and
# Prometheus refuses the query ("vector cannot contain metrics with the same
# labelset"). `label_replace` first, inside a subquery, keeps them apart.
NAME_DROPPING_RANGE = re.compile(r'\b(?:rate|irate|increase|delta|idelta|deriv)\(\s*\{__name__=~"([^"]+)"\}\s*\[')


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expression) of every alert in the example and every PromQL block
    in the docs."""
    from harness.markdown import code_blocks, documentation_files

    _, rules, _ = yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text())
    found = [(f"alert {alert['alert']}", alert["expr"]) for alert in rules["groups"][0]["rules"]]
    found += [(block.place, block.text) for path in documentation_files() for block in code_blocks(path) if block.language == "promql"]
    return found


def test_no_expression_takes_a_rate_of_several_names_at_once(env, counted):
    exported = stats.prometheus_types(stats.prometheus_text(env["envoy"].admin_url))
    wrong = []
    for where, expression in promql_expressions():
        for pattern in NAME_DROPPING_RANGE.findall(expression):
            names = [name for name in exported if re.fullmatch(pattern, name)]
            if len(names) > 1:
                wrong.append(f"{where}: a range function over `{pattern}` ({len(names)} metrics) fails in Prometheus")
    assert len(promql_expressions()) > 5
    assert not wrong, "\n".join(wrong)


def test_prometheus_example_reason_label(stack, key):
    """The example's optional Envoy fragment (document 3) turns the allow/deny
    counters into two families with a `reason` label."""
    _, _, fragment = yaml.safe_load_all(PROMETHEUS_EXAMPLE.read_text())
    server = stack.jwks_server({"keys": [key.jwk()]})
    listener = Listener("api", plugin_config(rule(ISSUER, server, audiences=[AUDIENCE]), servers=(server,)))
    envoy = stack.envoy(listener, servers=(server,), concurrency=1, extra_bootstrap=fragment)
    assert_status(get(envoy.url(), "/"), 401)
    upstream_view(get(envoy.url(), "/", token=token(key)))
    stats.wait_for(envoy.admin_url, {"requests_denied.jwt_missing": 1, "requests_allowed.token": 1})
    text = stats.prometheus_text(envoy.admin_url)
    samples = stats.prometheus_samples(text)
    assert samples['oidc_filter_requests_denied{reason="jwt_missing"}'] == 1
    assert samples['oidc_filter_requests_denied{reason="jwt_expired"}'] == 0
    assert samples['oidc_filter_requests_allowed{reason="token"}'] == 1
    assert stats.prometheus_types(text)["oidc_filter_requests_denied"] == "counter"
    assert "oidc_filter_requests_denied_jwt_missing" not in text
    # Everything else keeps its name.
    assert "oidc_filter_jwks_fetch_succeeded{}" in samples
