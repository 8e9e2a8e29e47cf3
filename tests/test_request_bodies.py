"""Requests with bodies that arrive while the filter waits for a first key set.

The body must be held until the decision and then reach the upstream intact,
and a denied request must never reach the upstream at all.
"""

import threading

import requests

from harness.client import REQUEST_TIMEOUT, assert_denied
from harness.envoy import Listener
from harness.jwks_server import SLOW
from harness.plugin import plugin_config, rule
from harness.tokens import cached_key, claims, flip_signature_bit, sign

ISSUER = "https://issuer-bodies.test"
# Slower than Envoy's start-up, so the requests below arrive before the keys.
JWKS_DELAY_SECONDS = 4.0


def post(url: str, path: str, token: str, body: bytes) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    return requests.post(url + path, data=body, headers=headers, timeout=REQUEST_TIMEOUT)


def test_bodies_wait_with_their_headers(stack, echo_server):
    key = cached_key("ES256", "bodies")
    server = stack.jwks_server({"keys": [key.jwk()]})
    server.set_mode(SLOW, slow_seconds=JWKS_DELAY_SECONDS)
    config = plugin_config(rule(ISSUER, server, timeout="10s"), servers=(server,))
    envoy = stack.envoy(Listener("main", config), servers=(server,))
    valid = sign({}, claims(ISSUER), key)
    forged = flip_signature_bit(valid)
    body = b"x" * 200_000  # larger than one read, so it arrives in several chunks

    results = {}

    def send(name, token, path):
        results[name] = post(envoy.url("main"), path, token, body)

    threads = [
        threading.Thread(target=send, args=("valid", valid, "/accepted-post")),
        threading.Thread(target=send, args=("forged", forged, "/forged-post")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 5)

    assert server.count() >= 1
    accepted = results["valid"]
    assert accepted.status_code == 200, accepted.text[:200]
    assert len(accepted.json()["body"]) == len(body)
    assert_denied(results["forged"], 401, "Jwt verification fails")
    assert "/forged-post" not in echo_server.seen_paths
