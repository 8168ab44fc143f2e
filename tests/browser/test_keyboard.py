"""Sharing and revoking with the keyboard alone (issue 16): Tab to reach, Space to tick, Enter to
press, typing to fill. Nothing here clicks, so a control the keyboard cannot reach fails."""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_employee import upload

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"
MOST_TABS = 120


def focused(target: Locator) -> bool:
    return bool(target.evaluate("element => element === document.activeElement"))


def tab_to(page: Page, target: Locator) -> None:
    """Tab forward until the target has the focus, as a keyboard user would."""
    for _ in range(MOST_TABS):
        page.keyboard.press("Tab")
        if focused(target):
            return
    raise AssertionError(f"Tab never reached {target}")


@pytest.mark.parametrize("width", [1280, 390])
def test_share_and_revoke_with_the_keyboard_only(page, live_server, make_person, samples, width):
    page.set_viewport_size({"width": width, "height": 900})
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Kai {uuid.uuid4().hex[:4]}")
    title = f"Keyboard call {uuid.uuid4().hex[:6]}"
    recording = upload(live_server, employee, samples, title=title)

    sign_in(page, employee.login, PASSWORD)
    card = page.locator(f"#rec-{recording['id']}")
    expect(card).to_have_attribute("data-probe-status", "ok", timeout=30_000)

    tab_to(page, card.get_by_role("button", name="Share for coaching"))
    page.keyboard.press("Enter")
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    coach_box = dialog.get_by_label(coach.name)
    expect(coach_box).to_be_visible()

    tab_to(page, coach_box)
    page.keyboard.press("Space")
    expect(coach_box).to_be_checked()
    tab_to(page, page.locator("#share-purpose"))
    page.keyboard.type("Feedback on my call opening")
    tab_to(page, dialog.get_by_role("button", name="Confirm and share"))
    page.keyboard.press("Enter")

    expect(page.locator("#share-done")).to_be_visible()
    expect(page.locator("#done-coaches")).to_have_text(f"{coach.name} ({coach.login})")
    screenshot(page, f"keyboard-share-done-{width}")
    tab_to(page, page.get_by_role("link", name="Go to My shares"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/shares")

    share_card = page.locator("article.share-card", has_text=title)
    expect(share_card).to_have_count(1)
    share_id = share_card.get_attribute("id").removeprefix("share-")
    revoke = share_card.get_by_role("button", name="Revoke")
    tab_to(page, revoke)
    page.keyboard.press("Enter")
    confirm = page.locator("dialog.confirm-dialog")
    expect(confirm).to_be_visible()
    tab_to(page, confirm.get_by_role("button", name="Revoke now"))
    page.keyboard.press("Enter")

    expect(share_card.locator("[data-field=badge]")).to_have_text("Withdrawn")
    expect(share_card.get_by_role("button", name="Revoke")).to_have_count(0)
    screenshot(page, f"keyboard-share-revoked-{width}")
    after = requests.get(
        f"{live_server.url}/api/v1/shares/{share_id}", headers=employee.headers, timeout=10
    )
    assert after.json()["status"] == "revoked"
