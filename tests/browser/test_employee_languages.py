"""The employee's pages in both languages (SPEC §14): axe-core finds no serious or critical
WCAG 2.2 AA violation on any of them, in English and in Norwegian, at 1280 and 390 px; the
share dialog shows the consent text of the page's language and keeps focus inside; at 390 px
the employee reads who watched and revokes in two taps. Screenshots of each page in both
languages go to tests/artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from app.services import policy
from tests.browser.conftest import assert_accessible, screenshot, sign_in
from tests.browser.test_employee import upload
from tests.conftest import wait_for

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"
PAGES = [("recordings", "/recordings"), ("record", "/record"), ("shares", "/shares"),
         ("my-data", "/my-data")]  # fmt: skip
WORDS = {
    "en": {"share": "Share for coaching", "revoke": "Revoke", "revoke_now": "Revoke now",
           "log": "Access log", "consent": "You are choosing to share"},
    "nb": {"share": "Del til veiledning", "revoke": "Trekk tilbake",
           "revoke_now": "Trekk tilbake nå", "log": "Tilgangslogg", "consent": "Du velger å dele"},
}  # fmt: skip


@pytest.fixture
def consent_texts(rt, make_person) -> None:
    """A policy with a consent text in each language, whatever earlier tests made of it."""
    admin = make_person("admin")
    with rt.db.session() as session:
        policy.update_policy(
            session,
            actor_id=admin.id,
            hard_upload_limit=rt.settings.max_upload_bytes,
            consent_texts={
                "en": "You are choosing to share this one recording for coaching.",
                "nb": "Du velger å dele dette ene opptaket til veiledning.",
            },
        )
        session.commit()


def choose_language(live_server, person, language: str) -> None:
    response = requests.patch(
        f"{live_server.url}/api/v1/me",
        json={"language": language},
        headers=person.headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def ready_share(live_server, employee, coach, samples) -> dict:
    recording = upload(live_server, employee, samples, title="Billing call", customer_informed=True)
    created = requests.post(
        f"{live_server.url}/api/v1/recordings/{recording['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "Call opening", "expires_in_days": 5},
        headers=employee.headers,
        timeout=30,
    )
    assert created.status_code == 202, created.text
    share_id = created.json()["id"]

    def ready():
        body = requests.get(
            f"{live_server.url}/api/v1/shares/{share_id}", headers=employee.headers, timeout=10
        ).json()
        assert body["status"] != "failed", body
        return body["status"] == "ready"

    wait_for(ready, 180, "the share to be ready")
    # The coach watched once: the access log has a row to read.
    view = requests.post(
        f"{live_server.url}/api/v1/shares/{share_id}/views", headers=coach.headers, timeout=10
    )
    assert view.status_code == 201, view.text
    return {"recording": recording, "share_id": share_id}


@pytest.mark.parametrize("language", ["en", "nb"])
def test_every_employee_page_is_accessible(
    page, live_server, make_person, samples, consent_texts, language
):
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Maren {uuid.uuid4().hex[:4]}")
    made = ready_share(live_server, employee, coach, samples)
    upload(live_server, employee, samples, title="Second call", customer_informed=False)
    choose_language(live_server, employee, language)
    sign_in(page, employee.login, PASSWORD)
    expect(page.locator("html")).to_have_attribute("lang", language)

    receipt = ("receipt", f"/shares/{made['share_id']}/receipt")
    for name, path in [*PAGES, receipt]:
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert_accessible(page)
            suffix = "" if width == 1280 else "-390"
            screenshot(page, f"employee-{name}-{language}{suffix}")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path} is {scroll} px wide at {width} px"

    # The readable receipt: the coach by name, the consent text as shown, and on paper
    # nothing but the receipt.
    page.goto(receipt[1])
    expect(page.locator(".receipt-facts")).to_contain_text(coach.name)
    expect(page.locator(".consent-text")).to_contain_text(WORDS["en"]["consent"])
    page.emulate_media(media="print")
    screenshot(page, f"employee-receipt-print-{language}")
    expect(page.locator(".topbar")).to_be_hidden()
    page.emulate_media(media="screen")

    # The share dialog: its consent text in the page's language, axe on it, focus inside.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/recordings")
    second = page.locator(".recording", has_text="Second call")
    expect(second).to_have_attribute("data-probe-status", "ok", timeout=30_000)
    second.get_by_role("button", name=WORDS[language]["share"]).click()
    dialog = page.locator("#share-dialog")
    expect(dialog.locator("#consent-text")).to_contain_text(WORDS[language]["consent"])
    assert_accessible(page)
    screenshot(page, f"employee-share-dialog-{language}")
    for _ in range(40):  # Tab never leaves the open dialog
        page.keyboard.press("Tab")
        assert page.evaluate(
            "document.getElementById('share-dialog').contains(document.activeElement)"
        )
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Focus goes back to the button that opened it.
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == WORDS[language]["share"]


@pytest.mark.parametrize("language", ["nb", "en"])
def test_review_and_revoke_in_two_taps_on_a_phone(
    browser, live_server, make_person, samples, language
):
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Ola {uuid.uuid4().hex[:4]}")
    made = ready_share(live_server, employee, coach, samples)
    choose_language(live_server, employee, language)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, has_touch=True
    )
    phone = context.new_page()
    try:
        sign_in(phone, employee.login, PASSWORD)
        phone.goto("/shares")
        card = phone.locator(f"#share-{made['share_id']}")
        card.locator("summary", has_text=WORDS[language]["log"]).tap()
        expect(card.locator('details[data-panel="access"] table')).to_contain_text(coach.name)
        assert_accessible(phone)
        screenshot(phone, f"employee-shares-log-{language}-390")
        card.get_by_role("button", name=WORDS[language]["revoke"], exact=True).tap()  # one
        confirm = phone.locator("dialog.confirm-dialog")
        assert_accessible(phone)
        screenshot(phone, f"employee-revoke-confirm-{language}-390")
        confirm.get_by_role("button", name=WORDS[language]["revoke_now"]).tap()  # two
        expect(card.locator('[data-field="badge"]')).to_have_attribute("class", "badge revoked")
        # The withdrawn card leaves the active list at once.
        expect(phone.locator(".ended-list").locator(f"#share-{made['share_id']}")).to_have_count(1)
        status = requests.get(
            f"{live_server.url}/api/v1/shares/{made['share_id']}",
            headers=employee.headers,
            timeout=10,
        ).json()["status"]
        assert status == "revoked"
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_the_end_is_whole_days_or_a_date_within_the_policy(page, live_server, make_person, samples):
    employee = make_person("employee", password=PASSWORD)
    make_person("coach")
    upload(live_server, employee, samples, title="Date call", customer_informed=False)
    sign_in(page, employee.login, PASSWORD)
    card = page.locator(".recording", has_text="Date call")
    expect(card).to_have_attribute("data-probe-status", "ok", timeout=30_000)
    card.get_by_role("button", name="Share for coaching").click()
    policy = requests.get(
        f"{live_server.url}/api/v1/policy", headers=employee.headers, timeout=10
    ).json()
    end = page.locator("#share-end-date")
    expect(end).to_have_attribute("max", re.compile(r"\d{4}-\d{2}-\d{2}"))
    # A date chosen sets the days; the days set the date.
    page.locator("#share-days").fill("3")
    three = end.input_value()
    page.locator("#share-days").fill("1")
    end.fill(three)
    end.dispatch_event("change")
    expect(page.locator("#share-days")).to_have_value("3")
    # 2.5 days is not quietly 2: refused, said, and nothing is sent.
    page.locator("#coach-list input").first.check()
    page.locator("#share-purpose").fill("Half days")
    page.locator("#share-days").fill("2.5")
    page.get_by_role("button", name="Confirm and share").click()
    error = page.locator("#share-error")
    expect(error).to_contain_text(f"1 to {policy['max_share_days']} days")
    expect(error).to_be_focused()
