#!/usr/bin/env python3
"""What one Envoy pays for the filter: resident memory, tcmalloc's view of the
heap, and the time until the first request is answered.

For each setup — no filter, the no-op Wasm filter (noop.wat) and ours with a
bearer-only and with a browser-login configuration — and each worker count, a
fresh Envoy (one listener) is started; the clock runs from its launch until a
request through the listener gets its 200 (so every worker's VM is up), then
300 requests with the same valid token warm it up, and /proc's VmRSS and the
admin `/memory` (tcmalloc's `allocated` and `heap_size`) are read.

    .venv/bin/python tests/bench/footprint.py [--wasm dist/oidc_filter.wasm] [--concurrency 1 2 4]

`make bench` runs it after its other phases (bench.py) and writes the table
into results.md.
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from bench_envoy import BenchEnvoy, noop_wasm_filter, our_filter  # noqa: E402
from harness.ports import free_port  # noqa: E402

MIB = 1024 * 1024
WARM_REQUESTS = 300
READY_TIMEOUT = 30.0
# The goals: at --concurrency 2, ours at most this much RSS above the no-op
# filter, and ready at most this much later than it.
RSS_GOAL_BYTES = 10 * MIB
READY_GOAL_SECONDS = 0.4
GOAL_CONCURRENCY = 2
SETUPS = ("no filter", "no-op Wasm filter", "ours, bearer tokens", "ours, browser login")


class FootprintError(RuntimeError):
    pass


@dataclass
class Footprint:
    setup: str
    concurrency: int
    rss: list[int] = field(default_factory=list)
    allocated: list[int] = field(default_factory=list)
    heap: list[int] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


@dataclass(frozen=True)
class FootprintSetups:
    """What to start: the module, the no-op module, the two plugin
    configurations, the clusters they name (name -> loopback port), and a
    valid bearer token of the bearer configuration."""

    wasm: Path
    noop_wasm: Path
    bearer_config: dict
    login_config: dict
    clusters: dict[str, int]
    token: str

    def filters(self, setup: str) -> list[dict]:
        if setup == "no filter":
            return []
        if setup == "no-op Wasm filter":
            return [noop_wasm_filter(self.noop_wasm)]
        config = self.bearer_config if setup == "ours, bearer tokens" else self.login_config
        return [our_filter(self.wasm, config)]


class SizedEnvoy(BenchEnvoy):
    def __init__(self, *args, concurrency: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.concurrency = concurrency


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def measure_one(setups: FootprintSetups, setup: str, concurrency: int, cpus: str | None) -> tuple[int, int, int, float]:
    port = free_port()
    envoy = SizedEnvoy(setups.wasm, {"footprint": (port, setups.filters(setup))}, setups.clusters, cpus, concurrency=concurrency)
    url = f"http://127.0.0.1:{port}/"
    headers = {"Authorization": f"Bearer {setups.token}"}
    started = time.monotonic()
    envoy.launch()
    try:
        ready = None
        with requests.Session() as session:
            while ready is None:
                if time.monotonic() - started > READY_TIMEOUT or envoy.exit_code() is not None:
                    raise FootprintError(f"{setup}: not answering after {READY_TIMEOUT}s:\n{envoy.log_tail(30)}")
                try:
                    if session.get(url, headers=headers, timeout=2).status_code == 200:
                        ready = time.monotonic() - started
                except requests.ConnectionError:
                    time.sleep(0.005)
            for _ in range(WARM_REQUESTS):
                reply = session.get(url, headers=headers, timeout=5)
                if reply.status_code != 200:
                    raise FootprintError(f"{setup}: {reply.status_code} {reply.text[:200]!r}")
        memory = requests.get(f"{envoy.admin_url}/memory", timeout=5).json()
        return rss_bytes(envoy.pid), int(memory["allocated"]), int(memory["heap_size"]), ready
    finally:
        envoy.stop()


def measure(setups: FootprintSetups, concurrencies: list[int], runs: int, cpus: str | None, say=print) -> list[Footprint]:
    """Every setup at every worker count, `runs` fresh Envoys each, interleaved
    so that a drift of the machine touches every setup alike."""
    found = {(s, c): Footprint(s, c) for c in concurrencies for s in SETUPS}
    for run in range(runs):
        for concurrency in concurrencies:
            for setup in SETUPS:
                rss, allocated, heap, ready = measure_one(setups, setup, concurrency, cpus)
                entry = found[(setup, concurrency)]
                entry.rss.append(rss)
                entry.allocated.append(allocated)
                entry.heap.append(heap)
                entry.ready.append(ready)
        say(f"footprint: run {run + 1} of {runs} done")
    return list(found.values())


def _mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def table(found: list[Footprint]) -> list[str]:
    noop = {f.concurrency: f for f in found if f.setup == "no-op Wasm filter"}
    lines = [
        "| Envoy with | workers | RSS MiB | over the no-op filter | tcmalloc allocated MiB | tcmalloc heap MiB | ready after s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in sorted(found, key=lambda f: (f.concurrency, SETUPS.index(f.setup))):
        over = _mib(f.median("rss") - noop[f.concurrency].median("rss")) if f.setup.startswith("ours") else "—"
        lines.append(
            f"| {f.setup} | {f.concurrency} | {_mib(f.median('rss'))} | {over} | {_mib(f.median('allocated'))} "
            f"| {_mib(f.median('heap'))} | {f.median('ready'):.2f} |"
        )
    return lines


def goal_lines(found: list[Footprint]) -> list[str]:
    at = {f.setup: f for f in found if f.concurrency == GOAL_CONCURRENCY}
    if "no-op Wasm filter" not in at:
        return []
    noop = at["no-op Wasm filter"]
    lines = []
    for setup in ("ours, bearer tokens", "ours, browser login"):
        if setup not in at:
            continue
        over = at[setup].median("rss") - noop.median("rss")
        later = at[setup].median("ready") - noop.median("ready")
        lines.append(
            f"- goal: {setup}, RSS over the no-op filter at {GOAL_CONCURRENCY} workers: {_mib(over)} MiB "
            f"(≤ {_mib(RSS_GOAL_BYTES)} MiB) — **{'met' if over <= RSS_GOAL_BYTES else 'NOT met'}**"
        )
        lines.append(
            f"- goal: {setup}, ready after the no-op filter at {GOAL_CONCURRENCY} workers: +{later:.2f} s "
            f"(≤ +{READY_GOAL_SECONDS:.1f} s) — **{'met' if later <= READY_GOAL_SECONDS else 'NOT met'}**"
        )
    return lines


def markdown(found: list[Footprint], runs: int) -> list[str]:
    return [
        "## Footprint per Envoy",
        "",
        *table(found),
        "",
        *goal_lines(found),
        f"- how: a fresh Envoy per setup, worker count and run ({runs} runs, medians), one listener; "
        "ready = from launch until a request through the listener got its 200; then "
        f"{WARM_REQUESTS} requests with one valid token; RSS from /proc, tcmalloc's `allocated` and "
        "`heap_size` from the admin `/memory`",
    ]


def standalone_setups(wasm: Path, work: Path, stack) -> FootprintSetups:
    """Keys, an IdP and both configurations, for a run outside `make bench`."""
    from bench import assemble_wat
    from harness import tokens
    from harness.oidc_app import oidc_config

    key = tokens.generate_key("ES256", kid="footprint")
    issuer, audience = "https://footprint.test", "footprint"
    rule = {"issuer": issuer, "audiences": [audience], "jwks": json.dumps(tokens.jwks_of(key))}
    idp = stack.idp(name="footprint-idp")
    # The login block fetches the IdP's discovery document and keys at start, as
    # in a deployment; the requests measured carry the bearer token.
    login = oidc_config(idp, jwtRules=[rule])
    token = tokens.sign({}, tokens.claims(issuer, 3600, aud=audience), key)
    return FootprintSetups(wasm, assemble_wat(work), {"jwtRules": [rule]}, login, {"idp": idp.port}, token)


def main(argv: list[str]) -> int:
    import tempfile

    from harness.envoy import WORK_DIR
    from harness.stack import Stack

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=Path, default=BENCH_DIR.parents[1] / "dist" / "oidc_filter.wasm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    stack = Stack(name="footprint")
    try:
        with tempfile.TemporaryDirectory(prefix="footprint-", dir=WORK_DIR) as work:
            setups = standalone_setups(args.wasm, Path(work), stack)
            found = measure(setups, args.concurrency, args.runs, cpus=None)
    finally:
        stack.close()
    print("\n".join(markdown(found, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
