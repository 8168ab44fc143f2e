"""Upload → opt-in → a real worker makes the rendition → the coach plays → the owner revokes."""

from __future__ import annotations

import subprocess

from tests.media_helpers import wait_probed, wait_ready


def test_upload_share_play_revoke(client, worker, make_person, make_recording, make_share, rt):
    employee = make_person("employee")
    coach = make_person("coach")
    recording = make_recording(employee, customer_informed=True)
    assert recording["status"] == "draft"
    wait_probed(client, employee, recording["id"], timeout=60)
    share = make_share(
        employee, recording, coach, purpose="Call opening", trim={"start_s": 2, "end_s": 10}
    )
    assert share["receipt"].count(".") == 2
    body = wait_ready(client, coach, share["id"], timeout=120)
    video = client.get(body["media"]["video"], headers=coach.headers)
    assert video.status_code == 200
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "default=nw=1",
            "-",
        ],
        input=video.data,
        capture_output=True,
        check=True,
    )
    text = probe.stdout.decode()
    assert "codec_name=h264" in text and "codec_name=aac" in text
    duration = float(text.split("duration=")[1].split()[0])
    assert abs(duration - 8) <= 0.5

    partial = client.get(
        body["media"]["video"], headers={**coach.headers, "Range": "bytes=100-199"}
    )
    assert partial.status_code == 206
    assert partial.data == video.data[100:200]

    revoke = client.post(f"/api/v1/shares/{share['id']}/revoke", headers=employee.headers)
    assert revoke.status_code == 200, revoke.get_json()
    assert revoke.get_json()["key_destroyed"] is True
    assert client.get(body["media"]["video"], headers=coach.headers).status_code == 410
    assert list(rt.store.list(f"shares/{share['id']}/")) == []
