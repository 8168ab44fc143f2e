"""The embeddable opt-in button: the example host page holds no token; on the click it gets a
short-lived upload-only credential from the agent's signed-in session, sends the call, and the
share dialog opens for the new draft in a new tab (finding 8 of issue 12)."""

from __future__ import annotations

import re
import subprocess
import uuid

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import (
    assert_accessible,
    screenshot,
    sign_in,
    wait_share_ready,
)
from tests.browser.test_employee_languages import choose_language
from tests.chromium import watch_for_script_errors
from tests.conftest import wait_for
from tests.worker.test_redacted_shares import screen_and_call

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


def _gray(image: bytes, width: int = 640, height: int = 360) -> np.ndarray:
    """A picture (JPEG, or the first frame of a video) as grey pixels at a known size."""
    raw = subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-i", "pipe:0", "-frames:v", "1"),
            *("-vf", f"scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        input=image,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(float)


@pytest.mark.parametrize("language", ["en", "nb"])
def test_a_share_made_through_the_button_carries_the_redactions(
    page, live_server, make_person, tmp_path, language
):
    """The dialog the button opens has the redaction tools (it is the app's own share dialog,
    under the agent's session: the button's upload credential reaches none of it). Through it: a
    cover by keyboard, a blur by mouse, a suggestion accepted, mute spans marked on the
    waveform by drag and by keyboard, the still; the share carries them, the poster is flat
    under the cover."""
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Embed {uuid.uuid4().hex[:4]}")
    choose_language(live_server, employee, language)
    files = screen_and_call(tmp_path)
    sign_in(page, employee.login, PASSWORD)
    page.goto("/embed/example")
    title = f"Card call {uuid.uuid4().hex[:6]}"
    page.locator("#demo-screen").set_input_files(str(files["screen"]))
    page.locator("#demo-audio").set_input_files(str(files["audio"]))
    page.locator("#demo-title").fill(title)
    page.locator("#demo-informed").check()
    credentials = []
    page.on(
        "response",
        lambda r: (
            credentials.append(r) if r.url.endswith("/api/v1/me/upload-credentials") else None
        ),
    )
    with page.context.expect_page() as opened:
        page.locator("#demo-optin").click()
    tab = opened.value
    errors = watch_for_script_errors(tab)
    sent = re.compile("Sent as a private draft|Sendt som privat utkast")  # the host's language
    expect(page.locator("#demo-status")).to_contain_text(sent, timeout=60_000)
    recording = requests.get(
        f"{live_server.url}/api/v1/recordings", headers=employee.headers, timeout=10
    ).json()["recordings"][0]
    assert recording["title"] == title

    # The button's credential stays upload-only: not the suggestions, not the share.
    upload_only = {"Authorization": f"Bearer {credentials[0].json()['credential']}"}
    for path in (
        f"recordings/{recording['id']}/redaction-suggestions",
        f"recordings/{recording['id']}/shares",
    ):
        refused = requests.post(
            f"{live_server.url}/api/v1/{path}", json={}, headers=upload_only, timeout=10
        )
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_scope"

    tab.set_viewport_size({"width": 1280, "height": 900})
    expect(tab.locator("html")).to_have_attribute("lang", language)
    expect(tab.locator("#share-dialog")).to_be_visible(timeout=20_000)
    wait_for(
        lambda: tab.evaluate("document.getElementById('share-video').videoWidth > 0"),
        30,
        "the preview's picture",
    )
    # The draft's waveform, drawn in the page from the preview's own audio.
    wait_for(
        lambda: tab.evaluate(
            """(() => { const c = document.getElementById('mute-wave-canvas');
                if (!c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
                return false; })()"""
        ),
        60,
        "the waveform",
    )
    nothing = tab.locator("#redaction-summary").inner_text()

    # 1. A cover by keyboard: added, moved right and down, made taller.
    tab.select_option("#redaction-kind", "cover")
    tab.locator("#redaction-draw").focus()
    tab.keyboard.press("Enter")
    expect(tab.locator("#redaction-layer .redaction-box.cover")).to_be_focused()
    for key in ("ArrowRight", "ArrowRight", "ArrowDown", "Alt+ArrowDown"):
        tab.keyboard.press(key)
    # 2. A blur drawn with the mouse over the top-left corner, then deleted by keyboard and
    # drawn again: Delete works on a focused box.
    tab.select_option("#redaction-kind", "blur")
    for _ in range(2):
        tab.locator("#redaction-draw").click()
        layer = tab.locator("#redaction-layer").bounding_box()
        tab.mouse.move(layer["x"] + layer["width"] * 0.02, layer["y"] + layer["height"] * 0.03)
        tab.mouse.down()
        tab.mouse.move(layer["x"] + layer["width"] * 0.30, layer["y"] + layer["height"] * 0.20)
        tab.mouse.up()
        expect(tab.locator("#redaction-layer .redaction-box.blur")).to_have_count(1)
        if _ == 0:
            tab.locator("#redaction-layer .redaction-box.blur").focus()
            tab.keyboard.press("Delete")
            expect(tab.locator("#redaction-layer .redaction-box.blur")).to_have_count(0)
    # 3. A suggestion from the worker's OCR, accepted.
    tab.locator("#suggestion-find").click()
    expect(tab.locator("#suggestion-list li").first).to_be_visible(timeout=120_000)
    tab.locator("#suggestion-list li").first.locator("button.button").click()
    # 4. The customer muted by dragging across the waveform from 1 s to 3 s (of 4 s).
    tab.select_option("#mute-channel", "customer")
    wave = tab.locator("#mute-wave")
    wave.scroll_into_view_if_needed()
    box = wave.bounding_box()
    tab.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    tab.mouse.down()
    tab.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=4)
    tab.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=4)
    tab.mouse.up()
    expect(tab.locator("#mute-bar .mute-span.customer")).to_have_count(1)
    # 5. The agent muted from 0 s to 2 s with the keyboard on the waveform.
    tab.select_option("#mute-channel", "agent")
    wave.focus()
    tab.keyboard.press("Home")
    tab.keyboard.press("Enter")
    expect(tab.locator("#mute-bar .mute-span.marking")).to_have_count(1)
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowRight")
    expect(wave).to_have_attribute("aria-valuenow", "2")
    tab.keyboard.press("Enter")
    expect(tab.locator("#mute-bar .mute-span.agent")).to_have_count(1)
    expect(tab.locator("#mute-bar .mute-span.marking")).to_have_count(0)
    # The still of the redacted picture, and the summary of what is hidden.
    tab.evaluate("document.getElementById('share-video').currentTime = 1")
    tab.locator("#redaction-preview-button").click()
    expect(tab.locator("#redaction-preview")).to_be_visible()
    expect(tab.locator("#redaction-list li")).to_have_count(5)
    summary = tab.locator("#redaction-summary")
    expect(summary).not_to_have_text(nothing)
    if language == "en":
        expect(summary).to_have_text(
            "Hidden from the coach: 2 covered areas, 1 blurred area, 1 muted span (the "
            "customer's voice), 1 muted span (your voice)."
        )

    tab.locator(f'#coach-list input[value="{coach.id}"]').check()
    tab.locator("#share-purpose").fill("Handling a card dispute")
    tab.locator("#share-customer").check()
    assert_accessible(tab)
    screenshot(tab, f"embed-share-redaction-{language}")
    tab.set_viewport_size({"width": 390, "height": 844})
    tab.locator("#redaction").scroll_into_view_if_needed()
    assert_accessible(tab)
    screenshot(tab, f"embed-share-redaction-{language}-390")
    tab.set_viewport_size({"width": 1280, "height": 900})
    tab.locator("#share-confirm").click()
    expect(tab.locator("#share-done")).to_be_visible()
    assert errors == []

    shares = requests.get(
        f"{live_server.url}/api/v1/shares", headers=employee.headers, timeout=10
    ).json()["shares"]
    [share] = [s for s in shares if s["recording_id"] == recording["id"]]
    items = share["redactions"]
    assert sorted(i["kind"] for i in items) == ["blur", "cover", "cover", "mute", "mute"]
    [keyed] = [i for i in items if i["kind"] == "cover" and "reason" not in i]
    assert keyed["box"] == pytest.approx({"x": 0.37, "y": 0.41, "w": 0.3, "h": 0.16}, abs=0.002)
    assert keyed["start_s"] == 0 and keyed["end_s"] == pytest.approx(4, abs=0.1)
    assert [i for i in items if i.get("reason")], "the accepted suggestion"
    [blur] = [i for i in items if i["kind"] == "blur"]
    assert blur["box"]["x"] < 0.05 and 0.2 < blur["box"]["w"] < 0.35
    mutes = {i["channel"]: i for i in items if i["kind"] == "mute"}
    assert mutes["customer"]["start_s"] == pytest.approx(1, abs=0.5)
    assert mutes["customer"]["end_s"] == pytest.approx(3, abs=0.5)
    assert mutes["agent"]["start_s"] == pytest.approx(0, abs=0.5)
    assert mutes["agent"]["end_s"] == pytest.approx(2, abs=0.5)

    wait_share_ready(live_server, share["id"], employee.headers)
    poster = requests.get(
        f"{live_server.url}/media/shares/{share['id']}/poster.jpg",
        headers=coach.headers,
        timeout=30,
    )
    assert poster.status_code == 200
    frame = _gray(poster.content)
    b = keyed["box"]
    x0, y0 = int(b["x"] * 640) + 4, int(b["y"] * 360) + 4
    x1, y1 = int((b["x"] + b["w"]) * 640) - 4, int((b["y"] + b["h"]) * 360) - 4
    inside = frame[y0:y1, x0:x1]
    assert inside.mean() < 20 and inside.std() < 4  # the cover: black and flat
    assert frame.std() > 20  # and the poster is a picture, not all black
