"""The records of processing as the representative sees them: reached from oversight, readable
at 390 px, printable, and the data map downloads as a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.services import datamap
from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def test_the_representative_reads_prints_and_downloads_the_records(page, make_person):
    rep = make_person("representative", password=PASSWORD)
    sign_in(page, rep.login, PASSWORD)
    page.goto("/oversight")
    page.get_by_role("link", name="Records of processing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Records of processing")
    expect(page.get_by_role("heading", name="Policy history")).to_be_visible()
    expect(page.locator("code", has_text="shares.purpose_sealed")).to_be_visible()
    screenshot(page, "records-wide-en")

    page.set_viewport_size({"width": 390, "height": 844})
    # Long tables scroll inside their card; the page itself does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "records-390-en")

    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print or save as PDF")).to_be_hidden()
    expect(page.locator("header.topbar")).to_be_hidden()
    page.emulate_media(media="screen")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the data map (Markdown)").click()
    path = download.value.path()
    assert download.value.suggested_filename == "consent-replay-data-map.md"
    assert Path(path).read_text(encoding="utf-8") == datamap.markdown()
