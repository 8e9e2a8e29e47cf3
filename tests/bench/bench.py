#!/usr/bin/env python3
"""`make bench`: our filter side by side with Envoy's native jwt_authn and with the auth hop it replaces.

One Envoy with one worker serves a listener per setup, every listener
answering with the same direct_response 200; wrk (Debian's) loads one setup at
a time with the same Lua script. Setups: no auth filter; native jwt_authn
without and with its JWT cache; the auth hop (Envoy's ext_authz HTTP filter
calling Apache httpd with mod_auth_openidc, auth_hop.py) with the same token
repeated (hot) and a new token on every request (cold); our filter hot, cold
(a never-seen token on every request) and with a browser session cookie —
each for ES256 and RS256. Every round starts a fresh Envoy and a fresh Apache
(so cold tokens are new to them, and the pool of distinct tokens only needs
to cover one round) and runs the setups in a rotated order; the table shows
medians over rounds.
Then the latency of the first request after a key set arrives (by a JWKS
fetch, or inline at configuration load), per algorithm, against the requests
after it (first_request.py: fresh Envoys, one new-connection request at a
time). A last phase sends 100k distinct tokens to a fresh Envoy and reads the
Wasm VM's memory gauge.

Every response must be 2xx: anything else means the bench measures an error
path, and it stops with exit status 1. The table goes to --output (results.md),
a bar chart of its req/s beside it (results.svg, chart.py).

    .venv/bin/python tests/bench/bench.py [--quick] [--rounds N] [--seconds S] [--no-hop]
                                          [--first-runs N] [--first-later N]
"""

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent
sys.path[:0] = [str(TESTS_DIR), str(BENCH_DIR)]

import auth_hop  # noqa: E402
from auth_hop import AuthHop, HopError  # noqa: E402
from bench_envoy import BenchEnvoy, distinct_free_ports, native_jwt_authn, noop_wasm_filter, our_filter  # noqa: E402
from credentials import FixedValue, FreshTokens, bearer, bench_token, mint_workers  # noqa: E402
from credentials import session_client, session_cookie_by_login  # noqa: E402
import footprint  # noqa: E402
from first_request import FirstRequestError, FirstRequestPhase  # noqa: E402
from harness import tokens  # noqa: E402
from harness.envoy import ENVOY_BIN, WORK_DIR  # noqa: E402
from harness.oidc_app import oidc_config  # noqa: E402
from harness.stack import Stack  # noqa: E402
import chart  # noqa: E402
from report import FirstRequests, Measured, MemoryReport, Summary, broken_runs, markdown  # noqa: E402
from wrk import Load, WrkResult, run_wrk  # noqa: E402

REPO_ROOT = TESTS_DIR.parent
DEFAULT_WASM = REPO_ROOT / "dist" / "oidc_filter.wasm"
DEFAULT_OUTPUT = BENCH_DIR / "results.md"

NOOP_WAT = BENCH_DIR / "noop.wat"
WASM_AS = next(iter(sorted(REPO_ROOT.glob(".tools/binaryen-*/node_modules/.bin/wasm-as"))), None)

ISSUER = "https://bench.example.test"
AUDIENCE = "bench-api"
ALGS = ("ES256", "RS256")
KINDS = (
    "no-auth",
    "noop-wasm",
    "noop-wasm-session",
    "native-uncached",
    "native-cached",
    "hop-hot",
    "hop-cold",
    "ours-hot",
    "ours-cold",
    "ours-module-cold",
    "ours-session",
)
# An opaque access token (not a JWT) checked by token introspection: the same one on
# every request, so after the first the filter's introspection cache answers.
OPAQUE_KIND = "ours-opaque-hot"
KIND_TITLES = {
    "no-auth": "no auth filter",
    "noop-wasm": "no-op Wasm filter (reference)",
    "noop-wasm-session": "no-op Wasm filter, the session's cookie (reference)",
    "native-uncached": "native jwt_authn, no cache",
    "native-cached": "native jwt_authn + jwt_cache_config",
    "hop-hot": "hop: ext_authz → Apache mod_auth_openidc, hot (same token)",
    "hop-cold": "hop: ext_authz → Apache mod_auth_openidc, cold (new token each request)",
    "ours-hot": "ours, hot (same token)",
    "ours-cold": "ours, cold (new token each request)",
    # `signatureVerification: module`: the module's own crypto, where `ours-cold`
    # has the default (`auto`: Envoy's BoringSSL for RS* and ES256 after the probe).
    "ours-module-cold": "ours, cold (new token each request), module crypto only",
    "ours-session": "ours, session cookie",
    OPAQUE_KIND: "ours, opaque token by introspection, hot (same token)",
    # `make profile` only (profile.py): floor.wat, not a row of the bench.
    "floor-wasm": "a Wasm filter that only reads the headers and removes the token (reference)",
}
# Setups without a credential check (they still receive the same headers).
UNAUTHENTICATED = ("no-auth", "noop-wasm")
# Setups whose requests carry a session cookie instead of a bearer token: the
# no-op filter gets the same cookie, so the session path is judged against a
# do-nothing filter handling requests just as large.
SESSION_KINDS = ("noop-wasm-session", "ours-session")
# The no-op filter's setups: they check no credential, whatever they are sent.
NOOP_KINDS = ("noop-wasm", "noop-wasm-session")
# The auth hop's setups: Envoy's ext_authz calling Apache (auth_hop.py).
HOP_KINDS = ("hop-hot", "hop-cold")
# Setups sending a token never sent before on every request, from the cold pool.
COLD_KINDS = ("hop-cold", "ours-cold", "ours-module-cold")
# Envoy shows the filter's own stats as wasmcustom.oidc_filter.<name>.
VM_MEMORY_STAT = r"oidc_filter.*vm_memory_bytes$"
CACHE_GAUGES = r"oidc_filter.*cache\.(entries|bytes)$"
GAUGE_SETTLE_SECONDS = 2.5
# The cold pool is sized from the warm-up's rate; this much more, for the
# measured run being faster than its warm-up.
COLD_POOL_MARGIN = 1.3
# Tokens minted for a cold warm-up before any rate is known; the warm-up may
# repeat tokens, the measured run never does.
COLD_WARMUP_TOKENS = 3000
MEMORY_PHASE_MAX_SECONDS = 90
MEMORY_POOL_HEADROOM = 1.2


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: int
    warmup_seconds: int
    memory_tokens: int
    load: Load
    envoy_cpus: str | None
    wasm: Path
    output: Path
    hop: bool  # with the auth hop's setups
    first_runs: int  # fresh Envoys per case of the first-request phase
    first_later: int  # new-token requests after the first two, per algorithm and Envoy
    footprint_runs: int  # fresh Envoys per setup and worker count in the footprint phase
    footprint_concurrency: list[int]


@dataclass(frozen=True)
class Setup:
    kind: str
    alg: str | None

    @property
    def listener(self) -> str:
        return self.kind if self.alg is None else f"{self.kind}-{self.alg.lower()}"

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind] + (f" {self.alg}" if self.alg else "")


def all_setups(hop: bool = True) -> list[Setup]:
    plain = [Setup(kind, None) for kind in UNAUTHENTICATED] + [Setup(OPAQUE_KIND, None)]
    kinds = [kind for kind in KINDS if kind not in UNAUTHENTICATED and (hop or kind not in HOP_KINDS)]
    return plain + [Setup(kind, alg) for alg in ALGS for kind in kinds]


# ----- options -----
def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 round, 1 s runs, no warm-up, few tokens")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per setup and round")
    parser.add_argument("--warmup-seconds", type=int, default=1)
    parser.add_argument("--memory-tokens", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-pin", action="store_true", help="do not pin Envoy and wrk to separate CPUs")
    parser.add_argument(
        "--no-hop", action="store_true", help="leave out the auth hop (ext_authz + Apache mod_auth_openidc)"
    )
    parser.add_argument(
        "--first-runs", type=int, default=3, help="fresh Envoys per case of the first-request phase"
    )
    parser.add_argument(
        "--first-later", type=int, default=20, help="requests after the first two, per algorithm, in that phase"
    )
    parser.add_argument("--footprint-runs", type=int, default=3, help="fresh Envoys per setup and worker count")
    parser.add_argument("--wasm", type=Path, default=DEFAULT_WASM)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.first_runs < 1 or args.first_later < 1:
        parser.error("--first-runs and --first-later must be at least 1")
    if args.quick:
        args.rounds, args.seconds, args.warmup_seconds, args.memory_tokens = 1, 1, 0, 2000
        args.first_runs, args.first_later = 1, 5
        args.footprint_runs = 1
    envoy_cpus, wrk_cpus = (None, None) if args.no_pin else cpu_split()
    return Options(
        rounds=args.rounds,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        memory_tokens=args.memory_tokens,
        # One wrk thread drives 16 connections: one Envoy worker cannot keep
        # up with more, and a second wrk thread would need a core Envoy uses.
        load=Load(connections=args.connections, threads=1, cpus=wrk_cpus),
        envoy_cpus=envoy_cpus,
        wasm=args.wasm,
        output=args.output,
        hop=not args.no_hop,
        first_runs=args.first_runs,
        first_later=args.first_later,
        footprint_runs=args.footprint_runs,
        footprint_concurrency=[footprint.GOAL_CONCURRENCY] if args.quick else [1, 2, 4],
    )


def cpu_split() -> tuple[str | None, str | None]:
    """Envoy (its one worker plus the mostly idle main thread) on one CPU,
    wrk on another: neither steals the other's cycles or caches. With a
    single CPU nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return str(cpus[0]), str(cpus[1])


def assemble_wat(work: Path, wat: Path = NOOP_WAT) -> Path:
    """A reference module (noop.wat by default) assembled with the wasm-as that
    `make build` installed."""
    if WASM_AS is None:
        raise SystemExit("Binaryen's wasm-as is missing: run `make build` first")
    module = work / f"{wat.stem}.wasm"
    subprocess.run([str(WASM_AS), str(wat), "-o", str(module)], check=True)
    return module


# ----- the world: keys, IdP, plugin configurations, header values -----
# The client that gets opaque access tokens (client credentials), and the one the
# filter introspects them as (oidc-provider's access tokens are opaque).
OPAQUE_SERVICE = {
    "client_id": "bench-service",
    "client_secret": "bench-service-secret-0123456789abcdef",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "redirect_uris": [],
}
OPAQUE_GATEWAY = OPAQUE_SERVICE | {"client_id": "bench-gateway", "client_secret": "bench-gateway-secret-0123456789abcdef"}


class World:
    """Everything that lives across rounds: keys, the IdP, the auth hop's
    JWKS server, listener ports, plugin configurations and the header values
    of every setup."""

    def __init__(self, stack: Stack, options: Options, work: Path):
        self.options = options
        self.work = work
        self.setups = all_setups(options.hop)
        self.keys = {alg: tokens.generate_key(alg, kid=f"bench-{alg.lower()}") for alg in ALGS}
        hop_names = [f"hop-apache-{alg}" for alg in ALGS] + ["hop-jwks"] if options.hop else []
        self.ports = distinct_free_ports([setup.listener for setup in self.setups] + hop_names)
        self.idp = self._start_idp(stack)
        self.session_configs = {alg: self._session_config(alg) for alg in ALGS}
        self.hot_tokens = {alg: bench_token(self.keys[alg], ISSUER, AUDIENCE, serial=-1) for alg in ALGS}
        self.hot = {alg: FixedValue.write(work / f"hot-{alg}.txt", bearer(self.hot_tokens[alg])) for alg in ALGS}
        self.cold = {
            alg: FreshTokens(work / f"cold-{alg}.txt", self.keys[alg], ISSUER, AUDIENCE, mint_workers()) for alg in ALGS
        }
        self.sessions: dict[str, FixedValue] = {}
        self.opaque = FixedValue.write(work / "opaque.txt", bearer(self.opaque_token()))
        self.noop_wasm = assemble_wat(work)
        self.hop = stack.own(self._auth_hop(work).start()) if options.hop else None

    def _auth_hop(self, work: Path) -> AuthHop:
        """Apache's virtual host per algorithm checks the same tokens against
        the same keys, fetched over https from the hop's own JWKS server."""
        jwks = {alg: tokens.jwks_of(self.keys[alg]) for alg in ALGS}
        apache_ports = {alg: self.ports[f"hop-apache-{alg}"] for alg in ALGS}
        return AuthHop(work, ISSUER, AUDIENCE, jwks, apache_ports, self.ports["hop-jwks"])

    def url(self, setup: Setup) -> str:
        return f"http://127.0.0.1:{self.ports[setup.listener]}"

    def _start_idp(self, stack: Stack):
        clients = [self._session_client(alg) for alg in ALGS] + [OPAQUE_SERVICE, OPAQUE_GATEWAY]
        # Long-lived ID tokens: a session whose tokens expire would be
        # refreshed at the token endpoint, which is not the path measured.
        return stack.idp(clients=clients, ttl={"IdToken": 3600, "AccessToken": 3600}, name="bench-idp")

    def _session_client(self, alg: str):
        return session_client(self.url(Setup("ours-session", alg)), f"bench-{alg.lower()}", alg)

    def _session_config(self, alg: str) -> dict:
        client = self._session_client(alg)
        oidc_fields = {"clientId": client.client_id, "clientSecret": client.client_secret}
        # Bearer tokens of the same IdP for this client would be judged by
        # this rule; the bench sends none here, only the session cookie.
        rule = {"issuer": self.idp.issuer, "audiences": [client.client_id]}
        return oidc_config(self.idp, oidc_fields, jwtRules=[rule])

    def opaque_token(self) -> str:
        """A fresh opaque access token of the service client."""
        reply = self.idp.client_credentials_token(OPAQUE_SERVICE["client_id"], OPAQUE_SERVICE["client_secret"])
        return reply["access_token"]

    def opaque_plugin_config(self) -> dict:
        """Our filter with one introspection rule for the IdP's opaque tokens."""
        rule = {
            "issuer": self.idp.issuer,
            "introspectionEndpoint": self.idp.endpoint("introspection"),
            "clientId": OPAQUE_GATEWAY["client_id"],
            "clientSecret": OPAQUE_GATEWAY["client_secret"],
        }
        return {"introspection": [rule], "clusters": {self.idp.authority: "idp"}}

    def jwt_plugin_config(self, alg: str, **top_level) -> dict:
        """Our filter as the same RequestAuthentication: one rule, inline JWKS."""
        jwks = tokens.jwks_of(self.keys[alg])
        return {"jwtRules": [{"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": json.dumps(jwks)}], **top_level}

    def auth_filters(self, setup: Setup) -> list[dict]:
        if setup.kind == "no-auth":
            return []
        if setup.kind in NOOP_KINDS:
            return [noop_wasm_filter(self.noop_wasm)]
        if setup.kind.startswith("native-"):
            jwks = tokens.jwks_of(self.keys[setup.alg])
            return [native_jwt_authn(ISSUER, AUDIENCE, jwks, cache=setup.kind == "native-cached")]
        if setup.kind in HOP_KINDS:
            return [self.hop.ext_authz_filter(setup.alg)]
        if setup.kind == "ours-session":
            return [our_filter(self.options.wasm, self.session_configs[setup.alg])]
        if setup.kind == OPAQUE_KIND:
            return [our_filter(self.options.wasm, self.opaque_plugin_config())]
        if setup.kind == "ours-module-cold":
            config = self.jwt_plugin_config(setup.alg, signatureVerification="module")
            return [our_filter(self.options.wasm, config)]
        return [our_filter(self.options.wasm, self.jwt_plugin_config(setup.alg))]

    def new_envoy(self, stack: Stack, setups: list[Setup] | None = None) -> BenchEnvoy:
        """A started Envoy with a listener for each setup (default: all);
        with hop setups among them, a fresh Apache too, on Envoy's CPU."""
        chosen = self.setups if setups is None else setups
        with_hop = any(s.kind in HOP_KINDS for s in chosen)
        if with_hop:
            self.hop.start_apache(self.options.envoy_cpus, self.hot_tokens)
        listeners = {s.listener: (self.ports[s.listener], self.auth_filters(s)) for s in chosen}
        extra_clusters = self.hop.clusters() if with_hop else []
        clusters = {"idp": self.idp.port}
        envoy = BenchEnvoy(self.options.wasm, listeners, clusters, self.options.envoy_cpus, extra_clusters)
        return stack.own(envoy.start())

    def stop_apache(self) -> None:
        if self.hop is not None:
            self.hop.stop_apache()

    def log_in_once(self) -> None:
        """A real login per session listener (needs a running Envoy); the
        cookie stays valid for the later Envoys, whose secrets are the same."""
        for alg in ALGS:
            say(f"logging in at the IdP through the {alg} session listener")
            cookie = session_cookie_by_login(self.url(Setup("ours-session", alg)))
            self.sessions[alg] = FixedValue.write(self.work / f"session-{alg}.txt", cookie)

    def header_for(self, setup: Setup) -> str:
        return "Cookie" if setup.kind in SESSION_KINDS else "Authorization"

    def fixed_values(self, setup: Setup) -> FixedValue:
        if setup.kind in SESSION_KINDS:
            return self.sessions[setup.alg]
        if setup.kind == OPAQUE_KIND:
            return self.opaque
        # No auth sends a token too, so every setup's requests are as large.
        return self.hot[setup.alg or ALGS[0]]


# ----- runs -----
class BrokenBench(RuntimeError):
    pass


class Runner:
    """Runs setups against one Envoy (and Apache); cold setups take fresh
    tokens from a cursor into their algorithm's pool that starts over with
    each new Envoy. Each cold setup has its own cursor: our filter and the
    hop never see each other's tokens (separate listeners, and Apache
    starts afresh with Envoy), so each can start at the pool's first line."""

    def __init__(self, world: World, envoy: BenchEnvoy):
        self.world = world
        self.envoy = envoy
        self.options = world.options
        self.cold_cursor = {setup: 1 for setup in world.setups if setup.kind in COLD_KINDS}

    def measure(self, setup: Setup) -> tuple[WrkResult, float, float | None]:
        """Warm up, then one measured run: (result, Envoy's CPU share,
        Apache's CPU share for a hop setup)."""
        warmup = None
        if self.options.warmup_seconds:
            warmup = self.checked_run(setup, self.options.warmup_seconds, expected_rps=None)
        apache = self.world.hop.apache if setup.kind in HOP_KINDS else None
        cpu_before = process_cpu_seconds(self.envoy.pid)
        apache_before = apache.cpu_seconds() if apache else 0.0
        # The warm-up's rate sizes the cold pool for the measured run.
        result = self.checked_run(setup, self.options.seconds, expected_rps=warmup.rps if warmup else None)
        envoy_cpu = (process_cpu_seconds(self.envoy.pid) - cpu_before) / result.seconds
        apache_cpu = (apache.cpu_seconds() - apache_before) / result.seconds if apache else None
        return result, envoy_cpu, apache_cpu

    def checked_run(self, setup: Setup, seconds: int, expected_rps: float | None) -> WrkResult:
        values, first_line = self.values_for(setup, seconds, expected_rps)
        result = run_wrk(self.world.url(setup), values, self.world.header_for(setup), first_line, seconds, self.options.load)
        if not result.all_2xx:
            logs = self.envoy.log_tail(30)
            if setup.kind in HOP_KINDS:
                logs += f"\nApache's error log:\n{self.world.hop.apache.log_tail(30)}"
            raise BrokenBench(f"{setup.title}: not all responses 2xx: {result.failure()}\n{logs}")
        if setup.kind in COLD_KINDS:
            # Requests in flight when wrk stopped took values too.
            self.cold_cursor[setup] = first_line + result.requests + self.options.load.connections
        return result

    def values_for(self, setup: Setup, seconds: int, expected_rps: float | None) -> tuple[Path, int]:
        if setup.kind not in COLD_KINDS:
            return self.world.fixed_values(setup).path, 1
        pool, first = self.world.cold[setup.alg], self.cold_cursor[setup]
        if expected_rps is None:
            pool.ensure(first + COLD_WARMUP_TOKENS)
        else:
            pool.ensure(first + math.ceil(expected_rps * seconds * COLD_POOL_MARGIN) + self.options.load.connections)
        return pool.path, first


def check_setups_authenticate(world: World) -> None:
    """A filter that let everything through would look fast: every auth setup
    must refuse a forged token (or a missing session) with 401 and accept the
    bench's credential, before anything is measured. The hop must also refuse
    validly signed tokens of another audience or issuer (its Require claim
    lines), so a misconfigured Apache that lets everyone in makes no rows."""
    for setup in world.setups:
        if setup.kind in UNAUTHENTICATED + NOOP_KINDS:
            continue
        header = world.header_for(setup)
        good = world.fixed_values(setup).path.read_text().strip()
        if setup.kind == "ours-session":
            forged = ""
        elif setup.kind == OPAQUE_KIND:
            forged = bearer("an-opaque-token-the-idp-never-issued")
        else:
            forged = bearer(tokens.flip_signature_bit(world.hot_tokens[setup.alg]))
        cases = [("valid", good, 200), ("forged", forged, 401)]
        if setup.kind in HOP_KINDS:
            key = world.keys[setup.alg]
            for what, claims in (
                ("another audience", tokens.claims(ISSUER, 300, aud="not-" + AUDIENCE)),
                ("another issuer", tokens.claims(ISSUER + ".other", 300, aud=AUDIENCE)),
            ):
                cases.append((what, bearer(tokens.sign({}, claims, key)), 401))
        for what, value, expected in cases:
            status = requests.get(world.url(setup), headers={header: value}, timeout=10).status_code
            if status != expected:
                raise BrokenBench(f"{setup.title}: {header} {what}: {status}, not {expected}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rotated(setups: list[Setup], round_index: int, rounds: int) -> list[Setup]:
    """The setups in a different order each round, so no setup always runs
    right after the same neighbour or at the same point of a round."""
    shift = (round_index * len(setups)) // max(rounds, 1)
    return setups[shift:] + setups[:shift]


def run_rounds(stack: Stack, world: World) -> list[Measured]:
    setups = world.setups
    measured = {s: Measured(s.title, s.kind, s.alg) for s in setups}
    for round_index in range(world.options.rounds):
        say(f"round {round_index + 1} of {world.options.rounds}: a fresh Envoy" + (" and Apache" if world.hop else ""))
        envoy = world.new_envoy(stack)
        if not world.sessions:
            world.log_in_once()
            check_setups_authenticate(world)
        runner = Runner(world, envoy)
        for setup in rotated(setups, round_index, world.options.rounds):
            result, envoy_cpu, apache_cpu = runner.measure(setup)
            measured[setup].runs.append(result)
            measured[setup].envoy_cpu.append(envoy_cpu)
            if apache_cpu is not None:
                measured[setup].hop_cpu.append(apache_cpu)
            say(f"  round {round_index + 1}: {setup.title}: {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.2f} ms")
        envoy.stop()
        world.stop_apache()
    return [measured[s] for s in setups]


# ----- the first request after a key set arrives -----
def first_request_phase(stack: Stack, world: World) -> list[FirstRequests]:
    """first_request.py on the rounds' CPUs: Envoy on its CPU, the client on wrk's."""
    options = world.options
    say(
        f"first-request phase: {options.first_runs} fresh Envoy(s) per case (JWKS fetch, inline jwks), "
        f"the first request per algorithm and {options.first_later + 1} after it"
    )
    phase = FirstRequestPhase(
        stack,
        options.wasm,
        ISSUER,
        AUDIENCE,
        envoy_cpus=options.envoy_cpus,
        client_cpus=options.load.cpus,
        runs=options.first_runs,
        later=options.first_later,
    )
    found = phase.run(say)
    for measured in found:
        say(measured.line())
    return found


# ----- memory -----
def memory_phase(stack: Stack, world: World, cold_rps: float) -> MemoryReport:
    """A fresh Envoy gets `memory_tokens` distinct valid ES256 tokens; then the
    filter's VM memory gauge is read (absent until the filter reports it)."""
    target = world.options.memory_tokens
    connections = world.options.load.connections
    pool = world.cold["ES256"]
    # Headroom: wrk runs for whole seconds and usually overshoots the target.
    pool.ensure(math.ceil(target * MEMORY_POOL_HEADROOM) + connections)
    say(f"memory phase: {target:,} distinct ES256 tokens to a fresh Envoy")
    # Only this listener: the filter's cache gauges are per VM, and every
    # other plugin configuration in the VM would report its own (empty) caches
    # under the same names.
    setup = Setup("ours-cold", "ES256")
    envoy = world.new_envoy(stack, [setup])
    url = world.url(setup)
    answered, next_line = 0, 1
    deadline = time.monotonic() + MEMORY_PHASE_MAX_SECONDS
    while answered < target and time.monotonic() < deadline:
        seconds = min(MEMORY_PHASE_MAX_SECONDS, max(1, math.ceil((target - answered) / cold_rps * 1.15)))
        result = run_wrk(url, pool.path, "Authorization", next_line, seconds, world.options.load)
        if not result.all_2xx:
            raise BrokenBench(f"memory phase: not all responses 2xx: {result.failure()}\n{envoy.log_tail(30)}")
        answered += result.requests - result.repeated
        # Requests in flight when wrk stopped took tokens too: skip them.
        next_line += result.requests + connections
        if result.repeated:
            break  # every token of the pool has been sent
    # The filter sets its gauges on its timer tick (every second when idle).
    time.sleep(GAUGE_SETTLE_SECONDS)
    report = MemoryReport(
        distinct_tokens=answered,
        vm_memory_bytes=envoy.stats_matching(VM_MEMORY_STAT),
        cache_gauges=envoy.stats_matching(CACHE_GAUGES),
        envoy_allocated_bytes=envoy.stats_matching(r"^server\.memory_allocated$").get("server.memory_allocated"),
    )
    envoy.stop()
    return report


# ----- an opaque token's first request -----
def timed_request(url: str, token: str) -> float:
    """Seconds from connect to the last byte of one request on a new connection."""
    started = time.perf_counter()
    reply = requests.get(url, headers={"Authorization": bearer(token), "Connection": "close"}, timeout=10)
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise BrokenBench(f"opaque token: {reply.status_code} {reply.text[:200]!r}")
    return elapsed


def opaque_phase(stack: Stack, world: World) -> list[str]:
    """Fresh opaque tokens, one at a time: the first request of each costs one
    introspection call to the loopback IdP, the second is answered from the cache."""
    setup = Setup(OPAQUE_KIND, None)
    count = world.options.first_later + 2
    say(f"opaque-token phase: {count} fresh tokens, each sent twice")
    fresh = [world.opaque_token() for _ in range(count)]
    envoy = world.new_envoy(stack, [setup])
    try:
        url = world.url(setup) + "/"
        timed_request(url, world.opaque_token())  # the VM's first request, not measured
        calls_before = world.idp.introspection_count()
        first, again = [], []
        for token in fresh:
            first.append(timed_request(url, token))
            again.append(timed_request(url, token))
        calls = world.idp.introspection_count() - calls_before
    finally:
        envoy.stop()
    return [
        "",
        "## Opaque tokens (introspection)",
        "",
        f"- opaque token, first request (one introspection call to the loopback IdP): "
        f"{statistics.median(first) * 1000:.2f} ms median; the same token again (from the "
        f"introspection cache): {statistics.median(again) * 1000:.2f} ms; {count} tokens made "
        f"{calls} introspection calls (each on a new connection, timed by the client from connect "
        "to the last byte)",
    ]


# ----- the footprint per Envoy -----
def footprint_phase(world: World) -> list[str]:
    """footprint.py with the bench's module, keys, IdP and ES256 configurations."""
    options = world.options
    bearer = world.jwt_plugin_config("ES256")
    # The browser-login configuration, also taking the bench's bearer tokens.
    login = world.session_configs["ES256"]
    login = {**login, "jwtRules": [*login["jwtRules"], *bearer["jwtRules"]]}
    setups = footprint.FootprintSetups(
        wasm=options.wasm,
        noop_wasm=world.noop_wasm,
        bearer_config=bearer,
        login_config=login,
        clusters={"idp": world.idp.port},
        token=world.hot_tokens["ES256"],
    )
    say(f"footprint phase: {options.footprint_runs} fresh Envoy(s) per setup at {options.footprint_concurrency} workers")
    found = footprint.measure(setups, options.footprint_concurrency, options.footprint_runs, options.envoy_cpus, say)
    return footprint.markdown(found, options.footprint_runs)


def say(message: str) -> None:
    print(message, flush=True)


# ----- context -----
def context_lines(options: Options, load_before: str) -> list[str]:
    lines = _run_lines(options, load_before)
    if options.hop:
        lines += hop_lines(options)
    return lines


def hop_lines(options: Options) -> list[str]:
    """How the auth hop ran, and what mod_auth_openidc caches."""
    cpu = f"pinned to CPU {options.envoy_cpus}, Envoy's" if options.envoy_cpus else "not pinned"
    return [
        f"the hop: Envoy's `ext_authz` HTTP filter (HTTP service, {auth_hop.CHECK_TIMEOUT} timeout, "
        f"`failure_mode_allow: false`) → {auth_hop.versions()} as an OAuth 2.0 resource server "
        "(`AuthType oauth20`, `OIDCOAuthVerifyJwksUri` over https on loopback with a test CA in "
        "`OIDCCABundlePath`, `<RequireAll>` of `Require claim iss:…` and `Require claim aud:…`), "
        "one virtual host per algorithm; Envoy's cluster to it: HTTP/1.1 keep-alive, "
        f"{auth_hop.ENVOY_IDLE_SECONDS} s idle timeout",
        f"Apache: a fresh one per round, `mpm_event`, 1 process × {auth_hop.APACHE_THREADS} threads, "
        f"KeepAlive on (unlimited requests, {auth_hop.APACHE_KEEPALIVE_SECONDS} s), LogLevel warn, no access log; "
        f"{cpu} (the hop costs the proxy host's CPU: Envoy and Apache share that core, wrk has the other)",
        "what mod_auth_openidc caches (its defaults, as users run it): the JWKS, in its `shm` cache "
        "(`OIDCCacheType` default) for `OIDCJWKSRefreshInterval` (3600 s); no validated JWT: its token cache "
        "(`OIDCOAuthTokenIntrospectionInterval`) holds remote introspection results only, so hot and cold "
        "both parse the JWT and verify its signature on every request",
    ]


def _run_lines(options: Options, load_before: str) -> list[str]:
    envoy_version = subprocess.run([str(ENVOY_BIN), "--version"], capture_output=True, text=True).stdout.strip()
    # `wrk -v` prints "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." (and exits 1).
    wrk_version = " ".join(subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[:2])
    return [
        f"{options.rounds} round(s), {options.warmup_seconds} s warm-up + {options.seconds} s measured per setup; "
        f"setups in a rotated order per round, a fresh Envoy{' and Apache' if options.hop else ''} per round; "
        "medians over rounds, spread = (max − min) / median of the rounds' req/s; "
        "ratios = median of per-round ratios",
        f"{wrk_version}; -t{options.load.threads} -c{options.load.connections}, "
        f"pinned to CPU {options.load.cpus or '(not pinned)'}",
        f"Envoy: `--concurrency 1`, pinned to CPU {options.envoy_cpus or '(not pinned)'}; "
        f"version {envoy_version.split('version: ')[-1]}",
        "every listener answers `direct_response` 200; tokens ride in `Authorization: Bearer` "
        "(also for no auth, so requests are as large), sessions in `Cookie`",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average before the run: {load_before}",
    ]


def module_label(wasm: Path) -> str:
    """The module's path as the reader knows it: relative to the repository if inside."""
    resolved = wasm.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(resolved)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ----- main -----
def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every process
    the bench started (they would also die with it, by PR_SET_PDEATHSIG, but
    without removing their files)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str]) -> int:
    options = parse_options(argv)
    stop_on_sigterm()
    if not options.wasm.is_file():
        print(f"{options.wasm} is missing: run `make build`", file=sys.stderr)
        return 2
    if options.hop and auth_hop.missing():
        print(f"the auth hop cannot run: {auth_hop.missing()}", file=sys.stderr)
        return 2
    load_before = load_average()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    stack = Stack(name="bench")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-values-", dir=WORK_DIR) as work:
            world = World(stack, options, Path(work))
            setups = run_rounds(stack, world)
            first_requests = first_request_phase(stack, world)
            cold_es256 = next(s for s in setups if s.kind == "ours-cold" and s.alg == "ES256")
            memory = memory_phase(stack, world, cold_es256.rps())
            footprint_lines = footprint_phase(world)
            opaque_lines = opaque_phase(stack, world)
    except (BrokenBench, HopError, FirstRequestError, footprint.FootprintError) as broken:
        print(f"BROKEN BENCH: {broken}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process the bench started is stopped", file=sys.stderr)
        return 130
    finally:
        stack.close()
    context = context_lines(options, load_before)
    summary = Summary(
        setups, module_label(options.wasm), options.wasm.stat().st_size, memory, context, first_requests,
        footprint_lines, opaque_lines,
    )
    if broken_runs(summary):
        print("BROKEN BENCH:\n" + "\n".join(broken_runs(summary)), file=sys.stderr)
        return 1
    text = markdown(summary)
    options.output.write_text(text)
    print("\n" + text)
    print(f"written to {options.output}")
    # The same numbers as a picture, named after the table (results.md -> results.svg).
    chart_path = options.output.with_suffix(".svg")
    chart_path.write_text(chart.svg(summary, date=time.strftime("%Y-%m-%d", time.gmtime())), encoding="utf-8")
    print(f"written to {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
