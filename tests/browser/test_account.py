"""My account in a real browser: make a token (shown once), revoke it, set the e-mail
address, read the security log, sign out everywhere — at 1280 and 390 px (issue 12)."""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def me_status(live_server, token: str) -> int:
    return requests.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def test_the_account_page(page, browser, live_server, make_person):
    person = make_person("coach", password=PASSWORD, name=f"Carla Coach {uuid.uuid4().hex[:4]}")
    sign_in(page, person.login, PASSWORD)
    page.get_by_role("link", name=person.name).click()  # the name in the header
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    expect(page.locator("#token-rows tr[data-token-id]")).to_have_count(1)  # the test's token

    # A token, shown once, that works; gone from the page when the dialog closes.
    page.locator("#token-label").fill("softphone")
    page.get_by_role("button", name="Make a token").click()
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    token = page.locator("#token-value").input_value()
    assert token.startswith("cr_") and me_status(live_server, token) == 200
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "account-token-once")
    page.get_by_role("button", name="I have copied it").click()
    expect(dialog).to_be_hidden()
    assert token not in page.content()
    row = page.locator("#token-rows tr", has_text="softphone")
    expect(row).to_be_visible()

    # Revoke it: confirmed, and it stops working at once.
    row.get_by_role("button", name="Revoke").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("#token-rows tr", has_text="softphone")).to_have_count(0)
    assert me_status(live_server, token) == 401

    # The e-mail address needs the current password.
    page.locator("#email").fill("carla@example.org")
    page.get_by_role("button", name="Save address").click()
    expect(page.locator("#email-error")).to_contain_text("current password")
    page.locator("#email-password").fill(PASSWORD)
    page.get_by_role("button", name="Save address").click()
    expect(page.locator(".toast").last).to_contain_text("E-mail address saved")
    me = requests.get(f"{live_server.url}/api/v1/me", headers=person.headers, timeout=10).json()
    assert me["email"] == "carla@example.org"

    # The security log: mine, newest first.
    log = page.locator("#log-rows")
    expect(log.locator("tr").first).to_contain_text("E-mail address changed")
    expect(log).to_contain_text("API token revoked")
    expect(log).to_contain_text("Signed in with your password")
    page.evaluate("window.scrollTo(0, 0); document.getElementById('toasts')?.remove()")
    screenshot(page, "account")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#log-rows tr").first).to_contain_text("E-mail address changed")
    screenshot(page, "account-390")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"

    # Signed in elsewhere too; "sign out everywhere" ends both.
    other = browser.new_context(base_url=live_server.url)
    elsewhere = other.new_page()
    sign_in(elsewhere, person.login, PASSWORD)
    page.reload()
    expect(page.locator("#session-list li")).to_have_count(2)
    page.get_by_role("button", name="Sign out everywhere").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Sign out everywhere").click()
    page.wait_for_url("**/login")
    elsewhere.goto("/account")
    elsewhere.wait_for_url("**/login**")
    other.close()
    assert me_status(live_server, person.token) == 200  # tokens are not sessions
