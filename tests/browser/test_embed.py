"""The embeddable opt-in button: the example host page sends the call with the agent's token,
the draft is created, and the share dialog opens for it in a new tab."""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def test_embedded_button_sends_the_call_and_opens_the_share_dialog(
    page, live_server, make_person, samples
):
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Embed {uuid.uuid4().hex[:4]}")
    sign_in(page, employee.login, PASSWORD)
    page.goto("/embed/example")
    button = page.get_by_role("button", name="Share this call for coaching")
    status = page.locator("#demo-status")

    # Nothing picked: nothing is sent.
    button.click()
    expect(status).to_contain_text("Pick the call's screen video or audio first.")

    # A wrong token is refused by the API, and said so on the host page.
    page.locator("#demo-token").fill("cr_not-a-real-token")
    page.locator("#demo-audio").set_input_files(str(samples.call_wav))
    button.click()
    expect(status).to_contain_text("The API token is not valid.")
    expect(status).to_have_class("cr-optin-status error")
    for _ in range(50):  # the tab opened on the click is closed again
        if len(page.context.pages) == 1:
            break
        page.wait_for_timeout(100)
    assert len(page.context.pages) == 1

    title = f"Softphone call {uuid.uuid4().hex[:6]}"
    page.locator("#demo-token").fill(employee.token)
    page.locator("#demo-screen").set_input_files(str(samples.screen_webm))
    page.locator("#demo-audio").set_input_files(str(samples.call_wav))
    page.locator("#demo-title").fill(title)
    page.locator("#demo-informed").check()
    screenshot(page, "embed-example")
    with page.context.expect_page() as opened:
        button.click()
    tab = opened.value
    expect(status).to_contain_text("Sent as a private draft", timeout=30_000)

    listing = requests.get(
        f"{live_server.url}/api/v1/recordings", headers=employee.headers, timeout=10
    ).json()["recordings"]
    assert [r["title"] for r in listing] == [title]
    recording = listing[0]
    assert recording["parts"] == ["audio", "screen"]
    assert recording["customer_informed"] is True
    assert recording["agent_channel"] == "left"

    dialog = tab.locator("#share-dialog")
    expect(dialog).to_be_visible(timeout=20_000)
    expect(tab.locator("#share-recording-title")).to_have_text(title)
    expect(tab.locator(f"#rec-{recording['id']}")).to_be_visible()
    expect(tab.get_by_label(coach.name)).not_to_be_checked()  # no pre-selected coach
    expect(tab.locator("#share-customer")).not_to_be_checked()
    tab.wait_for_timeout(300)  # let the preview frame paint for the screenshot
    screenshot(tab, "embed-share-dialog")
