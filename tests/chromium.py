"""Debian's Chromium under Playwright (never `playwright install`): one browser for the whole
test session, shared by every package's browser tests (two sync Playwright instances cannot
live in one thread)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            "Chromium is not installed (make test installs it: apt-get install chromium)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


def watch_for_script_errors(page) -> list[str]:
    """What went wrong on ``page`` from now on: an uncaught error, something its
    Content-Security-Policy refused, a static file that failed to load. The list fills as the
    page runs; a test (or fixture) asserts it is empty at the end. Every browser test package
    uses this one check (tests/browser/conftest.py, tests/oidc/test_browser.py)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on(
        "response",
        lambda response: (
            errors.append(f"{response.status} {response.url}")
            if "/static/" in response.url and response.status >= 400
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    return errors
