"""Headless Chromium for the browser tests, and logging in through the login form.

The browser (``find_chromium``): ``$BIDIR_CHROMIUM`` where set, else the one kaleido finds
(Debian's /usr/bin/chromium, which `.ci/run` installs, or any Chrome/Chromium on PATH), else
Playwright's own where `playwright install chromium` has downloaded it. Tests that use it are
skipped where there is none (``needs_chromium``), with ``HOW_TO_ENABLE`` as the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from study.chrome import chrome_path
from tests.web.helpers import PASSWORD

ENV = "BIDIR_CHROMIUM"
HOW_TO_ENABLE = (
    f"no Chromium: install Debian's chromium package, set {ENV}=/path/to/chrome, or run `playwright install chromium`"
)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
"""Screenshots and figures the tests keep (gitignored; CI leaves them in its clone)."""


def _executable(path: str | Path | None) -> Path | None:
    return Path(path) if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _playwright_chromium() -> str:
    """Where Playwright's own Chromium is, downloaded or not."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        return p.chromium.executable_path


def find_chromium() -> Path | None:
    """The Chromium the browser tests drive, or None. A set ``$BIDIR_CHROMIUM`` is the only
    choice: naming a missing file there turns the browser tests off."""
    if chosen := os.environ.get(ENV):
        return _executable(chosen)
    return _executable(chrome_path()) or _executable(_playwright_chromium())


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=HOW_TO_ENABLE)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield browser
        finally:
            browser.close()


def logged_in_page(browser: Any, base: str, username: str, password: str = PASSWORD) -> Any:
    """A new page in its own context, logged in as ``username`` and left on the experiments
    list. ``page.errors`` collects the page's uncaught errors and console errors."""
    page = browser.new_context().new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.goto(base + "/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    return page


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
