#!/usr/bin/env python3
"""Write envoy-local/grafana-dashboard.json, the filter's Grafana dashboard.

    scripts/grafana-dashboard.py            # rewrite the JSON
    scripts/grafana-dashboard.py --stdout   # print it instead

The JSON is generated because its PromQL is repetitive: Envoy exports every
allow and deny reason as a metric of its own (`oidc_filter_requests_denied_jwt_expired`,
no `reason` label), and stock Prometheus cannot `rate()` several metric names in
one selector (`rate({__name__=~"oidc_filter_requests_denied_.+"}[5m])` fails
with "vector cannot contain metrics with the same labelset" once `rate` drops
the names). So each reason is a query of its own, and a total is a sum of
per-name terms, each `or vector(0)` so that a counter not scraped yet (Envoy's
`usedonly` leaves out what never changed) does not empty the whole sum.
tests/test_dashboard.py checks that the file is this script's output, that
every metric it queries is one a real Envoy exports, and that every metric of
filter/src/metrics.rs has a panel. The standard library only.
"""

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "envoy-local" / "grafana-dashboard.json"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every series the dashboard reads is narrowed by the job and instance variables.
SELECTOR = '{job=~"$job", instance=~"$instance"}'
WINDOW = "[$__rate_interval]"

ALLOWED_REASONS = ("token", "session", "public_path", "anonymous", "cors_preflight")
DENIED_REASONS = (
    "jwt_missing",
    "jwt_invalid",
    "jwt_malformed",
    "jwt_expired",
    "jwt_not_yet_valid",
    "jwt_unknown_issuer",
    "jwt_unknown_key",
    "jwt_audience",
    "jwks_unavailable",
    "rbac",
    "no_session",
    "invalid_authority",
    "token_inactive",
    "introspection_unavailable",
)

# The per-app counters are `oidc_filter_app_<app>_requests_allowed|denied`, the app's
# name with `-` written `_`. The `app` variable lists the apps from the metric
# names; its regex keeps the name between the prefix and the suffix.
APP_METRICS = 'oidc_filter_app_.+_requests_(allowed|denied)'
APP_NAME_REGEX = "/^oidc_filter_app_(.+)_requests_(?:allowed|denied)$/"


def metric(name: str) -> str:
    """The Prometheus name of the filter's stat `name` (dots as underscores)."""
    return "oidc_filter_" + name.replace(".", "_")


def rate(name: str) -> str:
    return f"sum(rate({metric(name)}{SELECTOR}{WINDOW}))"


def gauge(name: str, by: str | None = None) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping}({metric(name)}{SELECTOR})"


def total(names: list[str]) -> str:
    """The summed rate of several counters; one not exported yet counts as 0."""
    return " + ".join(f"({rate(name)} or vector(0))" for name in names)


def share(part: str, whole: str) -> str:
    """part / whole, with no value (not NaN) while whole is 0: nothing happened."""
    return f"({part}) / (({whole}) > 0)"


ALLOWED = [f"requests_allowed.{reason}" for reason in ALLOWED_REASONS]
DENIED = [f"requests_denied.{reason}" for reason in DENIED_REASONS]


def target(expr: str, legend: str) -> dict:
    return {"datasource": DATASOURCE, "editorMode": "code", "expr": expr, "legendFormat": legend, "range": True}


def cache_ratio(cache: str) -> str:
    hit, miss = f"{cache}.hit", f"{cache}.miss"
    return share(total([hit]), total([hit, miss]))


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows,
    and numbers them."""

    def __init__(self):
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {"type": "row", "title": title, "id": len(self.panels) + 1, "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}
        )
        self.y += 1

    def add(self, panel: dict, width: int, height: int) -> None:
        if self.x + width > 24:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def _newline(self) -> None:
        self.y += self.row_height
        self.x, self.row_height = 0, 0


def timeseries(title: str, description: str, targets: list[dict], unit: str, **field_defaults) -> dict:
    # Failures in red, whatever their position in the legend.
    overrides = [
        {"matcher": {"id": "byRegexp", "options": "^(failed|host failures|denied)$"},
         "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}]}
    ]
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                           "spanNulls": False},
                **field_defaults,
            },
            "overrides": overrides,
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"], "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": with_ref_ids(targets),
    }


def stat(title: str, description: str, expr: str, unit: str, thresholds: list[tuple[float | None, str]]) -> dict:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute",
                               "steps": [{"color": color, "value": value} for value, color in thresholds]},
            },
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "textMode": "auto"},
        "targets": with_ref_ids([target(expr, title)]),
    }


def with_ref_ids(targets: list[dict]) -> list[dict]:
    for index, entry in enumerate(targets):
        entry["refId"] = chr(ord("A") + index) if index < 26 else f"Q{index}"
    return targets


def per_second(names: list[str]) -> list[dict]:
    """One series per counter, named by its last component (the reason)."""
    return [target(rate(name), name.rsplit(".", 1)[-1]) for name in names]


def panels() -> list[dict]:
    layout = Layout()

    layout.row("Overview")
    layout.add(stat("Allowed requests/s", "Requests the filter let through, every reason.",
                    total(ALLOWED), "reqps", [(None, "green")]), 6, 4)
    layout.add(stat("Denied requests/s", "Requests answered 401, 403 or 400 by the filter, every reason.",
                    total(DENIED), "reqps", [(None, "orange")]), 6, 4)
    layout.add(stat("Denied share", "Denied / (allowed + denied): orange from 5%, red from 20%.",
                    share(total(DENIED), f"{total(ALLOWED)} + {total(DENIED)}"), "percentunit",
                    [(None, "green"), (0.05, "orange"), (0.2, "red")]), 6, 4)
    layout.add(stat("Wasm VM memory", "Linear memory of every VM of the filter (one per worker and the "
                    "main thread's), summed over the selected instances.",
                    gauge("vm_memory_bytes"), "bytes", [(None, "blue")]), 6, 4)

    layout.row("Requests by reason")
    layout.add(timeseries("Allowed requests/s by reason",
                          "token: a valid bearer token; session: a valid session cookie; public_path: "
                          "publicPaths; anonymous: no credential, allowed by the policies (allowMissing); "
                          "cors_preflight: bypassCorsPreflight.",
                          per_second(ALLOWED), "reqps"), 12, 9)
    layout.add(timeseries("Denied requests/s by reason",
                          "The reason of each 401/403/400: the jwt_* reasons are Envoy jwt_authn's "
                          "messages, rbac an AuthorizationPolicy, no_session an API request without "
                          "session or token, invalid_authority a Host that is not host[:port].",
                          per_second(DENIED), "reqps"), 12, 9)

    layout.row("Apps")
    app_panel = timeseries(
        "App $app: requests/s",
        "The per-app counters of an `apps` configuration (one panel per app of the `app` variable).",
        [target(f"sum(rate(oidc_filter_app_${{app}}_requests_allowed{SELECTOR}{WINDOW}))", "allowed"),
         target(f"sum(rate(oidc_filter_app_${{app}}_requests_denied{SELECTOR}{WINDOW}))", "denied")],
        "reqps",
    )
    app_panel.update({"repeat": "app", "repeatDirection": "h", "maxPerRow": 3})
    layout.add(app_panel, 8, 7)

    layout.row("Browser login and sessions")
    layout.add(timeseries("Logins/s",
                          "started: sent to the identity provider; completed: callback exchanged and a "
                          "session issued; failed: callback rejected or token exchange failed; replayed: a "
                          "callback sent again, answered without calling the identity provider.",
                          per_second(["login.started", "login.completed", "login.failed", "login.replayed"]),
                          "ops"), 12, 8)
    layout.add(timeseries("Session refreshes and logouts/s",
                          "succeeded: a session renewed with its refresh token; failed: the user logs in "
                          "again; logout: the logout path served.",
                          per_second(["refresh.succeeded", "refresh.failed", "logout"]), "ops"), 12, 8)

    layout.row("Identity provider fetches")
    layout.add(timeseries("JWKS fetches/s",
                          "Key set fetches. Failures with no success for a while: tokens signed by new keys "
                          "are refused, and with no key set at all every token is (jwks_unavailable).",
                          per_second(["jwks_fetch.succeeded", "jwks_fetch.failed"]), "ops"), 12, 7)
    layout.add(timeseries("OpenID discovery fetches/s",
                          "Discovery document fetches of the `oidc` issuers: while they fail, browser "
                          "logins cannot start.",
                          per_second(["discovery_fetch.succeeded", "discovery_fetch.failed"]), "ops"), 12, 7)

    layout.row("Caches")
    layout.add(timeseries("Cache hit ratio",
                          "hit / (hit + miss). token: verified bearer tokens (a miss parses the token and "
                          "checks its signature); session: session cookies (a miss decrypts and parses one).",
                          [target(cache_ratio("token_cache"), "token cache"),
                           target(cache_ratio("session_cache"), "session cache")],
                          "percentunit", max=1), 8, 8)
    layout.add(timeseries("Cache entries",
                          "Entries held, summed over the filter's VMs.",
                          [target(gauge("token_cache.entries"), "token cache"),
                           target(gauge("session_cache.entries"), "session cache")], "short"), 8, 8)
    layout.add(timeseries("Cache bytes",
                          "Bytes the caches account for, summed over the filter's VMs.",
                          [target(gauge("token_cache.bytes"), "token cache"),
                           target(gauge("session_cache.bytes"), "session cache")], "bytes"), 8, 8)

    layout.row("Token introspection")
    layout.add(timeseries("Introspection calls/s",
                          "Opaque tokens checked at the introspection endpoint (RFC 7662). active: answered "
                          "active and acceptable; inactive: not active, or active but not acceptable; "
                          "failed: unreachable, timeout, non-200 or malformed (the request gets 503); "
                          "cache_hit: answered from the cache without a call.",
                          per_second(["introspection.calls", "introspection.active", "introspection.inactive",
                                      "introspection.failed", "introspection.cache_hit"]), "ops"), 12, 8)
    layout.add(timeseries("Introspection cache and calls in flight",
                          "Answers cached (entries), summed over the filter's VMs, and calls waiting for "
                          "their reply (at most 64 per worker).",
                          [target(gauge("introspection.cache_entries"), "cache entries"),
                           target(gauge("introspection.in_flight"), "calls in flight")], "short"), 6, 8)
    layout.add(timeseries("Introspection cache bytes",
                          "Bytes the introspection cache accounts for, summed over the filter's VMs.",
                          [target(gauge("introspection.cache_bytes"), "introspection cache")], "bytes"), 6, 8)

    layout.row("Wasm VM and signature verification")
    layout.add(timeseries("Wasm VM memory by instance",
                          "Linear memory of the filter's VMs per Envoy (whole 64 KiB pages). The caches are "
                          "bounded: it should level off after warm-up.",
                          [target(gauge("vm_memory_bytes", by="instance"), "{{instance}}")], "bytes"), 8, 8)
    layout.add(timeseries("Plugins verifying signatures on the host",
                          "How many of the filter's plugins (per VM) have Envoy's BoringSSL verify their "
                          "RS*/ES* signatures (signatureVerification auto or host); 0: the module's own crypto.",
                          [target(gauge("signature_verification.host", by="instance"), "{{instance}}")],
                          "short", decimals=0), 8, 8)
    layout.add(timeseries("Host signature verification failures/s",
                          "The host's verify_signature failed (refused, no or unreadable result): that "
                          "signature counted as not verified.",
                          [target(rate("signature_verification.host_failures"), "host failures")], "ops"), 8, 8)

    layout.row("Policies: AUDIT and dry run")
    layout.add(timeseries("AUDIT and dry-run policies/s",
                          "audit_matched: an AUDIT policy matched (the decision unchanged); dry_run_allowed / "
                          "dry_run_denied: what the dry-run policies would have decided. The filter logs "
                          "each one.",
                          per_second(["policies.audit_matched", "policies.dry_run_allowed",
                                      "policies.dry_run_denied"]), "ops"), 24, 8)
    return layout.panels


def variable(name: str, query: str, all_value: str | None = ".*", **extra) -> dict:
    """A multi-value query variable with "All"; `all_value` None: "All" stands
    for the list of every value instead of a regex."""
    entry = {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": query,
        "refresh": 2,  # on time range change: new Envoys and apps show up
        "includeAll": True,
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
        **extra,
    }
    if all_value is not None:
        entry["allValue"] = all_value
    return entry


def templating() -> list[dict]:
    # vm_memory_bytes is set by every running filter, so it lists every Envoy
    # that runs one, even before any request.
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {"selected": False, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
            "options": [],
            "refresh": 1,
            "regex": "",
            "hide": 0,
        },
        variable("job", "label_values(oidc_filter_vm_memory_bytes, job)"),
        variable("instance", 'label_values(oidc_filter_vm_memory_bytes{job=~"$job"}, instance)'),
        # Its values are parts of metric names, one panel each: "All" must be
        # the list of apps, not a regex.
        variable(
            "app",
            f'label_values({{__name__=~"{APP_METRICS}", job=~"$job", instance=~"$instance"}}, __name__)',
            all_value=None,
            regex=APP_NAME_REGEX,
        ),
    ]


def dashboard() -> dict:
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes Envoy's /stats/prometheus (or Istio's port 15090)",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "uid": "oidc-filter",
        "title": "oidc_filter: Envoy identity filter",
        "description": "The oidc_filter Proxy-Wasm module's metrics (bearer JWTs, OIDC login, "
                       "AuthorizationPolicy), from Envoy's /stats/prometheus.",
        "tags": ["envoy", "wasm", "oidc", "jwt"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": templating()},
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stdout", action="store_true", help="print the JSON instead of writing it")
    args = parser.parse_args(argv)
    if args.stdout:
        sys.stdout.write(render())
    else:
        OUTPUT.write_text(render())
        print(f"written to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
