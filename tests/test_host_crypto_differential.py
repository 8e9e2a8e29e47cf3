"""The signature cases of filter/tests/crypto_differential.rs, as JWS tokens,
through Envoy's BoringSSL and through the module's own crypto.

`jws_cases::written_for_envoy` (in that file) builds ~1,800 tokens over 46
keys: every RSA key size there (2047 to 4096 bits, e = 3) with RS* and PS*, and
P-256, P-384 and Ed25519 keys; valid signatures and their byte mutations, r or s
set to 0, 1, n - 1, n, n + 1, p, high S, swapped, DER instead of r‖s, RSA
signatures of 0, 1, n and s + n, hand-made PKCS#1 encodings (no NULL, another
hash, garbage after the hash, the e = 3 cube-root forgery), altered payloads,
signatures presented as other algorithms, and keys the filter must not use
(small, off the curve, non-canonical, wrong lengths). Each token's verdict is
the reference crates' (RustCrypto `rsa`, `p256`, `p384`, `ed25519-dalek`),
which the Rust test checks against the module's code before writing it.

One Envoy 1.40, two listeners: `signatureVerification: host` (RS* and ES* on
the host) and `module`. Every token must get its verdict from both (200 when it
verifies, 401 otherwise), and the same status and body from both.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.stats import custom

REPO_ROOT = Path(__file__).resolve().parents[1]
MODES = ("host", "module")
CARGO_TIMEOUT = 900  # a fresh build of the test; `make test` has built it already


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("crypto-cases") / "cases.json"
    command = [
        "cargo", "test", "--locked", "--quiet", "-p", "oidc-filter", "--test", "crypto_differential",
        "--", "--exact", "jws_cases::written_for_envoy",
    ]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env={**os.environ, "CRYPTO_CASES_OUT": str(out)},
        capture_output=True, text=True, timeout=CARGO_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def envoy(module_stack, corpus):
    server = module_stack.jwks_server(corpus["jwks"])
    listeners = [
        Listener(mode, plugin_config(rule(corpus["issuer"], server), servers=(server,), signatureVerification=mode))
        for mode in MODES
    ]
    return module_stack.envoy(*listeners, servers=(server,))


def answers(base_url: str, cases: list[dict]) -> list[tuple[int, str]]:
    """Status and denial text per case (an upstream answer names its listener's
    port, so only its status counts)."""
    with requests.Session() as session:
        return [
            (response.status_code, "" if response.status_code == 200 else response.text)
            for response in (
                session.get(base_url + "/", headers={"Authorization": f"Bearer {case['token']}"}, timeout=15)
                for case in cases
            )
        ]


def test_the_corpus_covers_every_case_kind(corpus):
    cases = corpus["cases"]
    assert len(cases) >= 1500
    names = " ".join(case["name"] for case in cases)
    for kind in ("RSA-2047", "RSA-2049", "RSA-4096", "e=3", "PS512", "ES256", "ES384", "EdDSA",
                 "r = n", "s = 0", "high S", "DER", "signature = n", "cube-root forgery",
                 "DigestInfo without NULL", "payload altered", "presented as", "x = p"):
        assert kind in names, kind
    assert sum(case["verifies"] for case in cases) >= 60


def test_host_and_module_give_every_case_its_verdict(envoy, corpus):
    cases = corpus["cases"]
    by_mode = {mode: answers(envoy.url(mode), cases) for mode in MODES}
    wrong = []
    for index, case in enumerate(cases):
        host, module = by_mode["host"][index], by_mode["module"][index]
        expected = 200 if case["verifies"] else 401
        if host != module or host[0] != expected:
            wrong.append(f"{case['name']}: expected {expected}, host {host[0]} {host[1][:60]!r}, "
                         f"module {module[0]} {module[1][:60]!r}")
    assert not wrong, f"{len(wrong)} of {len(cases)} cases differ:\n" + "\n".join(wrong[:40])


def test_zz_the_host_verified_them_without_a_failure(envoy):
    """The host was in charge (its gauge) and never failed a call: a rejected
    signature is its `false`, not an error turned into a denial."""
    assert "signature verification: host BoringSSL for RS*, ES* (probe passed)" in envoy.log_text()
    deadline = time.monotonic() + 10
    while True:
        values = custom(envoy.admin_url)
        if "signature_verification.host_failures" in values or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert values.get("signature_verification.host", 0) >= 1, values
    assert values.get("signature_verification.host_failures") == 0, values
