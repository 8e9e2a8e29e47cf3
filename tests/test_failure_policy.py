"""What Envoy 1.40 does after the filter's VM traps, under each `failure_policy`.

The plugin's test-only `testOnlyCrashHeader` makes a request trap the VM the way
a real bug would. Envoy runs one VM per worker, so these Envoys run one worker
(--concurrency 1): the crash then takes down the VM that serves every later
request. (With two workers, only the crashed worker's VM is affected: about
half of the later requests got the 503, the others were served normally.)

Observed with Envoy 1.40.0 (V8):
- The crashing request itself gets 503 with an empty body under every policy.
- FAIL_CLOSED (the default): every later request gets the same 503, empty
  body, until Envoy restarts; nothing reaches the upstream.
- FAIL_OPEN: every later request skips the filter: the upstream is reached
  without authentication, even with no token at all.
- FAIL_RELOAD: the reload is lazy, on the next request, and backs off from the
  VM's last load (not from the crash): 1 s base interval, jittered up to 1.5 s.
  A VM that ran longer than that is replaced by the very next request, which is
  authenticated normally (wasm.oidc_filter.vm_reload_success + 1, no 503 besides
  the crashing request). A VM that crashes within the backoff of its own load
  (a crash loop) leaves requests on the fail-closed 503 until the backoff has
  passed, each counted in wasm.oidc_filter.vm_reload_backoff.
"""

import time

import pytest

from harness import stats
from harness.client import get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign

ISSUER = "https://issuer-failure-policy.test"
CRASH_HEADER = "x-crash-vm"
# FAIL_RELOAD's backoff with the default base interval: Envoy draws it at random
# in [1 s, 1.5 s) (JitteredLowerBoundBackOffStrategy).
RELOAD_BACKOFF_MIN, RELOAD_BACKOFF_MAX = 1.0, 1.5
RELOAD_WAIT = 10.0  # generous on 2 busy cores
# The stats Envoy keeps per plugin, named after the plugin config's `name`.
RELOAD_STATS = ("vm_reload", "vm_reload_backoff", "vm_reload_failure", "vm_reload_success")


@pytest.fixture(scope="module")
def key():
    return cached_key("ES256", "failure-policy")


def start_envoy(stack, key, policy: str | None):
    """One worker, one listener, the crash switch on; policy None leaves
    failure_policy unset (Envoy's default)."""
    server = stack.jwks_server({"keys": [key.jwk()]})
    config = plugin_config(rule(ISSUER, server), servers=(server,), testOnlyCrashHeader=CRASH_HEADER)
    listener = Listener("main", config, failure_policy=policy)
    return stack.envoy(listener, servers=(server,), concurrency=1)


def valid_token(key):
    return sign({}, claims(ISSUER), key)


def crash(envoy, key, echo_server):
    """Authenticated requests work, then the crash request; returns its response."""
    upstream_view(get(envoy.url(), "/before", token=valid_token(key)))
    before = len(echo_server.seen_paths)
    response = get(envoy.url(), "/crash", token=valid_token(key), headers={CRASH_HEADER: "1"})
    # Envoy logs the trap at error level: the only trace of it besides the 503s.
    trap = "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"
    assert trap in wait_for_log(envoy, trap)
    assert len(echo_server.seen_paths) == before, "the crashing request never reaches the upstream"
    return response


def wait_for_log(envoy, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in envoy.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return envoy.log_text()


def assert_fail_closed_reply(response):
    """Envoy's own reply for a failed VM: 503, empty body."""
    assert response.status_code == 503, f"{response.status_code}: {response.text!r}"
    assert response.text == ""
    assert response.headers.get("content-length") == "0"


def reload_stats(envoy) -> dict[str, int]:
    current = stats.stats(envoy.admin_url, "^wasm\\.oidc_filter\\.")
    return {name: current.get(f"wasm.oidc_filter.{name}", 0) for name in RELOAD_STATS}


def print_wasm_stats(label, envoy):
    print(f"{label}: {stats.wasm_vm_stats(envoy.admin_url)}")


@pytest.mark.parametrize("policy", ["FAIL_CLOSED", None])
def test_fail_closed_answers_503_until_restart(stack, key, echo_server, policy):
    envoy = start_envoy(stack, key, policy)
    assert_fail_closed_reply(crash(envoy, key, echo_server))
    reached = len(echo_server.seen_paths)
    # Well past FAIL_RELOAD's backoff: a closed VM stays closed.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert_fail_closed_reply(get(envoy.url(), "/after", token=valid_token(key)))
        assert_fail_closed_reply(get(envoy.url(), "/after"))
        time.sleep(0.25)
    assert len(echo_server.seen_paths) == reached, "nothing reaches the upstream"
    # Envoy 1.40 has no stat for a failed VM; the listener's 5xx count shows it.
    assert stats.stats(envoy.admin_url)["http.main.downstream_rq_5xx"] >= 21
    print_wasm_stats("after the crash", envoy)
    assert reload_stats(envoy) == dict.fromkeys(RELOAD_STATS, 0), "no reload under FAIL_CLOSED"


def test_fail_open_lets_everything_through_unauthenticated(stack, key, echo_server):
    envoy = start_envoy(stack, key, "FAIL_OPEN")
    assert_fail_closed_reply(crash(envoy, key, echo_server))
    # No token, a garbage token: straight to the upstream. This is why the
    # docs/deploying.md says never to use FAIL_OPEN for an authentication filter.
    seen = upstream_view(get(envoy.url(), "/secret"))
    assert seen["path"] == "/secret"
    assert upstream_view(get(envoy.url(), "/secret", token="garbage"))["headers"]["authorization"] == "Bearer garbage"
    time.sleep(1.5)
    upstream_view(get(envoy.url(), "/still-open"))
    print_wasm_stats("after the crash", envoy)
    assert reload_stats(envoy) == dict.fromkeys(RELOAD_STATS, 0)


def test_fail_reload_recreates_the_vm_at_once_after_a_first_crash(stack, key, echo_server):
    envoy = start_envoy(stack, key, "FAIL_RELOAD")
    # The backoff counts from the VM's last load, not from the crash: a VM that
    # has run for longer than the backoff is replaced by the very next request.
    time.sleep(RELOAD_BACKOFF_MAX + 0.5)
    before = reload_stats(envoy)
    assert_fail_closed_reply(crash(envoy, key, echo_server))
    upstream_view(get(envoy.url(), "/after", token=valid_token(key)))
    missing = get(envoy.url(), "/after")
    assert (missing.status_code, missing.text) == (401, "Jwt is missing"), "the new VM authenticates"
    after = reload_stats(envoy)
    print(f"reload stats before {before} after {after}")
    print_wasm_stats("after the reload", envoy)
    assert after["vm_reload_success"] == before["vm_reload_success"] + 1
    assert after["vm_reload_backoff"] == before["vm_reload_backoff"] == 0
    assert after["vm_reload_failure"] == 0


def test_fail_reload_backs_off_when_a_new_vm_crashes_at_once(stack, key, echo_server):
    envoy = start_envoy(stack, key, "FAIL_RELOAD")
    time.sleep(RELOAD_BACKOFF_MAX + 0.5)
    assert_fail_closed_reply(crash(envoy, key, echo_server))
    # The next request loads a new VM; crash that one at once.
    reloaded_at = time.monotonic()
    assert_fail_closed_reply(get(envoy.url(), "/crash-again", headers={CRASH_HEADER: "1"}))
    statuses = []
    while True:
        response = get(envoy.url(), "/after", token=valid_token(key))
        statuses.append(response.status_code)
        if response.status_code != 503 or time.monotonic() > reloaded_at + RELOAD_WAIT:
            break
        assert_fail_closed_reply(response)
        time.sleep(0.1)
    recovered_after = time.monotonic() - reloaded_at
    print(f"FAIL_RELOAD crash loop: recovered {recovered_after:.2f}s after the last reload; statuses {statuses}")
    upstream_view(response)
    assert RELOAD_BACKOFF_MIN - 0.1 <= recovered_after <= RELOAD_WAIT
    after = reload_stats(envoy)
    print(f"reload stats {after}")
    assert after["vm_reload_success"] == 2
    assert after["vm_reload_backoff"] >= len(statuses) - 1, "each request refused while backing off is counted"
    assert after["vm_reload_failure"] == 0
