"""`make idp-run`: the test IdP on its own, as a user runs it for their own
experiments (envoy-local/idp.json, the port from IDP_PORT)."""

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

from harness.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0


def test_make_idp_run_serves_the_documented_issuer_client_and_users():
    port = free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "idp-run", f"IDP_PORT={port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, text=True,
    )
    printed = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("ready "):
                break
        issuer = f"http://localhost:{port}"
        assert printed and printed[-1].strip() == f"ready {issuer}", "".join(printed)
        text = "".join(printed)
        for said in (f"issuer       {issuer}", "client       my-app", "any name and any password"):
            assert said in text, text
        base = f"http://127.0.0.1:{port}"
        discovery = requests.get(f"{base}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == issuer
        # The documented client and redirect URI: the IdP shows its login form.
        query = urlencode({"client_id": "my-app", "response_type": "code", "scope": "openid email",
                           "redirect_uri": "http://localhost:8080/oauth2/callback",
                           "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                           "code_challenge_method": "S256", "state": "s", "nonce": "n"})
        page = requests.get(f"{base}/auth?{query}", timeout=5)
        assert page.status_code == 200 and "<form" in page.text, page.text[:300]
    finally:
        # make and node: the whole group.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        process.stdout.close()
