"""RS* and ES* signatures verified by Envoy's BoringSSL (the `verify_signature`
foreign function), the module's own crypto kept for the rest and as fallback.

One Envoy 1.40 with three listeners, one per `signatureVerification`: `auto`
(the default: the probe at load picks the host, Envoy 1.40 has the function),
`host` and `module`. Every algorithm verifies through each, and altered or
forged tokens get the same answer from each (jwt_authn's status and text).
The hostile-token suite runs through `host` and `module` too
(test_hostile_tokens.py).
"""

import time

import pytest

from harness.client import assert_denied, get, upstream_view
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.stats import custom
from harness.tokens import (
    ALL_ALGS,
    b64url,
    b64url_decode,
    cached_key,
    claims,
    flip_signature_bit,
    generate_key,
    sign,
    tamper_payload,
)

ISSUER = "https://host-crypto.test"
MODES = ("auto", "host", "module")
HOST_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384")
VERIFICATION_FAILS = "Jwt verification fails"
# `auto` leaves ES384 to the module, where it is faster; `host` sends it too.
AUTO_LINE = "signature verification: host BoringSSL for RS*, ES256 (probe passed)"
HOST_LINE = "signature verification: host BoringSSL for RS*, ES* (probe passed)"
MODULE_LINE = "signature verification: module (signatureVerification: module)"
STATS_TIMEOUT = 10.0


def keys():
    return {alg: cached_key(alg, "host-crypto") for alg in ALL_ALGS}


def config(server, mode: str) -> dict:
    top_level = {} if mode == "auto" else {"signatureVerification": mode}
    return plugin_config(rule(ISSUER, server), servers=(server,), **top_level)


@pytest.fixture(scope="module")
def envoy(module_stack):
    server = module_stack.jwks_server({"keys": [k.jwk() for k in keys().values()]})
    listeners = [Listener(mode, config(server, mode)) for mode in MODES]
    return module_stack.envoy(*listeners, servers=(server,))


def filter_stats(envoy, wanted, timeout: float = STATS_TIMEOUT) -> dict[str, int]:
    """The filter's stats once `wanted(stats)` holds (they are copied out on a
    timer), or the last ones read."""
    deadline = time.monotonic() + timeout
    while True:
        values = custom(envoy.admin_url)
        if wanted(values) or time.monotonic() > deadline:
            return values
        time.sleep(0.2)


def test_the_probe_picks_the_host_on_envoy_1_40(envoy):
    log = envoy.log_text()
    assert AUTO_LINE in log, envoy.log_tail()
    assert HOST_LINE in log, envoy.log_tail()
    assert MODULE_LINE in log, envoy.log_tail()
    assert "host probe failed" not in log
    # 1 from each plugin (auto and host) in each VM that reports.
    values = filter_stats(envoy, lambda s: s.get("signature_verification.host", 0) >= 2)
    assert values.get("signature_verification.host", 0) >= 2, values


@pytest.mark.parametrize("alg", ALL_ALGS)
@pytest.mark.parametrize("mode", MODES)
def test_every_algorithm_verifies(envoy, mode, alg):
    token = sign({}, claims(ISSUER), keys()[alg])
    upstream_view(get(envoy.url(mode), "/", token=token))


def altered_signature(alg):
    return flip_signature_bit(sign({}, claims(ISSUER), keys()[alg]))


def altered_payload(alg):
    return tamper_payload(sign({}, claims(ISSUER), keys()[alg]), sub="mallory")


def forged(alg):
    """Signed by a key of the same type, with the issuer's kid."""
    impostor = generate_key(alg, kid=keys()[alg].kid)
    return sign({}, claims(ISSUER), impostor)


def truncated_signature(alg):
    head, body, signature = sign({}, claims(ISSUER), keys()[alg]).split(".")
    return f"{head}.{body}.{b64url(b64url_decode(signature)[:-1])}"


# A short Ed25519 signature has its own text (test_hostile_tokens.py), so EdDSA
# is not truncated here.
DENIALS = [
    (alg, make)
    for alg in HOST_ALGS + ("PS256", "EdDSA")
    for make in (altered_signature, altered_payload, forged, truncated_signature)
    if not (make is truncated_signature and alg == "EdDSA")
]


@pytest.mark.parametrize(("alg", "make"), DENIALS, ids=[f"{alg}-{make.__name__}" for alg, make in DENIALS])
@pytest.mark.parametrize("mode", MODES)
def test_altered_and_forged_tokens_are_denied_alike(envoy, mode, alg, make):
    assert_denied(get(envoy.url(mode), "/", token=make(alg)), 401, VERIFICATION_FAILS)


def test_zz_the_host_never_failed(envoy):
    """Forged signatures are the host's `false`, not failures of the call."""
    values = filter_stats(envoy, lambda s: "signature_verification.host_failures" in s)
    assert values.get("signature_verification.host_failures") == 0, values
    assert "host signature verification failed" not in envoy.log_text()


def test_an_unknown_mode_stops_the_plugin(stack):
    server = stack.jwks_server({"keys": [keys()["RS256"].jwk()]})
    bad = config(server, "boringssl")
    outcome = stack.envoy_expecting_failure(Listener("main", bad), servers=(server,), timeout=20)
    assert not outcome.became_ready
    lines = [line for line in outcome.log.splitlines() if "invalid plugin configuration" in line]
    assert any("signatureVerification" in line and "`boringssl`" in line for line in lines), lines
