"""The console as a user meets it: `sentinel console` processes and a real headless Chromium (tests and bench)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from streams.shell.settings import Settings
from tests.data import REPO
from tests.integration.helpers import LoggedProcess, free_port, settings_env

ARTIFACTS = REPO / "test-artifacts" / "console"
TOKEN = "alice-console-token-0123456789"


@dataclass
class Console(LoggedProcess):
    """A `sentinel console` process."""

    url: str


def start_console(settings: Settings, workdir: Path, name: str) -> Console:
    port = free_port()
    log_path = workdir / f"{name}.log"
    env = {**settings_env(settings, workdir / name), "SENTINEL_CONSOLE_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.commands.cli", "console"],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    console = Console(process, log_path, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while "console: ready" not in console.log():
        if process.poll() is not None or time.monotonic() > deadline:
            console.stop()
            raise AssertionError(f"console did not get ready:\n{console.log()[-3000:]}")
        time.sleep(0.1)
    return console


def chromium() -> WebDriver:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "no Chromium: deploy/ensure-tools.sh installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,900")
    return webdriver.Chrome(service=Service(driver), options=options)


def wait(browser: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)


def shot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def sign_in(browser: WebDriver, console: Console, token: str = TOKEN) -> None:
    browser.get(f"{console.url}/")
    wait(browser, lambda b: b.current_url.endswith("/login"))
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#queue-rows tr"))


def queue_ids(browser: WebDriver) -> list[str]:
    # Read in one script: the page redraws its rows as updates arrive.
    script = "return [...document.querySelectorAll('#queue-rows tr')].map((row) => row.dataset.alertId)"
    return list(browser.execute_script(script))


def text_of(browser: WebDriver, element_id: str) -> str:
    found = browser.execute_script(f"const e = document.getElementById('{element_id}'); return e && e.innerText")
    return str(found or "")
