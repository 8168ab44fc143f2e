"""The embeddable opt-in button: the example host page holds no token; on the click it gets a
short-lived upload-only credential from the agent's signed-in session, sends the call, and the
share dialog opens for the new draft in a new tab (finding 8 of issue 12)."""

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

    # No token anywhere in the host page.
    assert "cr_" not in page.content()
    expect(page.locator("#demo-token")).to_have_count(0)

    # Without a signed-in session there is no credential: said so, and nothing is sent.
    page.locator("#demo-audio").set_input_files(str(samples.call_wav))
    cookies = page.context.cookies()
    page.context.clear_cookies()
    with page.context.expect_page() as sign_in_tab:
        button.click()
    expect(status).to_contain_text("Sign in to consent-replay in this browser first")
    expect(status).to_have_class("cr-optin-status error")
    sign_in_tab.value.close()  # it showed the sign-in page; the agent could sign in there
    page.context.add_cookies(cookies)

    title = f"Softphone call {uuid.uuid4().hex[:6]}"
    sent: list[str] = []  # the files go through tus, then one JSON request makes the draft
    page.on(
        "request",
        lambda r: (
            sent.append(f"{r.method} {r.url.split('/api/v1/')[1].split('/')[0]}")
            if "/api/v1/" in r.url
            else None
        ),
    )
    page.locator("#demo-screen").set_input_files(str(samples.screen_webm))
    page.locator("#demo-audio").set_input_files(str(samples.call_wav))
    page.locator("#demo-title").fill(title)
    page.locator("#demo-informed").check()
    screenshot(page, "embed-example")
    credentials = []
    page.on(
        "response",
        lambda r: (
            credentials.append(r) if r.url.endswith("/api/v1/me/upload-credentials") else None
        ),
    )
    with page.context.expect_page() as opened:
        button.click()
    tab = opened.value
    expect(status).to_contain_text("Sent as a private draft", timeout=30_000)
    assert [r.status for r in credentials] == [201]
    made = credentials[0].json()
    assert made["scope"] == "upload"
    # The credential that sent the call can do nothing else, not even list the draft.
    listed = requests.get(
        f"{live_server.url}/api/v1/recordings",
        headers={"Authorization": f"Bearer {made['credential']}"},
        timeout=10,
    )
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "insufficient_scope"

    listing = requests.get(
        f"{live_server.url}/api/v1/recordings", headers=employee.headers, timeout=10
    ).json()["recordings"]
    assert [r["title"] for r in listing] == [title]
    recording = listing[0]
    assert sent.count("POST uploads") == 2 and sent.count("PATCH uploads") >= 2
    assert sent[-1] == "POST recordings"
    assert recording["parts"] == ["audio", "screen"]
    assert recording["customer_informed"] is True
    assert recording["agent_channel"] == "left"

    dialog = tab.locator("#share-dialog")
    expect(dialog).to_be_visible(timeout=20_000)
    expect(tab.locator("#share-recording-title")).to_have_text(title)
    expect(tab.locator(f"#rec-{recording['id']}")).to_be_visible()
    expect(tab.get_by_label(coach.name)).not_to_be_checked()  # no pre-selected coach
    # The coach is told apart: login and team, and a recently made account is marked.
    choice = tab.locator("#coach-list label", has_text=coach.login)
    expect(choice).to_contain_text(coach.name)
    expect(choice).to_contain_text(f"{coach.login} · no team")
    expect(choice.locator(".badge.new-account")).to_have_text("new account")
    expect(tab.locator("#share-customer")).not_to_be_checked()
    tab.wait_for_timeout(300)  # let the preview frame paint for the screenshot
    screenshot(tab, "embed-share-dialog")
