"""A bounded soak at saturation: Envoy with the filter under wrk for a while,
with valid credentials only, then with hostile tokens mixed in.

SOAK_SECONDS (default 60) is the whole soak, split evenly between the two
phases; a longer soak: `make test-e2e SOAK_SECONDS=600 PYTEST_ARGS=-k soak`.

Envoy answers 200 itself after the filter (a direct response), so the load is
on Envoy and the filter, not on a Python upstream. Asserted:
- every valid request (ES256 and RS256 bearer tokens, a real session cookie)
  gets 200, every hostile one 401;
- no VM was created, failed or reloaded meanwhile;
- memory is flat: the filter's VM memory gauge and Envoy's heap, sampled
  through the run, grow at most a little from the warmed-up start.
"""

import os
import threading
import time
from dataclasses import dataclass, field

import pytest

from harness import stats
from harness.envoy import Listener
from harness.idp import default_client
from harness.load import WrkRun
from harness.login import login
from harness.oidc_app import CLIENT_ID, CLIENT_SECRET, html_session, oidc_config
from harness.plugin import jwks_cluster_name, rule
from harness.ports import free_port
from harness.tokens import cached_key, claims, flip_signature_bit, generate_key, sign, unsigned_token

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
PHASE_SECONDS = max(5.0, SOAK_SECONDS / 2)
WARMUP_SECONDS = 3.0
SAMPLE_EVERY = 5.0
ISSUER = "https://issuer-soak.test"
AUDIENCE = "soak-api"
# Growth allowed from the warmed-up start to the end. The caches are bounded,
# so memory should level off once they are warm.
VM_MEMORY_SLACK = 2 << 20  # 32 pages of 64 KiB over all VMs
ENVOY_HEAP_SLACK = 16 << 20  # Envoy's own buffers and stats vary with load

pytestmark = pytest.mark.timeout(int(2 * PHASE_SECONDS + WARMUP_SECONDS + 120))


@dataclass
class Env:
    envoy: object
    url: str
    session_cookie: str
    keys: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def env(module_stack):
    """IdP, JWKS server with two ES256 and two RS256 keys, Envoy with one
    listener (token rules and browser login), and a session from a real login."""
    keys = {name: cached_key(alg, f"soak-{name}") for name, alg in
            (("es1", "ES256"), ("es2", "ES256"), ("rs1", "RS256"), ("rs2", "RS256"))}  # fmt: skip
    jwks = module_stack.jwks_server({"keys": [key.jwk() for key in keys.values()]})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = default_client(f"{url}/oauth2/callback", f"{url}/signed-out", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    # Tokens outlive the soak, so no session refresh happens in the middle.
    lifetime = int(2 * PHASE_SECONDS + 600)
    idp = module_stack.idp(clients=[client], ttl={"IdToken": lifetime, "AccessToken": lifetime})
    config = oidc_config(idp)
    config["jwtRules"].append(rule(ISSUER, jwks, audiences=[AUDIENCE]))
    config["clusters"][jwks.authority] = jwks_cluster_name(jwks)
    listener = Listener("soak", config, port=port, direct_response=True)
    envoy = module_stack.envoy(listener, servers=(jwks,), clusters={"idp": idp.port}, concurrency=2)
    session = html_session()
    login(session, f"{url}/", "alice")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.name.startswith("oidc_session"))
    assert cookie, "no session cookie after login"
    assert upstream_ok(session.get(f"{url}/", allow_redirects=False))
    return Env(envoy=envoy, url=url, session_cookie=cookie, keys=keys)


def upstream_ok(response) -> bool:
    assert response.status_code == 200 and response.text == "ok", f"{response.status_code}: {response.text[:200]}"
    return True


# ----- request classes -----
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def valid_token(key, subject: str) -> str:
    return sign({}, claims(ISSUER, lifetime=int(2 * PHASE_SECONDS + 600), aud=AUDIENCE, sub=subject), key)


def es256_variants(env: Env) -> list[dict]:
    return [bearer(valid_token(env.keys[k], f"user-{k}-{n}")) for k in ("es1", "es2") for n in range(3)]


def rs256_variants(env: Env) -> list[dict]:
    return [bearer(valid_token(env.keys[k], f"user-{k}-{n}")) for k in ("rs1", "rs2") for n in range(3)]


def session_variants(env: Env) -> list[dict]:
    return [{"Cookie": env.session_cookie, "Accept": "text/html"}]


def hostile_variants(env: Env) -> list[dict]:
    """Expired, bad signature, garbage, alg none, wrong issuer, a forged
    signature under a real kid, an unknown kid."""
    key = env.keys["es1"]
    forger = generate_key("ES256")
    return [
        bearer(sign({}, claims(ISSUER, aud=AUDIENCE, iat=1_000_000, exp=1_000_300), key)),
        bearer(flip_signature_bit(valid_token(key, "mallory"))),
        bearer("garbage.garbage.garbage"),
        bearer(unsigned_token(claims(ISSUER, aud=AUDIENCE))),
        bearer(sign({}, claims("https://evil.test", aud=AUDIENCE), key)),
        bearer(valid_token(forger.with_kid(key.kid), "forger")),
        bearer(valid_token(forger.with_kid("no-such-kid"), "forger")),
    ]


# ----- sampling -----
@dataclass
class Sample:
    at: float
    vm_memory: int
    envoy_heap: int


class Sampler:
    """Samples memory every SAMPLE_EVERY seconds in a thread while load runs."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.samples: list[Sample] = []
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def take(self) -> Sample:
        sample = Sample(
            at=round(time.monotonic() - self._start, 1),
            vm_memory=stats.custom(self.admin_url).get("vm_memory_bytes", 0),
            envoy_heap=stats.memory_allocated(self.admin_url),
        )
        self.samples.append(sample)
        return sample

    def _run(self):
        while not self._stop.wait(SAMPLE_EVERY):
            self.take()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def run_concurrently(runs: list[WrkRun]) -> dict:
    for run in runs:
        run.start()
    try:
        return {run.name: run.result() for run in runs}
    finally:
        for run in runs:
            run.stop()


def print_results(title: str, results: dict) -> None:
    print(f"\n{title}")
    for result in results.values():
        print(
            f"  {result.name:10} {result.requests_per_second:9.0f} rps  p99 {result.p99_latency_ms:7.1f} ms  "
            f"statuses {dict(sorted(result.statuses.items()))}  socket errors {result.socket_errors}"
        )
    print(f"  total      {sum(r.requests_per_second for r in results.values()):9.0f} rps")


def wait_settled(seconds: float = 1.5) -> None:
    """The filter copies counts into Envoy once a second: let it catch up."""
    time.sleep(seconds)


# ----- the soak -----
@pytest.fixture(scope="module")
def soak(env):
    """Warm-up, then the two phases; returns what the tests check."""
    admin = env.envoy.admin_url
    warmup = [
        WrkRun("warm-es", env.url, es256_variants(env), WARMUP_SECONDS, connections=2),
        WrkRun("warm-rs", env.url, rs256_variants(env), WARMUP_SECONDS, connections=2),
        WrkRun("warm-sess", env.url, session_variants(env), WARMUP_SECONDS, connections=2),
    ]
    run_concurrently(warmup)
    wait_settled()
    vm_before = stats.wasm_vm_stats(admin)
    metrics_before = stats.custom(admin)
    with Sampler(admin) as sampler:
        start = sampler.take()
        valid = run_concurrently(
            [
                WrkRun("es256", env.url, es256_variants(env), PHASE_SECONDS),
                WrkRun("rs256", env.url, rs256_variants(env), PHASE_SECONDS),
                WrkRun("session", env.url, session_variants(env), PHASE_SECONDS),
            ]
        )
        wait_settled()
        metrics_middle = stats.custom(admin)
        mixed = run_concurrently(
            [
                WrkRun("es256", env.url, es256_variants(env), PHASE_SECONDS, connections=2),
                WrkRun("rs256", env.url, rs256_variants(env), PHASE_SECONDS, connections=2),
                WrkRun("session", env.url, session_variants(env), PHASE_SECONDS, connections=2),
                WrkRun("hostile", env.url, hostile_variants(env), PHASE_SECONDS, connections=6),
            ]
        )
        wait_settled()
        end = sampler.take()
    result = {
        "valid": valid,
        "mixed": mixed,
        "samples": sampler.samples,
        "start": start,
        "end": end,
        "vm_before": vm_before,
        "vm_after": stats.wasm_vm_stats(admin),
        "metrics_before": metrics_before,
        "metrics_middle": metrics_middle,
        "metrics_after": stats.custom(admin),
    }
    print_summary(result)
    return result


def print_summary(result: dict) -> None:
    print(f"\nsoak: {PHASE_SECONDS:g} s per phase (SOAK_SECONDS={SOAK_SECONDS:g})")
    print_results("phase 1, valid traffic only:", result["valid"])
    print_results("phase 2, valid and hostile traffic:", result["mixed"])
    print("memory samples (s, filter VM memory bytes over all VMs, Envoy heap allocated bytes):")
    for sample in result["samples"]:
        print(f"  {sample.at:6.1f}  {sample.vm_memory:>12,}  {sample.envoy_heap:>14,}")
    print(f"wasm stats before {result['vm_before']}\nwasm stats after  {result['vm_after']}")


def deltas(after: dict, before: dict, prefix: str) -> dict[str, int]:
    return {
        name: after[name] - before.get(name, 0)
        for name in after
        if name.startswith(prefix) and after[name] != before.get(name, 0)
    }


def test_valid_traffic_is_always_allowed(soak):
    for phase in ("valid", "mixed"):
        for name in ("es256", "rs256", "session"):
            result = soak[phase][name]
            assert result.total > 0, f"{phase}/{name}: no responses"
            assert result.count_other_than(200) == 0, f"{phase}/{name}: {result.statuses}"
            assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}, result.socket_errors


def test_hostile_traffic_is_always_denied_with_401(soak):
    hostile = soak["mixed"]["hostile"]
    assert hostile.total > 0
    assert hostile.count_other_than(401) == 0, hostile.statuses
    assert hostile.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}, hostile.socket_errors


def test_the_filter_counted_what_wrk_saw(soak):
    """wrk's own counts and the filter's metrics agree (wrk stops with requests
    still in flight, which Envoy finishes but wrk no longer counts)."""
    phase1 = deltas(soak["metrics_middle"], soak["metrics_before"], "requests_")
    phase2 = deltas(soak["metrics_after"], soak["metrics_middle"], "requests_")
    print(f"filter counts, phase 1: {phase1}\nfilter counts, phase 2: {phase2}")
    valid = soak["valid"]
    assert phase1.get("requests_allowed.token", 0) >= valid["es256"].total + valid["rs256"].total
    assert phase1.get("requests_allowed.session", 0) >= valid["session"].total
    assert not [name for name in phase1 if name.startswith("requests_denied.")], phase1
    denied = sum(count for name, count in phase2.items() if name.startswith("requests_denied."))
    assert denied >= soak["mixed"]["hostile"].total
    # garbage and `alg: none` get Envoy's malformed-token texts, counted as jwt_malformed
    expected_reasons = {"jwt_expired", "jwt_invalid", "jwt_malformed", "jwt_unknown_issuer", "jwt_unknown_key"}
    seen_reasons = {name.split(".", 1)[1] for name in phase2 if name.startswith("requests_denied.")}
    assert seen_reasons == expected_reasons, seen_reasons


def test_no_vm_failed_or_was_recreated(soak, env):
    assert soak["vm_after"] == soak["vm_before"]
    assert "Uncaught" not in env.envoy.log_text(), "a VM trapped"


def test_memory_is_flat(soak):
    start, end = soak["start"], soak["end"]
    assert end.vm_memory - start.vm_memory <= VM_MEMORY_SLACK, (start, end)
    assert end.envoy_heap - start.envoy_heap <= ENVOY_HEAP_SLACK, (start, end)
