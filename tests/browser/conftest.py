"""Playwright driving Debian's Chromium (never `playwright install`)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.chromium import (  # noqa: F401 - used by browser tests
    CHROMIUM,
    CHROMIUM_ARGS,
    watch_for_script_errors,
)
from tests.conftest import wait_for

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent / "artifacts" / "screenshots"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.2 A and AA (SPEC §14): the rules axe can decide by itself.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture
def page(browser, live_server) -> Iterator:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(autouse=True)
def no_script_errors(page):
    """Fail a test whose page threw, had something refused by its Content-Security-Policy, or
    missed a static file (every page of every browser test: a script module that fails to load,
    import or run shows here)."""
    errors = watch_for_script_errors(page)
    yield
    assert errors == []


def wait_share_ready(live_server, share_id: str, headers: dict, seconds: float = 180) -> None:
    """Until the share's rendition is made (a failed or ended share fails the test)."""

    def ready() -> bool:
        body = requests.get(
            f"{live_server.url}/api/v1/shares/{share_id}", headers=headers, timeout=10
        ).json()
        assert body["status"] not in ("failed", "ended"), body
        return bool(body["status"] == "ready")

    wait_for(ready, seconds, "the share's rendition")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, login: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.request.method == "POST" and "/login" in r.url) as sent:
        page.click("main button[type=submit]")
    answer = sent.value
    assert answer.status in (302, 303), (
        f"signing in as {login!r} answered {answer.status}: {page.locator('main').inner_text()}"
    )
    page.wait_for_url(lambda url: "/login" not in url)


@functools.cache
def _axe_source() -> str:
    """axe-core from npm (tests/browser/package-lock.json), installed on first use."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed for axe-core (apt-get install npm)", pytrace=False)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True
        )
    return AXE.read_text(encoding="utf-8")


def assert_accessible(page, *, exclude: list[str] | None = None) -> None:
    """axe-core on the page as it is now: no serious or critical WCAG 2.2 AA violation.

    Injected through the DevTools protocol (page.evaluate), which the page's CSP does not
    govern. ``exclude`` lists selectors axe should not judge (a third party's markup)."""
    page.evaluate(_axe_source() + "\n;undefined")
    result = page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length ? { exclude: exclude.map((s) => [s]) } : document;
            const outcome = await axe.run(context, { runOnly: { type: "tag", values: tags } });
            return outcome.violations
              .filter((v) => v.impact === "serious" || v.impact === "critical")
              .map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
              }));
        }""",
        [AXE_TAGS, exclude or []],
    )
    report = "\n".join(
        f"{v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in result
    )
    assert not result, f"axe on {page.url}:\n{report}"
