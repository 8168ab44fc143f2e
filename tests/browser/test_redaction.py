"""The employee hides the customer's data in the share dialog (SPEC §12), in a real browser:
accept a suggestion, draw a cover with the mouse, add a blur with the keyboard, mute the
customer for a span, see the hidden still, share; the coach's rendition is covered there."""

from __future__ import annotations

import io
import subprocess
import uuid

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in, wait_share_ready
from tests.conftest import wait_for
from tests.worker.test_redacted_shares import screen_and_call

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def upload(live_server, person, files) -> dict:
    response = requests.post(
        f"{live_server.url}/api/v1/recordings",
        files={
            "screen": ("screen.webm", io.BytesIO(files["screen"].read_bytes()), "video/webm"),
            "audio": ("call.wav", io.BytesIO(files["audio"].read_bytes()), "audio/wav"),
        },
        data={"title": "Card dispute", "customer_informed": "true"},
        headers=person.headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def first_frame(video: bytes) -> np.ndarray:
    raw = subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-i", "pipe:0", "-frames:v", "1"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        input=video,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(360, 640, 3)


def test_a_redacted_share_made_in_the_dialog(page, live_server, make_person, tmp_path):
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Redaksjon {uuid.uuid4().hex[:4]}", password=PASSWORD)
    recording = upload(live_server, employee, screen_and_call(tmp_path))

    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, employee.login, PASSWORD)
    card = page.locator(f"#rec-{recording['id']}")
    expect(card).to_have_attribute("data-probe-status", "ok", timeout=60_000)
    page.reload()
    page.locator(f"#rec-{recording['id']}").get_by_role("button", name="Share for coaching").click()
    expect(page.locator("#share-dialog")).to_be_visible()
    wait_for(
        lambda: page.evaluate("document.getElementById('share-video').videoWidth > 0"),
        30,
        "the preview's picture",
    )
    expect(page.locator("#redaction-summary")).to_have_text("Nothing is hidden.")

    # 1. A suggestion, accepted: the worker read the national id on the screen.
    page.get_by_role("button", name="Find personal data on the screen").click()
    expect(page.locator("#suggestion-status")).to_contain_text("suggestion", timeout=120_000)
    expect(page.locator("#redaction-layer .suggestion").first).to_be_attached()
    page.get_by_role("button", name="Accept: cover the national identity number").click()

    # 2. A cover drawn with the mouse over the top-left of the picture (the card number).
    page.get_by_role("button", name="Draw a box").click()
    page.locator("#share-video").scroll_into_view_if_needed()
    layer = page.locator("#redaction-layer").bounding_box()
    page.mouse.move(layer["x"] + layer["width"] * 0.02, layer["y"] + layer["height"] * 0.03)
    page.mouse.down()
    page.mouse.move(layer["x"] + layer["width"] * 0.75, layer["y"] + layer["height"] * 0.25)
    page.mouse.up()
    expect(page.locator("#redaction-list li")).to_have_count(2)

    # 3. A blur added and moved with the keyboard only.
    page.select_option("#redaction-kind", "blur")
    page.locator("#redaction-draw").focus()
    page.keyboard.press("Enter")
    focused = page.locator("#redaction-layer .redaction-box.blur")
    expect(focused).to_be_focused()
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Alt+ArrowLeft")
    expect(page.locator("#redaction-list li")).to_have_count(3)

    # 4. The customer muted from 1 s to 3 s.
    page.evaluate("document.getElementById('share-video').currentTime = 1")
    page.select_option("#mute-channel", "customer")
    page.get_by_role("button", name="Mute from the playhead").click()
    page.evaluate("document.getElementById('share-video').currentTime = 3")
    wait_for(
        lambda: page.evaluate("document.getElementById('share-video').currentTime") == 3,
        10,
        "the playhead at 3 s",
    )
    page.get_by_role("button", name="To here: Mute 4").click()
    expect(page.locator("#redaction-list li").nth(3)).to_contain_text("0:01 – 0:03")
    expect(page.locator("#mute-bar .mute-span.customer")).to_have_count(1)

    page.get_by_role("button", name="See the hidden version at the playhead").click()
    expect(page.locator("#redaction-preview")).to_be_visible()
    expect(page.locator("#redaction-summary")).to_have_text(
        "Hidden from the coach: 2 covered areas, 1 blurred area, 1 muted span "
        "(the customer's voice)."
    )

    page.locator(f'#coach-list input[value="{coach.id}"]').check()
    page.locator("#share-purpose").fill("Handling a card dispute")
    page.locator("#share-customer").check()
    screenshot(page, "employee-share-redaction")
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#redaction").scroll_into_view_if_needed()
    screenshot(page, "employee-share-redaction-390")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Confirm and share").click()
    expect(page.locator("#share-done")).to_be_visible()

    # The share as applied, and the coach's rendition covered where the mouse drew.
    shares = requests.get(
        f"{live_server.url}/api/v1/shares", headers=employee.headers, timeout=10
    ).json()["shares"]
    [share] = [s for s in shares if s["recording_id"] == recording["id"]]
    kinds = sorted(item["kind"] for item in share["redactions"])
    assert kinds == ["blur", "cover", "cover", "mute"]
    [suggested] = [i for i in share["redactions"] if i.get("reason") == "national_id"]
    [drawn] = [i for i in share["redactions"] if i["kind"] == "cover" and "reason" not in i]
    assert drawn["box"]["x"] < 0.05 and drawn["box"]["w"] > 0.6
    [mute] = [i for i in share["redactions"] if i["kind"] == "mute"]
    assert mute["channel"] == "customer" and abs(mute["start_s"] - 1) < 0.2

    wait_share_ready(live_server, share["id"], coach.headers)
    video = requests.get(
        f"{live_server.url}/media/shares/{share['id']}/video", headers=coach.headers, timeout=60
    )
    assert video.status_code == 200
    frame = first_frame(video.content).astype(float)
    for item in (drawn, suggested):
        box = item["box"]
        x0, y0 = int(box["x"] * 640) + 3, int(box["y"] * 360) + 3
        x1, y1 = int((box["x"] + box["w"]) * 640) - 3, int((box["y"] + box["h"]) * 360) - 3
        inside = frame[y0:y1, x0:x1]
        assert inside.mean() < 20 and inside.std() < 4, item  # black, flat

    # The coach's player: the covered picture, wide and at 390 px.
    context = page.context.browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    try:
        coach_page = context.new_page()
        sign_in(coach_page, coach.login, PASSWORD)
        coach_page.goto(f"/coach/shares/{share['id']}")
        wait_for(
            lambda: coach_page.evaluate("(document.querySelector('video') || {}).readyState >= 2"),
            30,
            "the coach's player",
        )
        screenshot(coach_page, "coach-redacted-share")
        coach_page.set_viewport_size({"width": 390, "height": 844})
        screenshot(coach_page, "coach-redacted-share-390")
    finally:
        context.close()
