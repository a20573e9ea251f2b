"""A small W3C WebDriver client (chromedriver + headless Chromium), enough to drive the
consent page like a person: open a URL, type, click, read, take a screenshot.

Installing Chromium is part of the test set-up (Debian's `chromium` and `chromium-driver`);
the browser test is skipped, with the reason, only when that installation is impossible.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def find_chromium() -> tuple[str | None, str | None]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                     "google-chrome"))), None)
    return browser, shutil.which("chromedriver")


def install_chromium() -> str:
    """Installs Debian's packages if needed; returns "" on success, else why it failed."""
    if all(find_chromium()):
        return ""
    if not shutil.which("apt-get"):
        return "apt-get is not available on this machine"
    if os.geteuid() != 0:
        return "installing chromium needs root (apt-get install chromium chromium-driver)"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=1500)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} timed out"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return "" if all(find_chromium()) else "chromium installed but not found on PATH"


class Browser:
    def __init__(self, browser: str, driver: str, port: int) -> None:
        self._process = subprocess.Popen([driver, f"--port={port}"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._http.get("/status").json()["value"]["ready"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self._process.kill()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        options = {"binary": browser,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1000,1000",
                            "--no-first-run", "--disable-extensions"]}
        created = self._http.post("/session", json={"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        created.raise_for_status()
        self._session = created.json()["value"]["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        r = self._http.request(method, f"/session/{self._session}{path}",
                               json=body if body is not None else
                               ({} if method == "POST" else None))
        value = r.json()["value"]
        if r.status_code >= 400:
            raise RuntimeError(f"webdriver {method} {path}: {value}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self._call("GET", "/url")

    def find(self, css: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self._call("POST", "/element", {"using": "css selector", "value": css})
                return found[ELEMENT]
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def texts(self, css: str) -> list[str]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [self._call("GET", f"/element/{e[ELEMENT]}/text") for e in found]

    def text(self, css: str) -> str:
        return self._call("GET", f"/element/{self.find(css)}/text")

    def type(self, css: str, value: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/value", {"text": value})

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/click")

    def wait_for_url(self, prefix: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while not (url := self.url).startswith(prefix):
            if time.monotonic() > deadline:
                raise AssertionError(f"still at {url}, expected {prefix}...")
            time.sleep(0.1)
        return url

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self._http.delete(f"/session/{self._session}")
        finally:
            self._http.close()
            self._process.terminate()
            self._process.wait(timeout=10)
