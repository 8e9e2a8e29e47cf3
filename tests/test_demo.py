"""`make run`'s demo (envoy-local/demo.py) end to end: it starts, a user can log
in and see their identity, the rule, the public path and the API route behave as
it prints, and Ctrl-C stops everything."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from harness.envoy import REPO_ROOT
from harness.login import login
from harness.oidc_app import assert_refused_page, html_session
from harness.ports import free_port

DEMO = REPO_ROOT / "envoy-local" / "demo.py"


@pytest.fixture
def demo(tmp_path):
    ports = {name: str(free_port()) for name in ("DEMO_ENVOY_PORT", "DEMO_IDP_PORT", "DEMO_APP_PORT", "DEMO_ADMIN_PORT")}
    output = tmp_path / "demo.out"
    with open(output, "wb") as out:
        # Started with SIGINT ignored, as a shell starts a background job (and as
        # CI may run the tests): Ctrl-C must stop the demo all the same.
        process = subprocess.Popen(
            [sys.executable, str(DEMO)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ports},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 40
        while "Press Ctrl-C" not in output.read_text():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield process, f"http://127.0.0.1:{ports['DEMO_ENVOY_PORT']}", ports, output
    finally:
        # Ctrl-C, as a user would, so the demo stops its IdP and Envoy itself.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_logs_in_and_stops_cleanly(demo):
    process, url, ports, output = demo
    assert f"Open {url}/" in output.read_text()
    page = login(html_session(), f"{url}/", "alice").response
    assert page.status_code == 200
    assert "alice@example.test" in page.text and "Authorization: Bearer" in page.text
    denied = login(html_session(), f"{url}/", "contractor").response
    assert_refused_page(denied, "contractor@example.test")
    assert requests.get(f"{url}/healthz").text == "ok\n"
    assert requests.get(f"{url}/api/whoami").status_code == 401

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert not any(listening(int(port)) for port in ports.values()), "something still listens after Ctrl-C"


@pytest.mark.browser
def test_a_person_logs_into_the_demo_with_chromium(demo, browser):
    process, url, ports, output = demo
    browser.get(f"{url}/")
    browser.dev_login("grace")
    browser.wait_for_url(f"{url}/")
    assert "grace@example.test" in browser.text()
    browser.save_screenshot("demo-signed-in")


def test_killing_the_demo_leaves_nothing_running(demo):
    process, url, ports, output = demo
    process.kill()  # no chance to clean up: the children must go by themselves
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(listening(int(port)) for port in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(listening(int(port)) for port in ports.values()), "the IdP or Envoy outlived the demo"
