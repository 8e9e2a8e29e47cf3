"""From the runs of every round to the table, the goals and results.md."""

import statistics
from dataclasses import dataclass, field

from wrk import WrkResult

MIB = 1024 * 1024
MEMORY_GOAL_BYTES = 16 * MIB


@dataclass
class Measured:
    """The measured runs of one setup, one per round, plus CPU use."""

    name: str
    kind: str
    alg: str | None
    runs: list[WrkResult] = field(default_factory=list)
    envoy_cpu: list[float] = field(default_factory=list)  # share of one core, per run
    hop_cpu: list[float] = field(default_factory=list)  # the hop's Apache, per run (hop setups only)

    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    def spread(self) -> float:
        """(max - min) / median of the rounds' req/s."""
        values = [r.rps for r in self.runs]
        return (max(values) - min(values)) / statistics.median(values)

    def p99_ms(self) -> float:
        return statistics.median(r.p99_us for r in self.runs) / 1000

    def repeated(self) -> int:
        return sum(r.repeated for r in self.runs)

    def wrk_cpu(self) -> float:
        return statistics.median(r.wrk_cpu_seconds / r.seconds for r in self.runs)

    def proxy_host_cpu(self) -> float:
        """Envoy's share of a core plus, for the hop, Apache's (on the same core)."""
        if not self.hop_cpu:
            return statistics.median(self.envoy_cpu)
        return statistics.median(e + a for e, a in zip(self.envoy_cpu, self.hop_cpu))

    @property
    def cold(self) -> bool:
        return self.kind.endswith("-cold")


def ratio(setup: Measured, baseline: Measured | None) -> float | None:
    """Median over rounds of this setup's req/s divided by the baseline's in
    the same round: runs close in time share the machine's load of the moment,
    so per-round ratios are steadier than a ratio of medians."""
    if baseline is None:
        return None
    return statistics.median(a.rps / b.rps for a, b in zip(setup.runs, baseline.runs))


@dataclass
class Summary:
    setups: list[Measured]
    module_path: str
    module_bytes: int
    memory: "MemoryReport"
    context: list[str]  # how the bench ran: machine, load, wrk, Envoy
    first_requests: list["FirstRequests"] = field(default_factory=list)
    footprint: list[str] = field(default_factory=list)  # footprint.markdown's lines
    opaque: list[str] = field(default_factory=list)  # an opaque token's first and cached request

    def find(self, kind: str, alg: str | None = None) -> Measured | None:
        return next((s for s in self.setups if s.kind == kind and (alg is None or s.alg == alg)), None)


@dataclass
class MemoryReport:
    distinct_tokens: int
    vm_memory_bytes: dict[str, int]  # stat name -> value; empty: not reported
    cache_gauges: dict[str, int]  # the filter's cache sizes then, if reported
    envoy_allocated_bytes: int | None


# How the first-request phase (first_request.py) names its cases.
FIRST_REQUEST_TITLES = {
    "fetch": "first request after a JWKS fetch",
    "inline": "first request after a configuration load (inline jwks)",
}


@dataclass
class FirstRequests:
    """One case and algorithm of the first-request phase: per fresh Envoy, the
    latency in ms of the first request with a new token after the key set
    arrived, of the second, and the median of the `later_count` after them."""

    case: str  # a key of FIRST_REQUEST_TITLES
    alg: str
    first_ms: list[float] = field(default_factory=list)
    second_ms: list[float] = field(default_factory=list)
    later_ms: list[float] = field(default_factory=list)
    later_count: int = 0

    def line(self) -> str:
        first, later = statistics.median(self.first_ms), statistics.median(self.later_ms)
        text = (
            f"{FIRST_REQUEST_TITLES[self.case]}, {self.alg}: {first:.2f} ms "
            f"(later new-token requests: {later:.2f} ms median; "
            f"the second request: {statistics.median(self.second_ms):.2f} ms"
        )
        if len(self.first_ms) > 1:
            text += f"; first requests of {len(self.first_ms)} Envoys: {min(self.first_ms):.2f}–{max(self.first_ms):.2f} ms"
        return text + ")"


def first_request_lines(found: list[FirstRequests]) -> list[str]:
    if not found:
        return []
    runs, later = len(found[0].first_ms), found[0].later_count
    return [
        "",
        "## First request after a key set arrives",
        "",
        *[f"- {measured.line()}" for measured in found],
        f"- how: {runs} fresh Envoy(s) per case, one listener per algorithm with our filter in a VM of its own, "
        "keys by a `jwksUri` fetch from a loopback JWKS server (measured once `oidc_filter.jwks_fetch.succeeded` "
        "was reported and the worker VM's next timer tick had passed) or an inline `jwks` (after as long an idle wait); "
        "a few requests to a listener without a filter first; then per algorithm, sequentially, each on a new "
        f"connection with a never-sent valid token: the first request, a second, and {later} more, timed by the "
        "client (on wrk's CPU unless `--no-pin`) from connect to the last byte; medians over the Envoys (for the later "
        "requests: of each Envoy's median). The first request of a VM also pays its own one-time costs (code "
        "first run in the VM), not only the keys'",
    ]


def _format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


# Our setups and the hop's setup each is compared with ("ours vs the hop").
HOP_OF = {"ours-hot": "hop-hot", "ours-cold": "hop-cold", "ours-module-cold": "hop-cold"}


def table(summary: Summary) -> list[str]:
    no_auth = summary.find("no-auth")
    lines = [
        "| setup | req/s (median) | spread | p99 ms | × no-auth | × native uncached (same alg) "
        "| × the hop (same alg and path) | Envoy CPU | wrk CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for setup in summary.setups:
        # A reference row (the no-op filter given a session's cookie) has an
        # algorithm only to name whose cookie it sends: no ratio to native.
        checks = setup.alg and not setup.kind.startswith("noop-")
        native = summary.find("native-uncached", setup.alg) if checks else None
        hop = summary.find(HOP_OF[setup.kind], setup.alg) if setup.kind in HOP_OF else None
        repeated = f" ({setup.repeated()} repeated tokens)" if setup.cold and setup.repeated() else ""
        cpu = f"{statistics.median(setup.envoy_cpu):.0%}"
        if setup.hop_cpu:
            cpu += f" + Apache {statistics.median(setup.hop_cpu):.0%}"
        lines.append(
            f"| {setup.name}{repeated} | {setup.rps():,.0f} | {setup.spread():.0%} | {setup.p99_ms():.2f} "
            f"| {_format_ratio(ratio(setup, no_auth))} | {_format_ratio(ratio(setup, native))} "
            f"| {_format_ratio(ratio(setup, hop))} | {cpu} | {setup.wrk_cpu():.0%} |"
        )
    return lines


@dataclass
class Goal:
    text: str
    value: float | None
    threshold: float
    stretch: bool = False
    reference: bool = False  # an earlier goal, still shown for comparison

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.threshold

    def line(self) -> str:
        shown = "—" if self.value is None else f"{self.value:.2f}×"
        if self.reference:
            verdict = {True: "met", False: "not met", None: "not measured"}[self.met]
            return f"- reference (earlier goal): {self.text}: {shown} (≥ {self.threshold:.2f}×: {verdict})"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        kind = "stretch" if self.stretch else "goal"
        return f"- {kind}: {self.text}: {shown} (≥ {self.threshold:.2f}×) — **{verdict}**"


# Cold tokens (signatures verified by Envoy's BoringSSL where the probe passed)
# against native jwt_authn without its cache, and against the hop.
COLD_VS_NATIVE = 0.9
COLD_VS_HOP = 3.0
# The earlier targets, when the module's own crypto verified every signature.
EARLIER_COLD_VS_NATIVE = {"ES256": 0.75, "RS256": 0.5}
EARLIER_COLD_VS_HOP = 1.5
HOT_VS_NOOP = 0.85
SESSION_VS_NOOP = 0.75
# A cached opaque token "within noise" of the hot JWT path.
OPAQUE_VS_JWT_HOT = 0.9


def goals(summary: Summary) -> list[Goal]:
    """The targets (cold with Envoy's crypto, hot, session; the stretch goal),
    then the earlier goals they replaced, as references."""
    no_auth, noop = summary.find("no-auth"), summary.find("noop-wasm")
    found, references = [], []
    for alg in sorted({s.alg for s in summary.setups if s.alg}):
        hot, cold = summary.find("ours-hot", alg), summary.find("ours-cold", alg)
        session = summary.find("ours-session", alg)
        native, cached = summary.find("native-uncached", alg), summary.find("native-cached", alg)
        hop_cold = summary.find("hop-cold", alg)
        module_cold = summary.find("ours-module-cold", alg)
        if cold:
            found += [
                Goal(f"cold {alg} vs native uncached", ratio(cold, native), COLD_VS_NATIVE),
                Goal(f"cold {alg} vs the hop cold", ratio(cold, hop_cold), COLD_VS_HOP),
                Goal(f"cold {alg} vs native uncached", ratio(cold, native), 1.0, stretch=True),
            ]
        if module_cold:
            references += [
                Goal(f"cold {alg}, module crypto only, vs native uncached", ratio(module_cold, native),
                     EARLIER_COLD_VS_NATIVE.get(alg, 0.5), reference=True),
                Goal(f"cold {alg}, module crypto only, vs the hop cold", ratio(module_cold, hop_cold),
                     EARLIER_COLD_VS_HOP, reference=True),
            ]
        if hot:
            found.append(Goal(f"hot {alg} vs the no-op Wasm filter", ratio(hot, noop), HOT_VS_NOOP))
            references += [
                Goal(f"hot {alg} vs no auth", ratio(hot, no_auth), 0.85, reference=True),
                Goal(f"hot {alg} vs native uncached", ratio(hot, native), 2.0, reference=True),
                Goal(f"hot {alg} vs native cached (stretch)", ratio(hot, cached), 1.0, reference=True),
            ]
        if session:
            # Against the no-op filter given the same session cookie: requests as
            # large as the session's (the bearer-token no-op line stays a reference).
            noop_session = summary.find("noop-wasm-session", alg) or noop
            found.append(Goal(f"session {alg} vs the no-op Wasm filter (same cookie)", ratio(session, noop_session), SESSION_VS_NOOP))
            references += [
                Goal(f"session {alg} vs the no-op Wasm filter with a bearer token's request", ratio(session, noop), SESSION_VS_NOOP, reference=True),
                Goal(f"session {alg} vs no auth", ratio(session, no_auth), 0.8, reference=True),
            ]
    opaque, hot_es256 = summary.find("ours-opaque-hot"), summary.find("ours-hot", "ES256")
    if opaque and hot_es256:
        found.append(Goal("hot opaque token (introspection cached) vs hot ES256 JWT", ratio(opaque, hot_es256), OPAQUE_VS_JWT_HOT))
    return found + references


def memory_lines(memory: MemoryReport) -> list[str]:
    lines = [f"- Wasm VM memory after {memory.distinct_tokens:,} distinct valid tokens: "]
    if memory.vm_memory_bytes:
        largest = max(memory.vm_memory_bytes.values())
        verdict = "met" if largest <= MEMORY_GOAL_BYTES else "NOT met"
        names = ", ".join(f"`{name}` = {value:,}" for name, value in sorted(memory.vm_memory_bytes.items()))
        lines[0] += f"{largest / MIB:.1f} MiB (goal ≤ 16 MiB per VM: **{verdict}**; {names})"
    else:
        lines[0] += "not reported (no `*oidc_filter*vm_memory_bytes` stat in Envoy's /stats)"
    if memory.cache_gauges:
        lines.append("- the filter's caches then: " + ", ".join(f"`{n}` = {v:,}" for n, v in sorted(memory.cache_gauges.items())))
    if memory.envoy_allocated_bytes is not None:
        lines.append(f"- Envoy's whole heap then (`server.memory_allocated`): {memory.envoy_allocated_bytes / MIB:.1f} MiB")
    return lines


# Below this share of a core the Envoy worker was not saturated: the machine
# was busy (or the load generator too slow), and the numbers are suspect.
SATURATED_ENVOY_CPU = 0.8
# Above this, wrk itself was the bottleneck.
BUSY_WRK_CPU = 0.9
NOISY_SPREAD = 0.2


def warnings(summary: Summary) -> list[str]:
    found = []
    starved = [s.name for s in summary.setups if s.proxy_host_cpu() < SATURATED_ENVOY_CPU]
    if starved:
        found.append(
            f"Envoy (with the hop: Envoy and Apache together) used less than {SATURATED_ENVOY_CPU:.0%} of a core "
            f"in {len(starved)} of {len(summary.setups)} setups: the machine was busy; "
            "trust ratios more than absolute numbers"
        )
    busy_wrk = [s.name for s in summary.setups if s.wrk_cpu() > BUSY_WRK_CPU]
    if busy_wrk:
        found.append(f"wrk used more than {BUSY_WRK_CPU:.0%} of its core (it may be the bottleneck): {', '.join(busy_wrk)}")
    noisy = [s.name for s in summary.setups if len(s.runs) > 1 and s.spread() > NOISY_SPREAD]
    if noisy:
        found.append(f"spread over {NOISY_SPREAD:.0%} (more rounds would help): {', '.join(noisy)}")
    repeated = [s.name for s in summary.setups if s.cold and s.repeated()]
    if repeated:
        found.append(f"cold runs that ran out of fresh tokens and repeated some: {', '.join(repeated)}")
    return found


def reference_lines(summary: Summary) -> list[str]:
    """How close any Wasm filter can get: the no-op module against no auth, and
    our hot and session paths against the no-op module."""
    noop, no_auth = summary.find("noop-wasm"), summary.find("no-auth")
    if noop is None:
        return []
    lines = [f"- reference: a no-op Wasm filter reaches {_format_ratio(ratio(noop, no_auth))} of no auth"]
    algs = sorted({s.alg for s in summary.setups if s.alg})
    for alg in algs:
        hot, hop_hot = summary.find("ours-hot", alg), summary.find("hop-hot", alg)
        if hot and hop_hot:
            shown = _format_ratio(ratio(hot, hop_hot))
            lines.append(f"- reference: hot {alg} = {shown} of the hop hot (ours vs the hop)")
    for alg in algs:
        hop_hot, hop_cold = summary.find("hop-hot", alg), summary.find("hop-cold", alg)
        if hop_hot and hop_cold:
            lines.append(
                f"- reference: the hop {alg} reaches {_format_ratio(ratio(hop_hot, no_auth))} (hot) and "
                f"{_format_ratio(ratio(hop_cold, no_auth))} (cold) of no auth"
            )
    return lines


def markdown(summary: Summary) -> str:
    parts = ["# Benchmark: oidc_filter vs Envoy's native jwt_authn", ""]
    parts += table(summary)
    parts += ["", "## Goals", ""]
    parts += [goal.line() for goal in goals(summary)]
    parts += reference_lines(summary)
    parts += memory_lines(summary.memory)
    kib = summary.module_bytes / 1024
    parts += [f"- Release module `{summary.module_path}`: {summary.module_bytes:,} bytes ({kib:.0f} KiB)"]
    parts += first_request_lines(summary.first_requests)
    parts += summary.opaque
    if summary.footprint:
        parts += ["", *summary.footprint]
    parts += ["", "## How it ran", ""]
    parts += [f"- {line}" for line in summary.context]
    cpu_note = (
        "- Envoy CPU / wrk CPU: the share of one core each process used during the measured runs "
        "(Envoy's worker near 100% means it was the bottleneck, as intended"
    )
    if any(s.hop_cpu for s in summary.setups):
        cpu_note += "; for the hop, + Apache: its parent and worker processes, on Envoy's core"
    parts.append(cpu_note + ")")
    found = warnings(summary)
    if found:
        parts += ["", "## Warnings", ""] + [f"- {line}" for line in found]
    return "\n".join(parts) + "\n"


def broken_runs(summary: Summary) -> list[str]:
    return [f"{s.name}: {r.failure()}" for s in summary.setups for r in s.runs if not r.all_2xx]
