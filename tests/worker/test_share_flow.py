"""Upload → opt-in → a real worker makes the rendition → the coach plays → the owner revokes."""

from __future__ import annotations

import io
import subprocess

from tests.conftest import wait_for


def upload(client, person, samples, **fields):
    data = {
        "screen": (io.BytesIO(samples.screen_webm.read_bytes()), "screen.webm"),
        "audio": (io.BytesIO(samples.call_wav.read_bytes()), "call.wav"),
        "title": fields.pop("title", "A call about an invoice"),
        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()},
    }
    response = client.post(
        "/api/v1/recordings", data=data, headers=person.headers, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_upload_share_play_revoke(client, worker, make_person, samples, rt):
    employee = make_person("employee")
    coach = make_person("coach")
    recording = upload(client, employee, samples, customer_informed=True)
    assert recording["status"] == "draft"
    wait_for(
        lambda: (
            client.get(
                f"/api/v1/recordings/{recording['id']}", headers=employee.headers
            ).get_json()["probe_status"]
            == "ok"
        ),
        60,
        "the probe",
    )
    response = client.post(
        f"/api/v1/recordings/{recording['id']}/shares",
        json={
            "coach_ids": [str(coach.id)],
            "purpose": "Call opening",
            "expires_in_days": 7,
            "trim": {"start_s": 2, "end_s": 10},
        },
        headers=employee.headers,
    )
    assert response.status_code == 202, response.get_json()
    share = response.get_json()
    assert share["receipt"].count(".") == 2

    def ready():
        body = client.get(f"/api/v1/shares/{share['id']}", headers=coach.headers).get_json()
        assert body["status"] != "failed", body
        return body["status"] == "ready" and body

    body = wait_for(ready, 120, "the share to be ready")
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
