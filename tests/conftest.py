"""Shared fixtures for the end-to-end tests.

Harness pieces are owned by a `Stack` that stops them at the end of its
scope; `stack` lives for one test, `module_stack` for one test module (so a
module can share one Envoy start-up).
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from harness import envoy as envoy_module
from harness import idp as idp_module
from harness.echo_server import EchoServer
from harness.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WASM = REPO_ROOT / "dist" / "oidc_filter.wasm"


STALE_RUN_SECONDS = 3600


def pytest_sessionstart(session):
    """Remove logs and bootstraps of earlier runs, but not those of a run still
    going in parallel (its files are recent)."""
    work = envoy_module.WORK_DIR
    if not work.is_dir():
        return
    cutoff = time.time() - STALE_RUN_SECONDS
    for entry in work.iterdir():
        if entry.stat().st_mtime < cutoff:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    # OIDC_FILTER_WASM lets one run the suite against another build.
    path = Path(os.environ.get("OIDC_FILTER_WASM", DEFAULT_WASM))
    if not path.is_file() or path.stat().st_size < 1024:
        pytest.fail(f"{path} is missing or is not a real module: run `make build` first", pytrace=False)
    return path


@pytest.fixture(scope="session")
def echo_server():
    with EchoServer() as server:
        yield server


@pytest.fixture(scope="module")
def module_stack(request, wasm_path, echo_server):
    stack = Stack(wasm_path, echo_server.port, name=request.module.__name__.rsplit(".", 1)[-1])
    yield stack
    stack.close()


@pytest.fixture
def stack(request, wasm_path, echo_server):
    stack = Stack(wasm_path, echo_server.port, name=request.node.name[:40].replace("/", "_"))
    yield stack
    stack.close()


@pytest.fixture
def plain_stack(request):
    """A Stack for harness pieces only (IdP, servers): no Envoy, no wasm needed."""
    stack = Stack(name=request.node.name[:40].replace("/", "_"))
    yield stack
    stack.close()


@pytest.fixture
def browser(request):
    """A headless Chromium (harness.browser.Browser), quit after the test; a
    screenshot and the page source go to tests/.work/screenshots/ if it failed."""
    from harness.browser import Browser, browser_available

    problem = browser_available()
    if problem:
        pytest.fail(problem, pytrace=False)
    with Browser(name=request.node.name) as browser:
        yield browser
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            saved = browser.save_screenshot(f"{request.node.name}-failure")
            if saved:
                print(f"browser screenshot: {saved}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every running Envoy's and IdP's log to the report."""
    report = yield
    if call.when == "call":
        item.rep_call = report
    if report.failed and call.when in ("setup", "call"):
        for envoy in list(envoy_module.RUNNING):
            report.sections.append((f"envoy log tail ({envoy.dir.name})", envoy.log_tail(60)))
        for idp in list(idp_module.RUNNING):
            report.sections.append((f"idp log tail ({idp.dir.name})", idp.log_tail(40)))
    return report
