"""The pages' one time formatter (kit.js clock()) against the server's (formatting.clock()),
value for value, in the real browser: the same rule in both languages."""

from __future__ import annotations

import pytest

from app.pages.formatting import clock
from tests.app.test_formatting import CASES

pytestmark = pytest.mark.browser


def test_kit_clock_writes_every_time_as_the_server_does(page):
    page.goto("/login")  # any page of the app: the module is imported under its CSP
    values = [seconds for seconds, _ in CASES if seconds is not None]
    written = page.evaluate(
        """async (values) => {
             const { clock } = await import('/static/js/kit.js');
             return [clock(null), clock(undefined), ...values.map(clock)];
           }""",
        values,
    )
    assert written == ["–", "–", *[clock(seconds) for seconds in values]]
