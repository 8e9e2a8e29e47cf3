"""The latency of the first request after a key set arrives.

The filter builds its signature-verification tables (precomputed EC and
Ed25519 point tables) when a key set arrives: at configuration load for an
inline `jwks`, right after the fetch (or another VM's fetch, on sync) for a
`jwksUri` (RSA keys need none: RS256 is the control). A request that needs
the keys then only looks them up. This phase measures that first request, and
the requests after it for comparison.

Per run, one fresh Envoy (`--concurrency 1`, on the bench's Envoy CPU) with a
listener per algorithm, each with our filter in a VM of its own (its own
`vm_id`): every algorithm's first request is the first request its VM ever
sees, as in an Envoy with that one listener, while one Envoy start serves all
algorithms (an Envoy start and the wait for its fetch take about 2–3 s, and the
phase should stay under ~20 s). A listener without any filter takes a few
warm-up requests first, so Envoy's own first-connection costs (and the
client's) land on none of the measured requests; the algorithms' order rotates
from run to run.

- "after a JWKS fetch": each rule has a `jwksUri` served by a loopback JWKS
  server (harness/jwks_server.py) through an Envoy cluster named in the
  plugin's `clusters` map. The phase waits until the filter reports the
  fetches (`oidc_filter.jwks_fetch.succeeded`, copied to Envoy on the VM's
  timer, about once a second) and each server has answered, then
  SYNC_SETTLE_SECONDS more: the VM that fetched is not necessarily the worker's
  (the main thread's VM may win the lease), and the worker's VM loads the
  stored key set, building its tables, on its next timer tick.
- "after a configuration load": each rule has an inline `jwks`; the phase waits
  for the listeners to accept, then as long as the fetch case waits after its
  fetch, so both Envoys are as idle before their first request.

Then per algorithm, sequentially, each on a fresh connection (so every timed
request pays the same TCP connection setup) and each with a valid token never
sent before: the first request, a second, and `later` more. The client is
timed with time.perf_counter from connect to the last byte of the response,
pinned to the CPU wrk uses in the rounds. Every answer must be 200, and the
JWKS servers must see no further fetch while the requests are sent; a forged
token must then be refused with 401.
"""

import http.client
import json
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench_envoy import BenchEnvoy, distinct_free_ports, our_filter
from credentials import bearer, bench_token
from harness import tokens
from harness.jwks_server import JwksServer
from harness.plugin import jwks_cluster_name, plugin_config, rule
from harness.stack import Stack
from report import FirstRequests

FETCH, INLINE = "fetch", "inline"
CASES = (FETCH, INLINE)
# tokens.sign signs EdDSA too, so the filter's Ed25519 tables are measured as well.
ALGS = ("ES256", "RS256", "EdDSA")
FETCH_STAT = r"oidc_filter\.jwks_fetch\.(succeeded|failed)$"
FETCH_TIMEOUT_SECONDS = 10.0
# The filter's idle timer ticks every second; a worker VM loads a set another
# VM stored on its next tick. A little more than one tick after the fetch is
# reported, every VM has its keys.
SYNC_SETTLE_SECONDS = 1.25
WARM_REQUESTS = 3
REQUEST_TIMEOUT_SECONDS = 10.0
# Serials (the tokens' jti) of this phase: apart from the rounds' pools.
FIRST_SERIAL = 50_000_000
WARM_LISTENER = "first-warm"


class FirstRequestError(RuntimeError):
    pass


@dataclass
class Run:
    """One Envoy of one case: per algorithm, the latencies in ms of the first
    request, the second, and the later ones."""

    first: dict[str, float] = field(default_factory=dict)
    second: dict[str, float] = field(default_factory=dict)
    later: dict[str, list[float]] = field(default_factory=dict)


class FirstRequestPhase:
    def __init__(
        self,
        stack: Stack,
        wasm: Path,
        issuer: str,
        audience: str,
        envoy_cpus: str | None,
        client_cpus: str | None,
        runs: int,
        later: int,
    ):
        self.stack = stack
        self.wasm = wasm
        self.issuer = issuer
        self.audience = audience
        self.envoy_cpus = envoy_cpus
        self.client_cpus = client_cpus
        self.runs = runs
        self.later = later
        self.keys = {alg: tokens.generate_key(alg, kid=f"first-{alg.lower()}") for alg in ALGS}
        self.servers: dict[str, JwksServer] = {}
        self.serial = FIRST_SERIAL

    # ----- the phase -----
    def run(self, say) -> list[FirstRequests]:
        self.servers = {alg: self.stack.jwks_server(tokens.jwks_of(self.keys[alg])) for alg in ALGS}
        results = {(case, alg): FirstRequests(case, alg, later_count=self.later) for case in CASES for alg in ALGS}
        with pinned(self.client_cpus):
            for index in range(self.runs):
                order = ALGS[index % len(ALGS) :] + ALGS[: index % len(ALGS)]
                for case in CASES:
                    run = self.one_envoy(case, order)
                    for alg in ALGS:
                        measured = results[(case, alg)]
                        measured.first_ms.append(run.first[alg])
                        measured.second_ms.append(run.second[alg])
                        measured.later_ms.append(statistics.median(run.later[alg]))
                    shown = ", ".join(
                        f"{alg} {run.first[alg]:.2f} / {run.second[alg]:.2f} / {statistics.median(run.later[alg]):.2f}"
                        for alg in ALGS
                    )
                    say(f"  run {index + 1} of {self.runs}, {case}: first / second / later median: {shown} ms")
        return [results[(case, alg)] for case in CASES for alg in ALGS]

    def one_envoy(self, case: str, order: tuple[str, ...]) -> Run:
        values = {alg: [bearer(self.new_token(alg)) for _ in range(2 + self.later)] for alg in ALGS}
        ports = distinct_free_ports([WARM_LISTENER] + [listener_name(alg) for alg in ALGS])
        listeners = {WARM_LISTENER: (ports[WARM_LISTENER], [])}
        for alg in ALGS:
            listeners[listener_name(alg)] = (ports[listener_name(alg)], [self.filter_for(case, alg)])
        clusters = {jwks_cluster_name(s): s.port for s in self.servers.values()} if case == FETCH else {}
        fetches_before = {alg: server.count() for alg, server in self.servers.items()}
        envoy = self.stack.own(BenchEnvoy(self.wasm, listeners, clusters, self.envoy_cpus).start())
        try:
            if case == FETCH:
                self.wait_for_fetches(envoy, fetches_before)
            time.sleep(SYNC_SETTLE_SECONDS)
            fetched = {alg: server.count() for alg, server in self.servers.items()}
            for _ in range(WARM_REQUESTS):
                timed_get(ports[WARM_LISTENER], bearer(self.new_token(ALGS[0])), envoy)
            run = Run()
            for alg in order:
                port, sent = ports[listener_name(alg)], values[alg]
                run.first[alg] = timed_get(port, sent[0], envoy)
                run.second[alg] = timed_get(port, sent[1], envoy)
                run.later[alg] = [timed_get(port, value, envoy) for value in sent[2:]]
            refetched = [alg for alg, server in self.servers.items() if server.count() != fetched[alg]]
            if refetched:
                raise FirstRequestError(f"{case}: the requests made the filter fetch again: {refetched}")
            self.check_refusals(envoy, ports)
        finally:
            envoy.stop()
        return run

    # ----- pieces -----
    def filter_for(self, case: str, alg: str) -> dict:
        """Our filter in a VM of its own, its one rule's keys by fetch or inline."""
        if case == FETCH:
            server = self.servers[alg]
            config = plugin_config(rule(self.issuer, server, audiences=[self.audience]), servers=(server,))
        else:
            jwks = json.dumps(tokens.jwks_of(self.keys[alg]))
            config = {"jwtRules": [{"issuer": self.issuer, "audiences": [self.audience], "jwks": jwks}]}
        return our_filter(self.wasm, config, vm_id=f"oidc_filter_first_{alg.lower()}")

    def new_token(self, alg: str) -> str:
        self.serial += 1
        return bench_token(self.keys[alg], self.issuer, self.audience, self.serial)

    def wait_for_fetches(self, envoy: BenchEnvoy, before: dict[str, int]) -> None:
        """Until every VM pair has reported a successful fetch (Envoy sums the
        VMs' same-named counters) and every server has been asked."""
        deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
        while True:
            stats = envoy.stats_matching(FETCH_STAT)
            succeeded = sum(v for name, v in stats.items() if name.endswith(".succeeded"))
            failed = sum(v for name, v in stats.items() if name.endswith(".failed"))
            asked = all(server.count() > before[alg] for alg, server in self.servers.items())
            if succeeded >= len(ALGS) and asked:
                return
            if failed or time.monotonic() > deadline:
                raise FirstRequestError(
                    f"JWKS fetches: {succeeded} succeeded, {failed} failed, servers asked: "
                    f"{ {alg: s.count() - before[alg] for alg, s in self.servers.items()} }\n{envoy.log_tail(30)}"
                )
            time.sleep(0.05)

    def check_refusals(self, envoy: BenchEnvoy, ports: dict[str, int]) -> None:
        """The filter really checks: a forged token (one flipped signature bit) is refused."""
        for alg in ALGS:
            forged = bearer(tokens.flip_signature_bit(self.new_token(alg)))
            status = get_status(ports[listener_name(alg)], forged)
            if status != 401:
                raise FirstRequestError(f"{alg}: a forged token got {status}, not 401\n{envoy.log_tail(30)}")


def listener_name(alg: str) -> str:
    return f"first-{alg.lower()}"


def get_status(port: int, authorization: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/", headers={"Authorization": authorization})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def timed_get(port: int, authorization: str, envoy: BenchEnvoy) -> float:
    """One request on a new connection, in ms from connect to the response's
    last byte; anything but 200 is an error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        start = time.perf_counter()
        connection.connect()
        connection.request("GET", "/", headers={"Authorization": authorization})
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if response.status != 200:
        raise FirstRequestError(f"a valid token got {response.status}, not 200\n{envoy.log_tail(30)}")
    return elapsed * 1000


@contextmanager
def pinned(cpus: str | None):
    """This thread (the client) on `cpus` ("1", "0,1") for the block; no pin with None."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
