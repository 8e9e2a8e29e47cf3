"""envoy-local/grafana-dashboard.json: Grafana can import it as it is, and every
metric its queries name is one that Envoy 1.40 really exports for the filter.

The structure tests read the file only. The name tests start one Envoy with an
`apps` configuration (app `my-app`, so per-app series exist), send a denied and
an allowed request, wait until the filter's timer has copied its stats into
Envoy, and take the `oidc_filter_*` families of /stats/prometheus as the truth:
Envoy writes `oidc_filter.<name>` as `oidc_filter_<name>` with every `.` and
`-` as `_` (`oidc_filter_app_my_app_requests_denied`), without `_total`.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from harness import stats
from harness.client import get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "envoy-local" / "grafana-dashboard.json"
GENERATOR = REPO_ROOT / "scripts" / "grafana-dashboard.py"
METRICS_RS = REPO_ROOT / "filter" / "src" / "metrics.rs"

ISSUER = "https://issuer-dashboard.test"
APP = "my-app"
APP_HOST = "my-app.localhost"
# How the app's name shows in its metric names.
APP_IN_METRICS = "my_app"
DATASOURCE_REF = "${datasource}"
GRID_COLUMNS = 24

# Values for the dashboard's variables when reading an expression: only the
# metric names matter, so anything that keeps the PromQL readable does.
VARIABLE_VALUES = {
    "${app}": APP_IN_METRICS,
    "$app": APP_IN_METRICS,
    "$__rate_interval": "1m",
    "$job": ".*",
    "$instance": ".*",
}
NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"([^"]*)"')
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# An identifier followed by `{` or `[` is a metric selector's name (a function
# is followed by `(`, a label by `=`, `,` or `)`).
SELECTOR_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
FILTER_NAME = re.compile(r"\boidc_filter_[a-z0-9_]+\b")
# The text before a metric name ends so when the name is the argument of a rate.
RATED = re.compile(r"\b(?:rate|irate|increase)\(\s*$")


# ----- the dashboard -----
def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    found = [
        (f"panel {panel.get('title')!r} target {target.get('refId')}", target.get("expr", ""))
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']!r}", query if isinstance(query, str) else query["query"]))
    return found


def substituted(expression: str) -> str:
    for variable, value in VARIABLE_VALUES.items():
        expression = expression.replace(variable, value)
    return expression


def plain_names(expression: str) -> set[str]:
    """The metric names an expression spells out (not those in `__name__` regexes)."""
    code = STRING.sub('""', substituted(expression))
    return set(FILTER_NAME.findall(code)) | set(SELECTOR_NAME.findall(code))


def name_patterns(expression: str) -> list[tuple[str, str]]:
    """(operator, value) of every `__name__` matcher."""
    return [(op, substituted(value)) for op, value in NAME_MATCHER.findall(expression)]


def declared_metrics() -> list[str]:
    """Every counter and gauge of filter/src/metrics.rs, as Prometheus names
    (the parse of tests/test_metrics.py)."""
    source = METRICS_RS.read_text()
    counters = re.findall(r'^\s*\w+ => "([a-z_.]+)", "', source, re.MULTILINE)
    gauges = re.findall(r'Gauge::\w+ => "([a-z_.]+)"', source)
    assert len(counters) >= 27 and len(gauges) == 9, "metrics.rs parsing"
    return ["oidc_filter_" + name.replace(".", "_") for name in counters + gauges]


def per_app_metrics(app: str) -> list[str]:
    """The per-app counters of metrics.rs (AppCounter::name) for app `app`."""
    source = METRICS_RS.read_text()
    suffixes = re.findall(r'format!\("app\.\{app\}\.([a-z_]+)"\)', source)
    assert sorted(suffixes) == ["requests_allowed", "requests_denied"], "metrics.rs parsing"
    return [f"oidc_filter_app_{app}_{suffix}" for suffix in suffixes]


def test_dashboard_is_the_generators_output():
    spec = importlib.util.spec_from_file_location("grafana_dashboard", GENERATOR)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert DASHBOARD.read_text() == generator.render(), (
        f"{DASHBOARD.name} differs from what {GENERATOR.name} writes: edit the script and run it"
    )


def test_dashboard_has_what_grafana_needs_to_import_it():
    dashboard = load_dashboard()
    assert isinstance(dashboard.get("title"), str) and dashboard["title"]
    assert isinstance(dashboard.get("schemaVersion"), int) and 36 <= dashboard["schemaVersion"] <= 41
    assert "id" not in dashboard or dashboard["id"] is None, "an imported dashboard gets its id from Grafana"
    inputs = dashboard.get("__inputs", [])
    assert [(i["type"], i["pluginId"]) for i in inputs] == [("datasource", "prometheus")], inputs
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    datasource = variables.get("datasource")
    assert datasource and datasource["type"] == "datasource" and datasource["query"] == "prometheus", datasource
    assert {"job", "instance", "app"} <= set(variables), sorted(variables)


def test_every_panel_has_an_id_a_place_and_queries_on_the_chosen_datasource():
    dashboard = load_dashboard()
    panels = all_panels(dashboard)
    ids = [panel.get("id") for panel in panels]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert any(panel["type"] == "row" for panel in panels), "panels grouped in rows"
    for panel in panels:
        title = panel.get("title")
        grid = panel.get("gridPos", {})
        assert all(isinstance(grid.get(k), int) for k in "hwxy"), f"panel {title!r}: gridPos {grid}"
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, f"panel {title!r}: {grid}"
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == {"type": "prometheus", "uid": DATASOURCE_REF}, f"panel {title!r}"
        targets = panel.get("targets", [])
        assert targets, f"panel {title!r} has no targets"
        ref_ids = [target.get("refId") for target in targets]
        assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), f"panel {title!r}: refIds {ref_ids}"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {title!r} target {target.get('refId')}: no expr"
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_REF, (
                f"panel {title!r} target {target.get('refId')}: {target.get('datasource')}"
            )
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"panel {title!r} has no unit"


def test_panels_do_not_overlap():
    cells = {}
    for panel in load_dashboard()["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]!r} and {panel['title']!r} overlap at {(x, y)}"
                cells[(x, y)] = panel["title"]


def test_no_datasource_uid_is_hard_coded():
    """Every datasource reference is the variable, so the user's choice holds."""
    text = DASHBOARD.read_text()
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text)) - {"oidc-filter"}  # the dashboard's own uid
    assert uids == {DATASOURCE_REF}, uids


def test_every_query_is_narrowed_by_job_and_instance():
    """A selector without the variables would mix every Envoy Prometheus scrapes."""
    for where, expression in queries(load_dashboard()):
        if where == "variable 'job'":
            continue  # lists the jobs: nothing to narrow by yet
        code = expression.replace("${app}", APP_IN_METRICS)
        needed = ['job=~"$job"'] if where == "variable 'instance'" else ['job=~"$job"', 'instance=~"$instance"']
        masked = STRING.sub('""', code)
        bare = [m.group(0) for m in re.finditer(r"\boidc_filter_[a-z0-9_]+\b(?!\{)", masked)]
        assert not bare, f"{where}: {bare} without a selector in: {expression}"
        selectors = re.findall(r"\{[^{}]*\}", code)
        assert selectors, f"{where}: no selector in: {expression}"
        for selector in selectors:
            for matcher in needed:
                assert matcher in selector, f"{where}: {selector} lacks {matcher} in: {expression}"


def test_every_metric_of_metrics_rs_has_a_panel():
    """The other way round: nothing the filter counts is left off the dashboard."""
    dashboard = load_dashboard()
    shown = set()
    for where, expression in queries(dashboard):
        if where.startswith("panel"):
            shown |= plain_names(expression)
    missing = [name for name in declared_metrics() + per_app_metrics(APP_IN_METRICS) if name not in shown]
    assert not missing, f"no panel queries {missing}"


# ----- against a real Envoy -----
@pytest.fixture(scope="module")
def families(module_stack) -> dict[str, str]:
    """Every family of Envoy's /stats/prometheus (name -> counter/gauge/...),
    once the filter has reported a denied and an allowed request of `my-app`."""
    key = cached_key("ES256", "dashboard")
    server = module_stack.jwks_server({"keys": [key.jwk()]})
    config = plugin_config(rule(ISSUER, server), servers=(server,), apps=[{"name": APP, "hosts": [APP_HOST]}])
    envoy = module_stack.envoy(Listener("api", config), servers=(server,), concurrency=1)
    denied = get(envoy.url(), "/", headers={"Host": APP_HOST})
    assert denied.status_code == 401, denied.text
    upstream_view(get(envoy.url(), "/", token=sign({}, claims(ISSUER), key), headers={"Host": APP_HOST}))
    stats.wait_for(envoy.admin_url, {f"app.{APP}.requests_denied": 1, f"app.{APP}.requests_allowed": 1,
                                     "requests_denied.jwt_missing": 1, "requests_allowed.token": 1})
    text = stats.prometheus_text(envoy.admin_url)
    print("\n".join(line for line in text.splitlines() if "oidc_filter_" in line))
    return stats.prometheus_types(text)


@pytest.fixture(scope="module")
def exported(families) -> dict[str, str]:
    """The filter's own families: name -> counter/gauge."""
    return {name: kind for name, kind in families.items() if name.startswith("oidc_filter_")}


def test_envoy_exports_the_names_the_dashboard_is_written_for(exported):
    """The naming the dashboard relies on, seen on Envoy 1.40."""
    missing = [name for name in declared_metrics() if name not in exported]
    assert not missing, f"not in /stats/prometheus: {missing}; the filter's there: {sorted(exported)}"
    for name in per_app_metrics(APP_IN_METRICS):
        assert exported.get(name) == "counter", f"{name}: {exported.get(name)}; {sorted(exported)}"
    assert exported["oidc_filter_requests_denied_jwt_expired"] == "counter"
    assert exported["oidc_filter_vm_memory_bytes"] == "gauge"
    assert not [name for name in exported if name.endswith("_total")], "no _total suffix"


def test_every_metric_in_a_query_is_one_envoy_exports(families, exported):
    for where, expression in queries(load_dashboard()):
        for name in plain_names(expression):
            assert name in exported, f"{where}: {name} is not a metric of the filter, in: {expression}"
        for op, value in name_patterns(expression):
            matched = [n for n in families if (re.fullmatch(value, n) if op == "=~" else n == value)]
            assert matched, f"{where}: __name__{op}\"{value}\" matches no metric, in: {expression}"
            strangers = [n for n in matched if n not in exported]
            assert not strangers, f"{where}: __name__{op}\"{value}\" also matches {strangers}, in: {expression}"


def test_rates_are_taken_of_counters_and_gauges_are_read_as_they_are(exported):
    for where, expression in queries(load_dashboard()):
        code = STRING.sub('""', substituted(expression))
        for found in FILTER_NAME.finditer(code):
            name, rated = found.group(0), bool(RATED.search(code[: found.start()]))
            kind = exported.get(name)
            assert kind == ("counter" if rated else "gauge"), (
                f"{where}: {name} is a {kind}, {'in' if rated else 'outside'} a rate, in: {expression}"
            )


def test_the_app_variable_lists_the_apps_from_their_metric_names(exported):
    """Its selector matches exactly the per-app counters, and its regex turns
    them into the app names the repeated panel puts into metric names."""
    variable = next(v for v in load_dashboard()["templating"]["list"] if v["name"] == "app")
    ((op, pattern),) = name_patterns(variable["query"])
    assert op == "=~"
    listed = sorted(name for name in exported if re.fullmatch(pattern, name))
    assert listed == sorted(per_app_metrics(APP_IN_METRICS)), listed
    # Grafana's variable regex is a JavaScript one written /.../; this one is
    # also valid Python.
    regex = re.fullmatch(r"/(.*)/", variable["regex"]).group(1)
    assert {re.fullmatch(regex, name).group(1) for name in listed} == {APP_IN_METRICS}
