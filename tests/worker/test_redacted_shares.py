"""Redacted shares and redaction suggestions through the API, the real worker and real ffmpeg,
tesseract and S3 stand-in (SPEC §12).

What the coach receives is read back as the coach gets it (the media endpoints) and checked by
its pixels and samples: OCR reads the planted number in an unredacted share and nothing of it
under a blur; a muted span is digital silence on the chosen channel only. After each job the
worker's scratch directory is empty, and a job that fails under redaction leaves nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.models import MediaObject, Recording
from tests.app.db_scan import text_columns_holding
from tests.conftest import create_person, wait_for
from tests.media_helpers import (
    error_code,
    flipped_byte,
    upload_recording,
    wait_probed,
    wait_ready,
)
from tests.worker.test_ocr import CARD, FNR, INVALID_ID, spaced
from tests.worker.test_redaction_media import (
    AGENT_HZ,
    CUSTOMER_HZ,
    NUMBER,
    NUMBER_PX,
    box,
    dbfs,
    decode_audio,
    frames,
    ocr_digits,
    region,
    run,
    span,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
W, H, FPS, SECONDS = 640, 360, 10, 4
MUTE = (1.0, 2.0)
# Lines for the suggestions: a valid national id and card, an id failing its checksum.
LINES = [
    ("Fnr", spaced(FNR, 6, 5), 150),
    ("Kort", spaced(CARD, 4, 4, 4, 4), 210),
    ("Saksnr", spaced(INVALID_ID, 6, 5), 270),
]


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


def screen_and_call(folder: Path) -> dict[str, Path]:
    """A 4 s screen with the planted card number and the lines of personal data, and a stereo
    call (the agent's 440 Hz left, the customer's 1000 Hz right)."""
    screen, call = folder / "screen.webm", folder / "call.wav"
    draw = [
        f"drawtext=fontfile={FONT}:text='{NUMBER}':x={NUMBER_PX[0] + 6}:y={NUMBER_PX[1] + 10}"
        ":fontsize=34:fontcolor=black"
    ]
    for label, value, y in LINES:
        draw.append(f"drawtext=fontfile={SANS}:text='{label}':x=30:y={y}:fontsize=24")
        draw.append(f"drawtext=fontfile={SANS}:text='{value}':x=200:y={y}:fontsize=24")
    run(
        *("-f", "lavfi", "-i", f"color=c=white:s={W}x{H}:r={FPS}:d={SECONDS}"),
        *("-vf", ",".join(draw)),
        *("-c:v", "libvpx", "-deadline", "good", "-cpu-used", "4", "-b:v", "2M"),
        str(screen),
    )
    run(
        *("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={SECONDS}:sample_rate=48000"),
        *("-f", "lavfi", "-i", f"sine=f={CUSTOMER_HZ}:d={SECONDS}:sample_rate=48000"),
        *("-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2"),
        str(call),
    )
    return {"screen": screen, "audio": call}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return screen_and_call(tmp_path_factory.mktemp("redacted-inputs"))


@pytest.fixture(scope="module")
def people(rt):
    return {"owner": create_person(rt, "employee"), "coach": create_person(rt, "coach")}


@pytest.fixture(scope="module")
def recording(client, people, worker, inputs) -> dict:
    made = upload_recording(client, people["owner"], inputs, customer_informed=True)
    return wait_probed(client, people["owner"], made["id"])


def share(client, people, recording_id: str, redactions: list[dict]) -> dict:
    response = client.post(
        f"/api/v1/recordings/{recording_id}/shares",
        json={
            "coach_ids": [str(people["coach"].id)],
            "purpose": "Redaction through the worker",
            "expires_in_days": 1,
            "include_customer_audio": True,
            "redactions": redactions,
        },
        headers=people["owner"].headers,
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def as_coach(client, people, share_id: str, kind: str, folder: Path) -> Path:
    response = client.get(f"/media/shares/{share_id}/{kind}", headers=people["coach"].headers)
    assert response.status_code == 200, response.status_code
    path = folder / f"{share_id}-{kind}"
    path.write_bytes(response.get_data())
    return path


def scratch_is_empty(stack_env) -> bool:
    root = Path(stack_env["CR_SCRATCH_DIR"])
    return not root.exists() or not any(root.iterdir())


def wait_scratch_empty(stack_env) -> None:
    wait_for(lambda: scratch_is_empty(stack_env), 10, "the worker's scratch to be emptied")


@pytest.fixture(scope="module")
def outputs(client, people, recording, stack_env, tmp_path_factory) -> dict[str, dict]:
    """A plain share (the control) and a redacted one, as the coach receives them."""
    folder = tmp_path_factory.mktemp("coach")
    made = {
        "plain": share(client, people, recording["id"], []),
        "redacted": share(
            client,
            people,
            recording["id"],
            [
                {"kind": "blur", "box": box(NUMBER_PX)},
                {"kind": "mute", "start_s": MUTE[0], "end_s": MUTE[1], "channel": "customer"},
            ],
        ),
    }
    out: dict[str, dict] = {}
    for name, created in made.items():
        wait_ready(client, people["owner"], created["id"])
        out[name] = {
            kind: as_coach(client, people, created["id"], kind, folder)
            for kind in ("video", "poster.jpg", "thumbnails.jpg", "waveform.json")
        }
    wait_scratch_empty(stack_env)
    return out


CROP = (NUMBER_PX[0], NUMBER_PX[1] - 8, NUMBER_PX[2] + 8, NUMBER_PX[3] + 8)


def test_ocr_reads_the_number_in_the_plain_share_and_nothing_of_it_under_the_blur(outputs):
    [poster] = frames(outputs["plain"]["poster.jpg"])
    assert ocr_digits(region(poster, CROP)) == NUMBER.replace(" ", "")  # the control
    [poster] = frames(outputs["redacted"]["poster.jpg"])
    video = frames(outputs["redacted"]["video"])
    for image in (poster, video[0], video[len(video) // 2], video[-1]):
        digits = ocr_digits(region(image, CROP))
        assert not re.search(r"\d{3}", digits), digits
    # Outside the blur the screen is as it was: the national id line still has its detail.
    line = (200, 150, 520, 185)
    plain_video = frames(outputs["plain"]["video"])
    assert np.abs(region(video[0], line) - region(plain_video[0], line)).mean() < 6


def test_the_thumbnails_come_from_the_redacted_picture(outputs):
    [plain] = frames(outputs["plain"]["thumbnails.jpg"])
    [redacted] = frames(outputs["redacted"]["thumbnails.jpg"])
    scale = 160 / W  # THUMB_W
    x0, y0, x1, y1 = (round(v * scale) for v in NUMBER_PX)
    inside_plain, inside_redacted = plain[y0:y1, x0:x1], redacted[y0:y1, x0:x1]
    assert np.abs(inside_plain - inside_redacted.astype(float)).mean() > 5


def test_the_muted_span_is_digital_silence_on_the_customers_channel_only(outputs):
    audio = decode_audio(outputs["redacted"]["video"], 2)
    agent, customer = audio[:, 0], audio[:, 1]
    assert dbfs(span(customer, 48000, *MUTE)) < -60
    assert dbfs(span(agent, 48000, *MUTE)) > -30
    for start, end in ((0.1, 0.9), (2.1, 3.8)):
        assert dbfs(span(customer, 48000, start, end)) > -30
    plain = decode_audio(outputs["plain"]["video"], 2)
    assert dbfs(span(plain[:, 1], 48000, *MUTE)) > -30  # the control
    waveform = json.loads(outputs["redacted"]["waveform.json"].read_bytes())
    per_bucket = waveform["seconds_per_bucket"]
    muted = [
        waveform["peaks"][1][i]
        for i in range(waveform["buckets"])
        if MUTE[0] + 0.05 <= i * per_bucket and (i + 1) * per_bucket <= MUTE[1] - 0.05
    ]
    assert muted and max(muted) == 0


def test_a_redacted_share_whose_job_fails_leaves_nothing(client, rt, people, inputs, stack_env):
    made = upload_recording(client, people["owner"], inputs, customer_informed=True)
    wait_probed(client, people["owner"], made["id"])
    with rt.db.session() as session:
        screen = session.scalar(
            select(MediaObject).where(
                MediaObject.recording_id == uuid.UUID(made["id"]), MediaObject.kind == "screen"
            )
        )
        name = screen.name
    with flipped_byte(rt, name, 4096):
        created = share(client, people, made["id"], [{"kind": "blur", "box": box(NUMBER_PX)}])

        def failed():
            body = client.get(
                f"/api/v1/shares/{created['id']}", headers=people["owner"].headers
            ).get_json()
            assert body["status"] != "ready", body
            return body["status"] == "failed" and body

        body = wait_for(failed, 120, "the share to fail")
        assert "integrity" in body["error"]
        # The same damaged file: the suggestions fail with the reason, the worker lives on.
        url = f"/api/v1/recordings/{made['id']}/redaction-suggestions"
        assert client.post(url, headers=people["owner"].headers).status_code == 202
        answer = wait_for(
            lambda: (
                (a := client.get(url, headers=people["owner"].headers).get_json())["status"]
                != "pending"
                and a
            ),
            120,
            "the suggestions to fail",
        )
        assert answer["status"] == "failed" and "integrity" in answer["error"]
    wait_scratch_empty(stack_env)
    with rt.db.session() as session:
        rows = session.scalars(
            select(MediaObject).where(MediaObject.share_id == uuid.UUID(created["id"]))
        ).all()
        assert rows == []
    assert list(rt.store.list(f"shares/{created['id']}/")) == []


def test_suggestions_cover_valid_personal_data_and_skip_failing_checksums(
    client, rt, people, recording, stack_env, worker
):
    url = f"/api/v1/recordings/{recording['id']}/redaction-suggestions"
    asked = client.post(url, headers=people["owner"].headers)
    assert asked.status_code == 202, asked.get_json()

    def finished():
        body = client.get(url, headers=people["owner"].headers).get_json()
        return body["status"] != "pending" and body

    body = wait_for(finished, 180, "the suggestions")
    assert body["status"] == "ready", body
    found = body["suggestions"]
    reasons = {s["reason"] for s in found}
    assert {"national_id", "card_number"} <= reasons
    rows = {reason: [s for s in found if s["reason"] == reason] for reason in reasons}
    # Each box sits on its line (y in fractions of the frame); nothing on the failing id's.
    for reason, y in (("national_id", 150), ("card_number", 210)):
        assert any(abs(s["box"]["y"] * H - y) < 20 for s in rows[reason]), rows[reason]
    assert not any(abs(s["box"]["y"] * H - 270) < 20 for s in found), found
    wait_scratch_empty(stack_env)

    # The matched text is not in the database nor in the worker's log.
    with rt.db.session() as session:
        row = session.get(Recording, uuid.UUID(recording["id"]))
        assert row.suggestions_sealed is not None
        assert FNR.encode() not in row.suggestions_sealed
    assert text_columns_holding(rt, FNR) == [] and text_columns_holding(rt, CARD) == []
    log = Path(worker.log_path).read_text(errors="replace")
    # FNR's first six digits as a number of their own: a task's run time such as 0.150387…s
    # may hold the same digits by chance.
    assert FNR not in log and not re.search(rf"(?<![\d.]){FNR[:6]}", log)
    assert CARD[-4:] + CARD[:4] not in log

    # Accepted as they are, the suggestions are valid redactions.
    accepted = share(client, people, recording["id"], found)
    assert [item["reason"] for item in accepted["redactions"]] == [s["reason"] for s in found]


def test_without_tesseract_the_suggestions_fail_with_a_reason(client, rt, people, recording):
    from worker import pipeline

    # The worker's own function, on a runtime whose tesseract is not installed.
    missing = dataclasses.replace(
        rt, settings=dataclasses.replace(rt.settings, tesseract="/nonexistent/tesseract")
    )
    url = f"/api/v1/recordings/{recording['id']}/redaction-suggestions"
    wait_for(
        # (404 when none was asked for: this test runs alone too)
        lambda: (
            client.get(url, headers=people["owner"].headers).get_json().get("status") != "pending"
        ),
        180,
        "an earlier suggestion job",
    )
    with rt.db.session() as session:
        from app.services import lifecycle

        row = session.get(Recording, uuid.UUID(recording["id"]))
        assert lifecycle.suggestions_requested(session, row)
    assert pipeline.suggest_redactions(missing, uuid.UUID(recording["id"])) == "failed"
    # The same job delivered again does nothing: the first result recorded stands.
    assert pipeline.suggest_redactions(rt, uuid.UUID(recording["id"])) == "nothing_to_do"
    answer = client.get(url, headers=people["owner"].headers).get_json()
    assert answer["status"] == "failed"
    assert "tesseract" in answer["error"] and answer["suggestions"] == []
    # Sharing still works.
    assert share(client, people, recording["id"], [])["status"] == "processing"


def test_a_bad_redaction_on_the_real_recording_names_its_field(client, people, recording):
    response = client.post(
        f"/api/v1/recordings/{recording['id']}/shares",
        json={
            "coach_ids": [str(people["coach"].id)],
            "purpose": "x",
            "expires_in_days": 1,
            "redactions": [{"kind": "mute", "start_s": 0, "end_s": SECONDS + 5}],
        },
        headers=people["owner"].headers,
    )
    assert error_code(response, 422) == "invalid_redaction"
    assert response.get_json()["error"]["details"] == {"index": 0, "field": "end_s"}
