"""Capture in the browser with Chromium's fake devices: record (sent through tus while it
records), discard (deleted on the server), save as a draft; a connection lost while recording
loses nothing."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import wait_for

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def recordings_of(live_server, person) -> list[dict]:
    response = requests.get(
        f"{live_server.url}/api/v1/recordings", headers=person.headers, timeout=10
    )
    assert response.status_code == 200
    return response.json()["recordings"]


def unfinished_of(live_server, person) -> list[dict]:
    response = requests.get(f"{live_server.url}/api/v1/uploads", headers=person.headers, timeout=10)
    assert response.status_code == 200
    return response.json()["uploads"]


def test_record_send_as_it_records_discard_then_save(page, live_server, make_person, tmp_path):
    employee = make_person("employee", password=PASSWORD)
    patches: list[int] = []
    page.on(
        "request",
        lambda request: (
            patches.append(len(request.post_data_buffer or b""))
            if "/api/v1/uploads/" in request.url and request.method == "PATCH"
            else None
        ),
    )
    sign_in(page, employee.login, PASSWORD)
    page.goto("/record")
    expect(page.locator("#indicator")).to_be_hidden()
    expect(page.locator("#about-card")).to_contain_text("at most the last few seconds")
    screenshot(page, "capture-idle")

    # A first take, discarded: it was sent while recording, and Discard deletes it there.
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#indicator")).to_be_visible()
    expect(page.locator("#indicator")).to_contain_text("Recording")
    expect(page.locator("#timer")).to_have_text("0:01", timeout=5_000)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#save-card")).to_be_visible(timeout=20_000)
    assert len(unfinished_of(live_server, employee)) == 1
    page.get_by_role("button", name="Discard").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Discard").click()
    expect(page.locator("#save-card")).to_be_hidden()
    wait_for(lambda: unfinished_of(live_server, employee) == [], 10, "the upload's deletion")
    assert recordings_of(live_server, employee) == []

    # The real take: screen (the fake-ui flag picks one) + the fake microphone, sent while
    # it records: PATCHes go out before Stop, and the page says how much has arrived.
    patches.clear()
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#indicator")).to_be_visible()
    expect(page.locator("#live")).to_be_visible()
    mode = page.evaluate(
        "document.querySelector('#live').srcObject ? "
        "document.querySelector('#live').srcObject.getVideoTracks()[0].label : ''"
    )
    expect(page.locator("#timer")).to_have_text("0:02", timeout=6_000)
    expect(page.locator("#sent")).to_contain_text("recorded")
    screenshot(page, "capture-recording")
    expect(page.locator("#timer")).to_have_text("0:04", timeout=8_000)
    wait_for(lambda: len(patches) >= 1, 15, "a PATCH while recording")
    sent_before_stop = len(patches)
    page.get_by_role("button", name="Stop").click()

    expect(page.locator("#save-card")).to_be_visible(timeout=20_000)
    expect(page.locator("#indicator")).to_be_hidden()
    expect(page.locator("#review-facts")).to_contain_text("sent, not yet saved")
    expect(page.locator("#review-facts")).to_contain_text("Screen + microphone")
    assert sent_before_stop >= 1 and len(patches) > sent_before_stop
    [upload] = unfinished_of(live_server, employee)
    assert upload["complete"] and upload["length"] == upload["offset"] > 0
    title = f"Captured call {uuid.uuid4().hex[:6]}"
    page.locator("#title").fill(title)
    page.get_by_label("The customer was informed").check()
    screenshot(page, "capture-review")

    page.get_by_role("button", name="Save to My recordings").click()
    expect(page.locator("#done-card")).to_be_visible(timeout=30_000)
    screenshot(page, "capture-saved")
    assert unfinished_of(live_server, employee) == []

    rows = recordings_of(live_server, employee)
    assert [r["title"] for r in rows] == [title]
    recording = rows[0]
    assert recording["customer_informed"] is True
    assert recording["parts"] == ["screen"]
    assert mode, "no screen track: the fake-ui flag should pick a screen"

    page.get_by_role("link", name="See it in My recordings").click()
    card = page.locator(f"#rec-{recording['id']}")
    expect(card).to_be_visible()
    expect(card.locator(".recording-title")).to_have_text(title)
    expect(card).to_have_attribute("data-probe-status", "ok", timeout=30_000)
    probed = wait_for(
        lambda: next(r for r in recordings_of(live_server, employee) if r["duration_s"]),
        20,
        "the probe",
    )
    assert probed["has_video"] is True
    assert 2.0 <= probed["duration_s"] <= 8.0
    assert probed["audio_channels"] == 1
    screenshot(page, "capture-in-recordings")

    # The upload is the browser's WebM with VP8/VP9 video and Opus audio.
    media = requests.get(
        f"{live_server.url}/media/recordings/{recording['id']}/screen",
        headers=employee.headers,
        timeout=30,
    )
    assert media.status_code == 200
    assert media.headers["Content-Type"].startswith("video/webm")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "-"],
        input=media.content,
        capture_output=True,
        check=True,
    )
    codecs = set(probe.stdout.decode().split())
    assert codecs & {"vp8", "vp9"} and "opus" in codecs, codecs


# Every piece the page's MediaRecorder hands out, kept aside by the test (the page keeps none).
KEEP_THE_PIECES = """
  window.__pieces = [];
  const add = MediaRecorder.prototype.addEventListener;
  MediaRecorder.prototype.addEventListener = function (type, listener, ...rest) {
    if (type !== "dataavailable") return add.call(this, type, listener, ...rest);
    const keeping = (event) => {
      if (event.data && event.data.size) window.__pieces.push(event.data);
      return listener(event);
    };
    return add.call(this, type, keeping, ...rest);
  };
"""
RECORDED_SHA256 = """async () => {
  const bytes = await new Blob(window.__pieces).arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}"""


def test_a_connection_lost_while_recording_loses_nothing(page, live_server, make_person):
    """The recorder goes on recording while the network is gone, sends what it missed when it
    is back (by itself), and the draft is exactly what MediaRecorder made."""
    employee = make_person("employee", password=PASSWORD)
    failed: list[str] = []
    page.on(
        "requestfailed",
        lambda request: failed.append(request.method) if "/api/v1/uploads" in request.url else None,
    )
    page.add_init_script(KEEP_THE_PIECES)
    sign_in(page, employee.login, PASSWORD)
    page.goto("/record")
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#timer")).to_have_text("0:02", timeout=6_000)
    page.context.set_offline(True)
    expect(page.locator("#timer")).to_have_text("0:09", timeout=12_000)  # 7 s without a network
    page.context.set_offline(False)
    expect(page.locator("#timer")).to_have_text("0:12", timeout=6_000)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#save-card")).to_be_visible(timeout=60_000)
    assert failed, "no upload request failed: the test did not cut the connection"

    title = f"Recorded through a cut {uuid.uuid4().hex[:6]}"
    page.locator("#title").fill(title)
    page.get_by_label("The customer was informed").check()
    page.get_by_role("button", name="Save to My recordings").click()
    expect(page.locator("#done-card")).to_be_visible(timeout=30_000)
    [draft] = [r for r in recordings_of(live_server, employee) if r["title"] == title]
    recorded = page.evaluate(RECORDED_SHA256)
    assert draft["media_sha256"]["screen"] == recorded


def test_recording_source_holds_only_what_the_server_has_not_acknowledged(page):
    """RecordingSource (tus.js), what tus-js-client reads the recording from: a slice is the
    recording's bytes from the offset asked for, it waits for a chunk's worth (16 KiB) unless the
    recording has ended, and the pieces before that offset (the server has them) are let go —
    so while recording the page holds only the last few pieces, not the recording, and no
    piece's Blob."""
    page.goto("/login")  # any page of the app: the module is imported under its CSP
    seen = page.evaluate(
        """async () => {
             const { RecordingSource } = await import('/static/js/tus.js');
             // Answer as soon as a chunk's worth is there (the batching is tested below).
             const source = new RecordingSource('video/webm', { batch: 16384, waitMs: 0 });
             const piece = (n) => new Blob([new Uint8Array(10000).fill(n)]);
             // The request bodies are bytes of the page's own, not Blobs (tus.js says why).
             const bytes = async (value) => {
               if (!(value instanceof Uint8Array)) throw new Error(`a ${value} for a body`);
               return value;
             };
             const seen = {};
             let answered = false;
             const asked = source.slice(0, 8 << 20).then((slice) => {
               answered = true;
               return slice;
             });
             source.push(piece(1));
             await new Promise((resolve) => setTimeout(resolve, 100));
             seen.waited = !answered; // 10 000 bytes: less than a chunk
             source.push(piece(2));
             const first = await asked;
             seen.first = [first.value.size, first.done, source.held, source.parts.length];
             source.push(piece(3));
             source.push(piece(4));
             // The server has 16 384 bytes: piece 1 (0-10 000) goes, piece 2 is still needed.
             const second = await source.slice(16384, 8 << 20);
             const data = await bytes(second.value);
             seen.second = [second.value.size, second.done, source.held, source.parts.length];
             seen.secondBytes = [data[0], data[3615], data[3616], data[data.length - 1]];
             // It has 32 768: pieces 2 and 3 go too; the recording ends with piece 4's rest.
             source.end();
             const last = await source.slice(32768, 8 << 20);
             seen.last = [last.value.size, last.done, source.held, source.parts.length];
             seen.lastBytes = Array.from(new Set(await bytes(last.value)));
             return seen;
           }"""
    )
    assert seen["waited"] is True
    assert seen["first"] == [20000, False, 20000, 2]
    assert seen["second"] == [40000 - 16384, False, 30000, 3]
    assert seen["secondBytes"] == [2, 2, 3, 4]
    assert seen["last"] == [40000 - 32768, True, 10000, 1]
    assert seen["lastBytes"] == [4]


def test_the_recorder_sends_every_few_seconds_not_every_second(page):
    """Each request leaves garbage the browser keeps until V8's next collection, so the
    recorder's source answers tus-js-client once a batch has built up, or once whole chunks
    have waited a while (at most a few seconds of recording wait), or at the end."""
    page.goto("/login")
    seen = page.evaluate(
        """async () => {
             const { RecordingSource } = await import('/static/js/tus.js');
             const piece = () => new Blob([new Uint8Array(10000).fill(7)]);
             const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
             const seen = {};
             const defaults = new RecordingSource('video/webm');
             seen.defaults = [defaults.batch, defaults.waitMs];

             const waits = new RecordingSource('video/webm', { batch: 65536, waitMs: 600 });
             let answered = null;
             waits.slice(0, 8 << 20).then((slice) => { answered = slice.value.size; });
             waits.push(piece());
             waits.push(piece());
             await sleep(200);
             seen.before = answered;        // 20 000 bytes, under the batch, not waited enough
             await sleep(700);
             seen.after = answered;         // waited: sent as it is

             const fills = new RecordingSource('video/webm', { batch: 65536, waitMs: 60000 });
             const asked = fills.slice(0, 8 << 20);
             for (let i = 0; i < 7; i += 1) fills.push(piece());
             seen.batch = (await asked).value.size;  // 70 000 >= the batch: at once

             const ends = new RecordingSource('video/webm', { batch: 65536, waitMs: 60000 });
             const last = ends.slice(0, 8 << 20);
             ends.push(piece());
             ends.end();
             const slice = await last;
             seen.end = [slice.value.size, slice.done];
             return seen;
           }"""
    )
    assert seen["defaults"][0] >= 128 * 1024 and 1000 <= seen["defaults"][1] <= 5000
    assert seen["before"] is None
    assert seen["after"] == 20000
    assert seen["batch"] == 70000
    assert seen["end"] == [10000, True]


def test_a_piece_the_page_cannot_read_stops_the_upload_with_its_reason(page):
    """A piece lost between MediaRecorder and the source would make the upload a different
    recording: the source refuses to go on past it rather than send the rest without it."""
    page.goto("/login")
    seen = page.evaluate(
        """async () => {
             const { RecordingSource } = await import('/static/js/tus.js');
             const source = new RecordingSource('video/webm', { batch: 16384, waitMs: 0 });
             const unreadable = { size: 5, arrayBuffer: () => Promise.reject(new Error('gone')) };
             source.push(new Blob([new Uint8Array(20000)]));
             const first = await source.slice(0, 8 << 20);
             source.push(unreadable);
             source.push(new Blob([new Uint8Array(20000)]));
             const second = await source.slice(first.value.size, 8 << 20).then(
               () => 'answered', (error) => error.message);
             return [first.value.size, second];
           }"""
    )
    assert seen == [20000, "gone"]
