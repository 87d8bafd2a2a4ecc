"""Debian's headless Chromium, driven through chromium-driver (selenium), for the
console's browser test and its screenshot. Every call runs in a worker thread: the
loopback stand-ins the daemon talks to share the test's event loop and must keep
answering while the browser waits."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WAIT_S = 60.0  # bound on any one thing the page must come to show (real seconds)


class BrowserError(AssertionError):
    """The page never came to show what a step waited for."""


def available() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    return None


class Browser:
    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def get(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def until(self, script: str, what: str, timeout_s: float = WAIT_S) -> Any:
        """Poll ``script`` (its return value) in the page until it is truthy, bounded."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = await self.js(script)
            if found:
                return found
            if time.monotonic() > deadline:
                raise BrowserError(f"the page never showed {what} within {timeout_s:g}s")
            await asyncio.sleep(0.2)

    async def fill(self, form: str, fields: dict[str, str]) -> None:
        def run() -> None:
            for name, value in fields.items():
                box = self.driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
                box.clear()
                box.send_keys(value)

        await asyncio.to_thread(run)

    async def click(self, selector: str) -> None:
        def run() -> None:
            self.driver.find_element(By.CSS_SELECTOR, selector).click()

        await asyncio.to_thread(run)

    async def resize(self, width: int, height: int) -> None:
        await asyncio.to_thread(self.driver.set_window_size, width, height)

    async def screenshot(self, width: int) -> bytes:
        """The whole page at ``width``: the window grown to the page's height."""
        await self.resize(width, 900 if width > 600 else 844)
        height = int(await self.js("return document.documentElement.scrollHeight"))
        await self.resize(width, min(max(height, 600), 8000))
        png: bytes = await asyncio.to_thread(self.driver.get_screenshot_as_png)
        return png


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """A fresh headless Chromium (its own profile directory), quit at the end."""
    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile:
        options = Options()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        service = Service(executable_path=CHROMEDRIVER)
        driver = await asyncio.to_thread(webdriver.Chrome, options=options, service=service)
        try:
            yield Browser(driver)
        finally:
            await asyncio.to_thread(driver.quit)
