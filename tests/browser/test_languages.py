"""The two languages in a real browser (SPEC §14): the switch on the sign-in page and in the
header, <html lang>, the person's choice kept, and a script's text from the catalog."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import assert_accessible, screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def test_switch_on_the_sign_in_page(page):
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert_accessible(page)
    page.get_by_role("button", name="Norsk (bokmål)").click()
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    expect(page.get_by_role("heading", name="Logg inn")).to_be_visible()
    expect(page.get_by_label("Brukernavn")).to_be_visible()
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "languages-sign-in-nb")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "languages-sign-in-nb-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The choice stays with this browser (a cookie), and the switch goes back.
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_switch_in_the_header_is_the_persons_choice(page, browser, live_server, make_person):
    person = make_person("employee", password=PASSWORD)
    sign_in(page, person.login, PASSWORD)
    page.get_by_role("button", name="Norsk (bokmål)").click()
    expect(page.locator("html")).to_have_attribute("lang", "nb")
    expect(page.get_by_role("navigation", name="Hovedmeny")).to_contain_text("Mine opptak")
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "languages-header-nb")

    # A script's text from the catalog: kit.js's confirm dialog says Avbryt.
    page.goto("/account")
    page.locator("#sign-out-everywhere").click()
    dialog = page.locator("dialog.confirm-dialog")
    expect(dialog.get_by_role("button", name="Avbryt")).to_be_visible()
    dialog.get_by_role("button", name="Avbryt").click()

    # Another browser with an English Accept-Language: the person's choice wins.
    other = browser.new_context(base_url=live_server.url, locale="en-GB")
    elsewhere = other.new_page()
    sign_in(elsewhere, person.login, PASSWORD)
    expect(elsewhere.locator("html")).to_have_attribute("lang", "nb")
    other.close()
