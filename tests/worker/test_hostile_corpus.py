"""The hostile corpus through the full API and the real worker (SPEC §7, untrusted input).

Some files are refused at upload (the content sniff), the rest are stored, encrypted, and
fail their share later with a message an employee can act on. The same worker process keeps
serving: a MediaRecorder WebM among them succeeds, and a normal share after them is ready.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.worker import corpus
from tests.worker.test_pipeline import (
    opt_in,
    scratch_dirs,
    share_state,
    store_names,
    upload,
    upload_ok,
)

REFUSED_AT_UPLOAD = [
    # (generator, field, file name, status, code)
    (corpus.zero_bytes, "screen", "screen.webm", 400, "empty_file"),
    (corpus.random_bytes, "screen", "screen.webm", 415, "not_media"),
    (corpus.hls_playlist, "screen", "playlist.m3u8", 415, "not_media"),
    (corpus.hls_playlist, "screen", "screen.mp4", 415, "not_media"),
    (corpus.concat_playlist, "audio", "call.wav", 415, "not_media"),
]

SIZE_REFUSED = re.escape("video is 30000×30000; the largest accepted is 7680×4320.")
UNREADABLE = re.escape("The screen file could not be read as audio or video.")
FAILED_LATER = {
    # name: (generator, field, file name, error the share ends with, probe verdict)
    "noise-after-webm-magic": (corpus.noise_after_magic, "screen", "s.webm", UNREADABLE, "failed"),
    "truncated-mp4": (corpus.truncated_mp4, "screen", "s.mp4", UNREADABLE, "failed"),
    "external-reference-mp4": (
        corpus.external_reference_mp4,
        "screen",
        "s.mp4",
        "could not be converted: the file is damaged",
        "ok",  # the header is fine; the samples it points at are never fetched
    ),
    "30000x30000-raw": (corpus.huge_picture_raw, "screen", "s.mkv", SIZE_REFUSED, "failed"),
    "30000x30000-vp8": (corpus.huge_picture_vp8, "screen", "s.webm", SIZE_REFUSED, "failed"),
    "ten-hour-audio": (
        corpus.ten_hour_wav,
        "audio",
        "call.wav",
        re.escape("The audio file lasts 10.0 h; the limit is 4.0 h."),
        "failed",
    ),
    "audio-only-as-screen": (
        corpus.audio_only,
        "screen",
        "screen.webm",
        re.escape("The screen file has no video in it."),
        "failed",
    ),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def test_non_media_is_refused_at_upload_and_stores_nothing(client, rt, make_person, hostile):
    employee = make_person("employee")
    before = store_names(rt, "recordings/")
    for make, field, filename, status, code in REFUSED_AT_UPLOAD:
        folder = hostile / f"{make.__name__}-{filename}"
        folder.mkdir()
        content = make(folder).read_bytes()
        response = upload(client, employee, {field: (content, filename)})
        assert response.status_code == status, (make.__name__, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == code and error["message"].startswith(f"The {field} file")
    assert store_names(rt, "recordings/") == before
    listing = client.get("/api/v1/recordings", headers=employee.headers).get_json()
    assert listing["recordings"] == []


def test_hostile_files_fail_their_share_and_the_worker_keeps_serving(
    client, rt, worker, make_person, samples, hostile
):
    employee, coach = make_person("employee"), make_person("coach")
    worker_pid = worker.process.pid
    pending = {}
    for name, (make, field, filename, error, probe_verdict) in FAILED_LATER.items():
        folder = hostile / name
        folder.mkdir()
        # Each its own employee: one person may have only three shares in preparation.
        owner = make_person("employee")
        recording = upload_ok(client, owner, {field: (make(folder), filename)})
        share = opt_in(client, owner, recording["id"], coach)
        pending[name] = (recording, share, error, probe_verdict, owner)
    recorder = hostile / "recorder"
    recorder.mkdir()
    live = upload_ok(client, employee, {"screen": (corpus.mediarecorder_webm(recorder), "r.webm")})
    live_share = opt_in(client, employee, live["id"], coach)

    def all_settled():
        states = {n: share_state(client, p[4], p[1]["id"]) for n, p in pending.items()}
        states["mediarecorder"] = share_state(client, employee, live_share["id"])
        return all(b["status"] != "processing" for b in states.values()) and states

    states = wait_for(all_settled, 180, "every hostile share to settle", interval=0.5)
    for name, (recording, share, error, probe_verdict, owner) in pending.items():
        body = states[name]
        assert body["status"] == "failed", (name, body)
        assert re.search(error, body["error"]), (name, body["error"])
        # plain words: no trace, no path of the worker's scratch files
        assert "Traceback" not in body["error"] and ".input" not in body["error"]
        assert str(rt.settings.scratch_dir) not in body["error"]
        assert "media" not in body or body.get("media") is None
        assert not store_names(rt, f"shares/{share['id']}/"), name
        assert not scratch_dirs(rt, share["id"]), name
        probed = wait_for(
            lambda r=recording, o=owner: (
                (b := client.get(f"/api/v1/recordings/{r['id']}", headers=o.headers))
                and b.get_json()["probe_status"] != "pending"
                and b.get_json()
            ),
            60,
            f"the probe of {name}",
        )
        assert probed["probe_status"] == probe_verdict, (name, probed)
        if probe_verdict == "failed":
            assert re.search(error, probed["probe_error"]), (name, probed["probe_error"])

    # The MediaRecorder WebM (no duration, no frame rate) succeeds, its length measured.
    recorded = states["mediarecorder"]
    assert recorded["status"] == "ready", recorded
    assert recorded["duration_s"] == pytest.approx(4.0, abs=0.3)
    live_after = client.get(f"/api/v1/recordings/{live['id']}", headers=employee.headers)
    assert live_after.get_json()["duration_s"] == pytest.approx(4.0, abs=0.3)

    # The same worker process, still serving: a normal share after the corpus is ready.
    normal = upload_ok(
        client,
        employee,
        {"screen": (samples.screen_webm, "s.webm"), "audio": (samples.call_wav, "c.wav")},
    )
    share = opt_in(client, employee, normal["id"], coach, trim={"start_s": 0, "end_s": 4})

    def ready():
        body = share_state(client, employee, share["id"])
        assert body["status"] in {"processing", "ready"}, body
        return body["status"] == "ready"

    wait_for(ready, 120, "a normal share after the corpus")
    assert worker.process.poll() is None and worker.process.pid == worker_pid
