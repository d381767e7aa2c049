"""Headless Chromium for the console's pages, and screenshots of what it showed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


WAIT_MS = 30_000  # the longest any step waits for the page


def artifacts_dir() -> Path:
    directory = Path(os.environ.get("BILAYER_CONSOLE_ARTIFACTS") or REPO / "artifacts/console")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y --no-install-recommends chromium")
    from playwright.sync_api import sync_playwright

    print(f"\nconsole screenshots: {artifacts_dir()}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                              timeout=WAIT_MS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"script errors in the console: {errors}"


def visit(page: Any, node: str, route: str, section: str) -> None:
    page.goto(f"{node}/#/{route}")
    page.wait_for_selector(f"main[data-ready='{section}']")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
