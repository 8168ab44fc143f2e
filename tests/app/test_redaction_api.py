"""Redactions on the opt-in and redaction suggestions through the API (SPEC §12).

Real PostgreSQL, the real worker for the probe and the job; every bad item is refused with 422
``invalid_redaction`` naming its index and field, and no share is made.
"""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from sqlalchemy import func, select

import crypto
from app.models import Recording, Share
from tests.conftest import create_person, wait_for
from tests.media_helpers import (
    error_code,
    jwks,
    small_files,
    upload_recording,
    wait_probed,
    wait_ready,
)

BOX = {"x": 0.1, "y": 0.1, "w": 0.3, "h": 0.2}


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def people(rt):
    return {
        "owner": create_person(rt, "employee"),
        "other": create_person(rt, "employee"),
        "coach": create_person(rt, "coach"),
        "admin": create_person(rt, "admin"),
        "representative": create_person(rt, "representative"),
    }


@pytest.fixture(scope="module")
def recording(client, people, worker, samples) -> dict:
    made = upload_recording(client, people["owner"], small_files(samples), customer_informed=True)
    return wait_probed(client, people["owner"], made["id"])


def share_count(rt, owner) -> int:
    with rt.db.session() as session:
        return session.scalar(
            select(func.count()).select_from(Share).where(Share.owner_id == owner.id)
        )


def opt_in(client, people, recording_id: str, redactions, **extra):
    return client.post(
        f"/api/v1/recordings/{recording_id}/shares",
        json={
            "coach_ids": [str(people["coach"].id)],
            "purpose": "Redaction check",
            "expires_in_days": 2,
            "redactions": redactions,
            **extra,
        },
        headers=people["owner"].headers,
    )


COVER = {"kind": "cover", "box": BOX, "start_s": 1, "end_s": 3}
BAD_ITEMS = [
    # (the item, the field the message must name)
    ("not an object", None),
    ({"kind": "smudge", "box": BOX}, "kind"),
    ({"box": BOX}, "kind"),
    ({"kind": "cover"}, "box"),
    ({"kind": "cover", "box": [0, 0, 1, 1]}, "box"),
    ({"kind": "cover", "box": {**BOX, "x": "0.1"}}, "box.x"),
    ({"kind": "cover", "box": {**BOX, "y": -0.1}}, "box.y"),
    ({"kind": "cover", "box": {"x": 0.1, "y": 0.1, "w": 0.3}}, "box.h"),
    ({"kind": "cover", "box": {**BOX, "w": 0}}, "box.w"),
    ({"kind": "cover", "box": {**BOX, "x": 0.8, "w": 0.3}}, "box.w"),  # outside the frame
    ({"kind": "cover", "box": {**BOX, "y": 0.9, "h": 0.2}}, "box.h"),
    ({"kind": "cover", "box": {**BOX, "z": 1}}, "box.z"),
    ({"kind": "blur", "box": BOX, "start_s": "1"}, "start_s"),
    ({"kind": "blur", "box": BOX, "start_s": -1}, "start_s"),
    ({"kind": "blur", "box": BOX, "start_s": 5, "end_s": 4}, "end_s"),  # reversed
    ({"kind": "blur", "box": BOX, "end_s": 500}, "end_s"),  # beyond the recording
    ({"kind": "blur", "box": BOX, "start_s": 400}, "start_s"),
    ({"kind": "blur", "box": BOX, "start_s": True}, "start_s"),
    ({"kind": "cover", "box": BOX, "reason": "looks private"}, "reason"),
    ({"kind": "mute", "channel": "left"}, "channel"),
    ({"kind": "mute", "box": BOX}, "box"),
    ({"kind": "mute", "start_s": 2, "end_s": 2}, "end_s"),
]


@pytest.mark.parametrize(("item", "field"), BAD_ITEMS)
def test_a_bad_item_is_refused_naming_its_index_and_field(
    client, rt, people, recording, item, field
):
    before = share_count(rt, people["owner"])
    response = opt_in(client, people, recording["id"], [COVER, item])
    assert error_code(response, 422) == "invalid_redaction"
    error = response.get_json()["error"]
    assert error["details"] == {"index": 1, "field": field}
    assert error["message"].startswith("redactions[1]" + (f".{field}" if field else ""))
    assert share_count(rt, people["owner"]) == before


def test_every_refusal_is_explained_in_the_readers_language(client, people, recording):
    """The index and field stay as the API names them; the explanation is in Norwegian for a
    Norwegian reader (SPEC §14), for every kind of bad item."""
    url = f"/api/v1/recordings/{recording['id']}/shares"
    body = {"coach_ids": [str(people["coach"].id)], "purpose": "Språk", "expires_in_days": 2}
    untranslated = []
    for item, _field in BAD_ITEMS:
        answers = [
            client.post(
                url,
                json={**body, "redactions": [item]},
                headers={**people["owner"].headers, "Accept-Language": language},
            ).get_json()["error"]["message"]
            for language in ("en", "nb")
        ]
        english, norwegian = (answer.partition(": ")[2] for answer in answers)
        if not english or english == norwegian:
            untranslated.append(answers)
    assert untranslated == []
    outside = {"kind": "cover", "box": {**BOX, "x": 0.8, "w": 0.3}}
    response = client.post(
        url,
        json={**body, "redactions": [outside]},
        headers={**people["owner"].headers, "Accept-Language": "nb"},
    )
    assert response.get_json()["error"]["message"] == (
        "redactions[0].box.w: feltet går utenfor bildet (x + w er over 1)"
    )


@pytest.mark.parametrize(
    "value",
    [{"kind": "cover", "box": BOX}, "cover", 3, [COVER] * 201],
    ids=["object", "string", "number", "201 items"],
)
def test_a_list_that_is_not_a_list_or_too_long_is_refused(client, rt, people, recording, value):
    before = share_count(rt, people["owner"])
    response = opt_in(client, people, recording["id"], value)
    assert error_code(response, 422) == "invalid_redaction"
    assert response.get_json()["error"]["details"] == {"index": None, "field": None}
    assert share_count(rt, people["owner"]) == before


def test_two_hundred_items_are_accepted(client, people, recording):
    items = [
        {"kind": "cover", "box": {"x": i / 400, "y": 0.5, "w": 0.01, "h": 0.01}} for i in range(200)
    ]
    response = opt_in(client, people, recording["id"], items)
    assert response.status_code == 202, response.get_json()
    assert len(response.get_json()["redactions"]) == 200
    revoke = client.post(
        f"/api/v1/shares/{response.get_json()['id']}/revoke", headers=people["owner"].headers
    )
    assert revoke.status_code == 200


def test_boxes_on_a_recording_without_video_are_refused(client, rt, people, samples):
    audio_only = upload_recording(client, people["owner"], {"audio": samples.call_wav})
    wait_probed(client, people["owner"], audio_only["id"])
    response = opt_in(client, people, audio_only["id"], [COVER])
    assert error_code(response, 422) == "invalid_redaction"
    assert "no video" in response.get_json()["error"]["message"]
    fine = opt_in(client, people, audio_only["id"], [{"kind": "mute", "start_s": 1, "end_s": 2}])
    assert fine.status_code == 202, fine.get_json()


def test_the_share_the_receipt_the_page_and_the_export_carry_the_redactions(
    client, rt, people, recording
):
    redactions = [
        COVER,
        {"kind": "blur", "box": {"x": 0.5, "y": 0.5, "w": 0.5, "h": 0.5}},
        {"kind": "mute", "start_s": 2, "end_s": 4, "channel": "customer"},
        {"kind": "cover", "box": BOX, "start_s": 11, "end_s": 12.1, "reason": "card_number"},
    ]
    response = opt_in(
        client,
        people,
        recording["id"],
        redactions,
        trim={"start_s": 1, "end_s": 11},
        include_customer_audio=True,
    )
    assert response.status_code == 202, response.get_json()
    created = response.get_json()
    duration = recording["duration_s"]
    applied = [
        {**COVER, "start_s": 1.0, "end_s": 3.0},
        {**redactions[1], "start_s": 0.0, "end_s": duration},
        {**redactions[2], "start_s": 2.0, "end_s": 4.0},
        {**redactions[3], "start_s": 11.0, "end_s": min(12.1, duration)},
    ]
    assert created["redactions"] == applied  # times stay in the recording's own timeline
    claims = crypto.verify(
        created["receipt"], jwks(client), typ=crypto.RECEIPT_TYP, required=crypto.RECEIPT_CLAIMS
    )
    assert claims["redactions"] == applied
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(created["id"]))
        assert row.redactions_sealed is not None and b"card_number" not in row.redactions_sealed

    wait_ready(client, people["owner"], created["id"])
    coach_view = client.get(f"/api/v1/shares/{created['id']}", headers=people["coach"].headers)
    assert coach_view.get_json()["redactions"] == applied

    page = client.get("/shares", headers={**people["owner"].headers, "Accept": "text/html"})
    assert (
        "2 covered areas, 1 blurred area, 1 muted span (the customer&#39;s voice)"
        in page.get_data(as_text=True)
    )

    export = client.get("/api/v1/export", headers=people["owner"].headers)
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.get_data())) as archive:
        receipt = archive.read(f"shares/{created['id']}/receipt.json")
        share_json = archive.read(f"shares/{created['id']}/share.json")
    assert b'"redactions"' in receipt and b'"card_number"' in receipt
    assert b'"customer"' in share_json

    revoke = client.post(f"/api/v1/shares/{created['id']}/revoke", headers=people["owner"].headers)
    assert revoke.status_code == 200
    with rt.db.session() as session:
        assert session.get(Share, uuid.UUID(created["id"])).redactions_sealed is None
    mine = client.get(f"/api/v1/shares/{created['id']}", headers=people["owner"].headers)
    assert mine.get_json()["redactions"] is None


# --- suggestions: who may ask --------------------------------------------------------------


def suggestions_url(recording_id: str) -> str:
    return f"/api/v1/recordings/{recording_id}/redaction-suggestions"


def test_only_the_owner_asks_for_and_reads_suggestions(client, people, recording):
    url = suggestions_url(recording["id"])
    before = client.get(url, headers=people["owner"].headers)
    assert error_code(before, 404) == "not_found"  # never asked for
    for method in ("GET", "POST"):
        other = client.open(url, method=method, headers=people["other"].headers)
        assert error_code(other, 404) == "not_found"
        for role in ("coach", "admin", "representative"):
            refused = client.open(url, method=method, headers=people[role].headers)
            assert error_code(refused, 403) == "forbidden"
        assert error_code(client.open(url, method=method), 401) == "unauthenticated"
        random = client.open(
            suggestions_url(str(uuid.uuid4())), method=method, headers=people["owner"].headers
        )
        assert error_code(random, 404) == "not_found"
        bad = client.open(suggestions_url("../x"), method=method, headers=people["owner"].headers)
        assert bad.status_code == 404


def test_asking_twice_while_pending_starts_one_job(client, rt, people, recording):
    url = suggestions_url(recording["id"])
    first = client.post(url, headers=people["owner"].headers)
    assert first.status_code == 202, first.get_json()
    assert first.get_json()["status"] in ("pending", "ready", "failed")
    second = client.post(url, headers=people["owner"].headers)
    assert second.status_code == 202

    def finished():
        body = client.get(url, headers=people["owner"].headers).get_json()
        return body["status"] != "pending" and body

    body = wait_for(finished, 120, "the suggestions")
    # A 12 s test pattern without personal data: ready, with nothing to suggest.
    assert body == {"status": "ready", "suggestions": [], "error": None}
    with rt.db.session() as session:
        row = session.get(Recording, uuid.UUID(recording["id"]))
        assert row.suggestions_status == "ready"


def test_suggestions_need_a_screen(client, people, samples):
    audio_only = upload_recording(client, people["owner"], {"audio": samples.mono_wav})
    response = client.post(suggestions_url(audio_only["id"]), headers=people["owner"].headers)
    assert error_code(response, 422) == "no_video"
