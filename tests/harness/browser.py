"""A real headless Chromium driven through WebDriver (Selenium).

Debian's /usr/bin/chromium and /usr/bin/chromedriver (install them with
tests/install-browser.sh); Selenium Manager is never used, so nothing is
downloaded. Every Chromium gets a fresh temporary profile, resolves no host
name but 127.0.0.1, localhost and *.localhost (Chromium itself maps those to
loopback, RFC 6761: `grafana.localhost` and `wiki.localhost` are two hosts of
one Envoy listener; nothing leaves the machine), and has page load and script
timeouts; every wait is explicit and bounded.

    with Browser(name="login") as browser:
        browser.get(auth_url)
        browser.dev_login("alice")
        browser.wait_for_url(callback.url)

On an exception inside the `with` block a screenshot and the page source are
saved under tests/.work/screenshots/ (the path is printed).
"""

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import ports

# Selenium must never try to download a driver or a browser.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK_DIR = REPO_ROOT / "tests" / ".work"
SCREENSHOT_DIR = WORK_DIR / "screenshots"

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")

PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0
WAIT_TIMEOUT = 10.0

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,PasswordLeakDetection,HttpsUpgrades",
    # Loopback only: every other host name fails to resolve at once. Chromium
    # resolves *.localhost to loopback without asking DNS.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost, EXCLUDE *.localhost",
    "--window-size=1280,900",
)


def browser_available() -> str | None:
    """None when Chromium and its driver are installed, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        return f"{', '.join(missing)} missing: run tests/install-browser.sh"
    return None


class Browser:
    """One headless Chromium; use as a context manager (always quits)."""

    def __init__(
        self,
        name: str = "browser",
        page_load_timeout: float = PAGE_LOAD_TIMEOUT,
        script_timeout: float = SCRIPT_TIMEOUT,
        extra_args: tuple[str, ...] = (),
    ):
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
        self.page_load_timeout = page_load_timeout
        self.script_timeout = script_timeout
        self.extra_args = tuple(extra_args)
        self.driver: webdriver.Chrome | None = None
        self._profile: str | None = None
        self.log_path: Path | None = None

    # ----- lifecycle -----
    def start(self) -> "Browser":
        problem = browser_available()
        if problem:
            raise RuntimeError(problem)
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.mkdtemp(prefix=f"chromium-{self.name}-")
        self.log_path = Path(tempfile.mkstemp(prefix=f"chromedriver-{self.name}-", suffix=".log", dir=WORK_DIR)[1])
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in CHROMIUM_ARGS + self.extra_args:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_experimental_option(
            "prefs",
            {
                "credentials_enable_service": False,
                "profile.password_manager_enabled": False,
                "profile.password_manager_leak_detection": False,
                "safebrowsing.enabled": False,
                "translate.enabled": False,
            },
        )
        options.page_load_strategy = "normal"
        service = Service(
            executable_path=CHROMEDRIVER,
            port=ports.free_port(),
            log_output=str(self.log_path),
            service_args=["--allowed-ips=127.0.0.1"],
        )
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
            self.driver.set_page_load_timeout(self.page_load_timeout)
            self.driver.set_script_timeout(self.script_timeout)
        except BaseException:
            self.quit()
            raise
        return self

    def quit(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            except WebDriverException:
                pass
            self.driver = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    stop = quit  # so a Stack can own a Browser

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None and self.driver is not None:
                saved = self.save_screenshot(f"{self.name}-failure")
                if saved:
                    print(f"browser screenshot: {saved}")
        finally:
            self.quit()

    # ----- pages -----
    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    @property
    def page_source(self) -> str:
        return self.driver.page_source

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def cookies(self) -> list[dict]:
        """Cookies visible to the current page's URL."""
        return self.driver.get_cookies()

    def wait_until(self, condition: Callable, timeout: float = WAIT_TIMEOUT, message: str = ""):
        """WebDriverWait(driver, timeout).until(condition), with a useful message."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException as err:
            raise TimeoutException(f"{message or 'condition'} not met within {timeout}s; at {self.url}") from err

    def wait_for_url(self, target: str | Callable[[str], bool], timeout: float = WAIT_TIMEOUT) -> str:
        """Wait until the current URL starts with `target` (or satisfies it)."""
        match = (lambda u: u.startswith(target)) if isinstance(target, str) else target
        self.wait_until(lambda d: match(d.current_url), timeout, f"URL matching {target!r}")
        return self.url

    def save_screenshot(self, label: str) -> Path | None:
        """PNG and HTML of the current page under tests/.work/screenshots/."""
        if self.driver is None:
            return None
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        stem = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{int(time.time() * 1000)}"
        try:
            self.driver.save_screenshot(str(stem.with_suffix(".png")))
            stem.with_suffix(".html").write_text(self.driver.page_source)
        except WebDriverException:
            return None
        return stem.with_suffix(".png")

    # ----- the IdP's dev interactions -----
    def dev_login(
        self, username: str = "alice", password: str = "any-password", consent: bool = True, timeout: float = WAIT_TIMEOUT
    ) -> None:
        """On oidc-provider's dev login page (waited for): type the username and
        a password, submit; then accept the consent page if one is shown.
        Returns once the browser has left the IdP's interaction pages."""
        login_field = self.wait_until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "form input[name='login']")), timeout, "login form"
        )
        form = login_field.find_element(By.XPATH, "./ancestor::form")
        login_field.clear()
        login_field.send_keys(username)
        form.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(password)
        form.find_element(By.CSS_SELECTOR, "button[type='submit'], input[type='submit']").click()
        self._wait_replaced(form, timeout)
        if consent:
            self.accept_consent_if_shown(timeout)

    def accept_consent_if_shown(self, timeout: float = WAIT_TIMEOUT) -> bool:
        """Click "Continue" on the dev consent page if the browser is on it."""
        forms = self.driver.find_elements(By.CSS_SELECTOR, "form input[name='prompt'][value='consent']")
        if not forms:
            return False
        form = forms[0].find_element(By.XPATH, "./ancestor::form")
        form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        self._wait_replaced(form, timeout)
        return True

    def confirm_logout(self, everywhere: bool = True, timeout: float = WAIT_TIMEOUT) -> None:
        """On the IdP's "Do you want to sign-out?" page: click Yes (or No)."""
        form = self.wait_until(EC.presence_of_element_located((By.ID, "op.logoutForm")), timeout, "logout form")
        buttons = self.driver.find_elements(By.CSS_SELECTOR, "button[form='op.logoutForm']")
        wanted = [b for b in buttons if (b.get_attribute("name") == "logout") == everywhere]
        wanted[0].click()
        self._wait_replaced(form, timeout)

    def _wait_replaced(self, element, timeout: float) -> None:
        """Wait until `element`'s page was replaced by a fully loaded new one."""

        def gone(_driver) -> bool:
            try:
                element.is_enabled()
                return False
            except WebDriverException:  # stale, or its document is being replaced
                return True

        self.wait_until(gone, timeout, "the page to be replaced")
        self.wait_until(
            lambda d: d.execute_script("return document.readyState") == "complete", timeout, "the new page to load"
        )
