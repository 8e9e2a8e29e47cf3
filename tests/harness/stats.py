"""Envoy admin statistics: /stats, /stats/prometheus and /memory, read and polled.

The filter's own metrics (prefix `oidc_filter`) reach Envoy only when the VM's
timer copies them out (about once a second), so tests poll with a deadline
rather than read once.
"""

import re
import time

import requests

ADMIN_TIMEOUT = 5.0
# How Envoy 1.40 shows a metric the Wasm module defined as `oidc_filter.<name>`.
CUSTOM_PREFIX = "wasmcustom.oidc_filter."
_PROM_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def stats(admin_url: str, filter_regex: str | None = None) -> dict[str, int]:
    """Every counter and gauge of /stats as name -> value (histograms skipped)."""
    params = {"filter": filter_regex} if filter_regex else None
    text = requests.get(f"{admin_url}/stats", params=params, timeout=ADMIN_TIMEOUT).text
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            values[name] = int(value)
    return values


def custom(admin_url: str) -> dict[str, int]:
    """The filter's metrics, keyed by their name without `wasmcustom.oidc_filter.`."""
    return {
        name[len(CUSTOM_PREFIX):]: value
        for name, value in stats(admin_url, "^wasmcustom\\.").items()
        if name.startswith(CUSTOM_PREFIX)
    }


def prometheus_text(admin_url: str) -> str:
    return requests.get(f"{admin_url}/stats/prometheus", timeout=ADMIN_TIMEOUT).text


def prometheus_samples(text: str) -> dict[str, float]:
    """Sample lines of a Prometheus exposition as 'name{labels}' -> value."""
    samples = {}
    for line in text.splitlines():
        match = _PROM_SAMPLE.match(line.strip())
        if match and not line.startswith("#"):
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def prometheus_types(text: str) -> dict[str, str]:
    """The `# TYPE name kind` lines: metric family -> counter/gauge/histogram."""
    types = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            types[parts[2]] = parts[3]
    return types


def wait_for(admin_url: str, expected: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    """Poll the filter's metrics until each named one is at least its expected
    value; returns the last reading. The timer reports about once a second."""
    deadline = time.monotonic() + timeout
    while True:
        current = custom(admin_url)
        short = {name: current.get(name, 0) for name in expected if current.get(name, 0) < expected[name]}
        if not short:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics below expectation after {timeout}s: {short} (want {expected})")
        time.sleep(0.2)


def wait_stat(admin_url: str, name: str, at_least: int, timeout: float = 10.0) -> int:
    """Poll one /stats value until it reaches `at_least`; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = stats(admin_url).get(name, 0)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def memory_allocated(admin_url: str) -> int:
    """Envoy's heap in use (/memory `allocated`, tcmalloc's count)."""
    return int(requests.get(f"{admin_url}/memory", timeout=ADMIN_TIMEOUT).json()["allocated"])


def wasm_vm_stats(admin_url: str) -> dict[str, int]:
    """Envoy's own Wasm VM statistics (created, active, failures, reloads)."""
    return {
        name: value
        for name, value in stats(admin_url, "^wasm").items()
        if not name.startswith("wasmcustom.")
    }
