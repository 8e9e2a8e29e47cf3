#!/usr/bin/env python3
"""`make profile`: where a request's time goes inside Envoy.

The bench's setups (one worker, wrk, the same tokens and keys) run against a
module built with the `profile` feature, in a VM whose environment has
OIDC_FILTER_TEST_ONLY_PROFILE=1: the filter then times its phases with WASI's
monotonic clock and reports each phase's nanoseconds and spans as counters
(`oidc_filter.profile.<phase>.ns` / `.spans`). The table divides them by the
requests of a measured run. The no-op Wasm filter and no auth filter run too,
so that a request's whole cost (1 / throughput, Envoy's worker being the
bottleneck) can be split into Envoy's own work, the cost of any Wasm filter,
and ours.

    .venv/bin/python tests/bench/profile.py --wasm dist/oidc_filter_profile.wasm [--seconds S]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

import bench  # noqa: E402
from bench import BENCH_DIR, GAUGE_SETTLE_SECONDS, Runner, Setup, World, assemble_wat, say  # noqa: E402
from bench_envoy import noop_wasm_filter  # noqa: E402
from harness.ports import free_port  # noqa: E402
from credentials import FixedValue, session_cookie_by_login  # noqa: E402
from harness.envoy import WORK_DIR  # noqa: E402
from harness.stack import Stack  # noqa: E402

PROFILE_ENV = {"key_values": {"OIDC_FILTER_TEST_ONLY_PROFILE": "1"}}
FLOOR_WAT = BENCH_DIR / "floor.wat"
FLOOR = Setup("floor-wasm", None)
# The references every profile runs, whatever `--only` picks.
REFERENCE_KINDS = ("no-auth", "noop-wasm", FLOOR.kind)
PROFILED = [
    Setup("no-auth", None),
    Setup("noop-wasm", None),
    FLOOR,
    Setup("ours-cold", "ES256"),
    Setup("ours-cold", "RS256"),
    Setup("ours-hot", "ES256"),
    Setup("ours-session", "ES256"),
    # After the session setup, whose login makes the cookie it sends.
    Setup("noop-wasm-session", "ES256"),
]
PHASES = [
    ("request_headers_callback", "the whole request-headers callback"),
    ("read_headers", "· reading the request headers from Envoy"),
    ("decide", "· the core's decision"),
    ("extract", "· · finding the token"),
    ("token_cache_lookup", "· · hashing it, cache lookup"),
    ("parse", "· · base64 + JSON parse"),
    ("claims", "· · issuer, time and audience checks"),
    ("verify", "· · signature check"),
    ("token_cache_insert", "· · cache insert (and eviction)"),
    ("authorize", "· · policies"),
    ("apply_edits", "· setting/removing headers in Envoy"),
    ("response_headers_callback", "the whole response-headers callback"),
    ("context_create", "making the request's context"),
    ("context_delete", "releasing the request's context"),
    ("clock_pair", "one measurement (two clock reads)"),
]


class ProfiledWorld(World):
    """The bench's world, with our filter's VM told to profile, and the floor
    reference (floor.wat) beside the no-op one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.floor_wasm = assemble_wat(self.work, FLOOR_WAT)
        self.ports[FLOOR.listener] = free_port()

    def auth_filters(self, setup: Setup) -> list[dict]:
        if setup == FLOOR:
            return [noop_wasm_filter(self.floor_wasm)]
        filters = super().auth_filters(setup)
        if setup.kind.startswith("ours-"):
            for stanza in filters:
                stanza["typed_config"]["config"]["vm_config"]["environment_variables"] = PROFILE_ENV
        return filters


def profile_counters(envoy) -> dict[str, int]:
    stats = envoy.stats_matching(r"oidc_filter\.profile\.")
    return {name.split("oidc_filter.profile.", 1)[1]: value for name, value in stats.items()}


def profile_setup(stack: Stack, world: World, setup: Setup) -> tuple[float, dict[str, float]]:
    """One setup in a fresh Envoy: warm up, measure; (µs per request at full
    load, µs per request of each phase)."""
    envoy = world.new_envoy(stack, [setup])
    if setup.kind == "ours-session":
        cookie = session_cookie_by_login(world.url(setup))
        world.sessions[setup.alg] = FixedValue.write(world.work / f"session-{setup.alg}.txt", cookie)
    runner = Runner(world, envoy)
    warmup = runner.checked_run(setup, world.options.warmup_seconds, expected_rps=None)
    time.sleep(GAUGE_SETTLE_SECONDS)
    before = profile_counters(envoy)
    result = runner.checked_run(setup, world.options.seconds, expected_rps=warmup.rps)
    time.sleep(GAUGE_SETTLE_SECONDS)
    after = profile_counters(envoy)
    envoy.stop()
    spans = after.get("request_headers_callback.spans", 0) - before.get("request_headers_callback.spans", 0)
    phases = {}
    for phase, _ in PHASES:
        nanos = after.get(f"{phase}.ns", 0) - before.get(f"{phase}.ns", 0)
        phases[phase] = nanos / spans / 1000 if spans else 0.0
    say(f"{setup.title}: {result.rps:,.0f} req/s")
    return 1e6 / result.rps, phases


def markdown(results: dict[Setup, tuple[float, dict[str, float]]]) -> str:
    ours = [s for s in results if s.kind.startswith("ours-")]
    no_auth = results[Setup("no-auth", None)][0]
    noop = results[Setup("noop-wasm", None)][0]
    floor = results[FLOOR][0]
    noop_session = results.get(Setup("noop-wasm-session", "ES256"), (noop,))[0]
    # The session column is judged against the no-op filter given its cookie.
    baseline = {s: noop_session if s.kind == "ours-session" else noop for s in ours}
    header = "| µs per request | " + " | ".join(s.title.replace("ours, ", "") for s in ours) + " |"
    lines = [header, "|---|" + "---:|" * len(ours)]

    def row(label: str, values: list[float]) -> None:
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + " |")

    row("whole request at full load (1 / req/s)", [results[s][0] for s in ours])
    row(f"· of which Envoy without any filter ({no_auth:.1f} µs)", [no_auth for _ in ours])
    row(f"· of which any Wasm filter (no-op filter − no filter: {noop - no_auth:.1f} µs)", [noop - no_auth for _ in ours])
    row("· of which ours above a no-op filter (for the session: given the same cookie)", [results[s][0] - baseline[s] for s in ours])
    row(f"· · of which the floor: reading the headers and removing one (floor − no-op filter: {floor - noop:.1f} µs)",
        [floor - noop for _ in ours])
    for phase, label in PHASES:
        row(f"{label} (`{phase}`)", [results[s][1][phase] for s in ours])
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=Path, required=True, help="a module built with --features profile")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--warmup-seconds", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None,
                        help="setups by listener name (e.g. ours-cold-rs256); the three references always run")
    args = parser.parse_args(argv)
    options = bench.parse_options(["--no-hop", "--wasm", str(args.wasm), "--seconds", str(args.seconds),
                                   "--warmup-seconds", str(args.warmup_seconds), "--rounds", "1"])
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    stack = Stack(name="profile")
    try:
        with tempfile.TemporaryDirectory(prefix="profile-values-", dir=WORK_DIR) as work:
            world = ProfiledWorld(stack, options, Path(work))
            chosen = [s for s in PROFILED
                      if s.kind in REFERENCE_KINDS or args.only is None or s.listener in args.only
                      or (s.kind == "noop-wasm-session" and "ours-session-es256" in args.only)]
            results = {setup: profile_setup(stack, world, setup) for setup in chosen}
    finally:
        stack.close()
    print("\n" + markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
