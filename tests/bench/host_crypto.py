#!/usr/bin/env python3
"""The signature check (`profile.verify` phase, µs per request) with
`signatureVerification` `host` and `module`, side by side in one Envoy (one
worker, verified-token cache off, so every request verifies).

    cargo build --release --target wasm32-wasip1 -p oidc-filter --features profile --target-dir target/profile
    (wasm-opt as `make profile` does, to dist/oidc_filter_profile.wasm)
    .venv/bin/python tests/bench/host_crypto.py dist/oidc_filter_profile.wasm [requests per run]
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests
from harness.echo_server import EchoServer
from harness.stack import Stack
from harness.envoy import Listener
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, sign
from harness.stats import custom

ISSUER = "https://measure.test"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
algs = ["RS256", "RS512", "ES256", "ES384", "PS256"]
keys = {a: cached_key(a, "measure") for a in algs}
env = {"key_values": {"OIDC_FILTER_TEST_ONLY_PROFILE": "1"}}
with EchoServer() as echo:
    stack = Stack(Path(sys.argv[1]), echo.port, name="measure")
    try:
        server = stack.jwks_server({"keys": [k.jwk() for k in keys.values()]})
        def cfg(mode):
            return plugin_config(rule(ISSUER, server), servers=(server,), signatureVerification=mode,
                                 verifiedTokenCache={"maxEntries": 0})
        envoy = stack.envoy(*[Listener(m, cfg(m), vm_environment=env) for m in ("host", "module")],
                            servers=(server,), concurrency=1)
        s = requests.Session()
        def run(mode, alg):
            tokens = [sign({}, claims(ISSUER, jti=str(i)), keys[alg]) for i in range(N)]
            for t in tokens[:20]:
                assert s.get(envoy.url(mode) + "/", headers={"authorization": "Bearer " + t}).status_code == 200
            time.sleep(2.5)
            before = custom(envoy.admin_url)
            for t in tokens:
                assert s.get(envoy.url(mode) + "/", headers={"authorization": "Bearer " + t}).status_code == 200
            time.sleep(2.5)
            after = custom(envoy.admin_url)
            d = lambda k: after.get(k, 0) - before.get(k, 0)
            return d("profile.verify.ns") / max(d("profile.verify.spans"), 1) / 1000, d("profile.verify.spans")
        for alg in algs:
            for mode in ("host", "module"):
                us, spans = run(mode, alg)
                print(f"{alg} {mode}: verify {us:.1f} µs/request over {spans} requests", flush=True)
        print("host failures:", custom(envoy.admin_url).get("signature_verification.host_failures"))
    finally:
        stack.close()
