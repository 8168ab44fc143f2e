"""``GET /api/v1/export``: one ZIP with my receipts, certificates, access logs, comments, my own
media as uploaded and the renditions of my live shares, and nobody else's data."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

import pytest
from sqlalchemy import select

import crypto
from app.models import AuditEvent, Recording, Share
from tests.conftest import create_person
from tests.media_helpers import (
    error_code,
    finish,
    opt_in,
    small_files,
    start_shares,
    upload_recording,
)

TEXT_SUFFIXES = (".json", ".jwt", ".txt")


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def world(client, rt, worker, samples):
    """Employee A: a recording with a ready share (commented and played) and a revoked one.
    Employee B: a recording and a share of their own with the same coach."""
    coach = create_person(rt, "coach")
    a_pending = start_shares(client, rt, files=small_files(samples), coaches=[coach])
    a = a_pending[0].owner
    revoked = opt_in(client, a, a_pending[0].recording_id, [coach], purpose="Withdrawn later")
    response = client.post(f"/api/v1/shares/{revoked['id']}/revoke", headers=a.headers)
    assert response.status_code == 200
    b = create_person(rt, "employee", name=f"Bodil {uuid.uuid4().hex[:6]}")
    b_recording = upload_recording(client, b, {"audio": samples.mono_wav}, title="B's own call")
    b_share = opt_in(client, b, b_recording["id"], [coach], purpose="B's purpose, private")
    ready = finish(client, a_pending)[0]

    comment = client.post(
        f"/api/v1/shares/{ready.id}/comments",
        json={"at_s": 4, "body": "Good pacing here"},
        headers=coach.headers,
    )
    assert comment.status_code == 201
    view = client.post(f"/api/v1/shares/{ready.id}/views", headers=coach.headers).get_json()["id"]
    played = client.get(
        f"{ready.url()}?view={view}", headers={**coach.headers, "Range": "bytes=0-999"}
    )
    assert played.status_code == 206 and len(played.data) == 1000
    return {
        "a": a,
        "b": b,
        "coach": coach,
        "ready": ready,
        "revoked": revoked["id"],
        "revocation": response.get_json(),
        "b_recording": b_recording,
        "b_share": b_share,
        "view": view,
    }


@pytest.fixture(scope="module")
def archive(client, world):
    response = client.get("/api/v1/export", headers=world["a"].headers)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "no-store" in response.headers["Cache-Control"]
    data = response.data
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert zipped.testzip() is None
        return {name: zipped.read(name) for name in zipped.namelist()}


def test_the_archive_holds_what_the_readme_promises(archive, world):
    ready, rid = world["ready"], world["ready"].recording_id
    expected = {
        "README.txt",
        "me.json",
        "jwks.json",
        f"recordings/{rid}/recording.json",
        f"recordings/{rid}/screen.webm",
        f"recordings/{rid}/audio.wav",
        *(
            f"shares/{ready.id}/{name}"
            for name in (
                "share.json",
                "receipt.jwt",
                "receipt.json",
                "access-log.json",
                "comments.json",
                "rendition.mp4",
            )
        ),
        *(
            # The receipt was shredded with the share; the certificate says so.
            f"shares/{world['revoked']}/{name}"
            for name in (
                "share.json",
                "certificate.jwt",
                "certificate.json",
                "access-log.json",
            )
        ),
    }
    assert set(archive) == expected
    me = json.loads(archive["me.json"])
    assert me["id"] == str(world["a"].id) and me["role"] == "employee"


def test_my_media_as_uploaded_and_the_rendition(client, archive, world):
    ready = world["ready"]
    base = f"recordings/{ready.recording_id}"
    assert archive[f"{base}/screen.webm"] == ready.uploads["screen"]
    assert archive[f"{base}/audio.wav"] == ready.uploads["audio"]
    recording = json.loads(archive[f"{base}/recording.json"])
    assert recording["media_sha256"] == {
        name: hashlib.sha256(data).hexdigest() for name, data in ready.uploads.items()
    }
    video = client.get(ready.url(), headers=world["a"].headers)
    assert video.status_code == 200
    assert archive[f"shares/{ready.id}/rendition.mp4"] == video.data
    assert video.data[4:8] == b"ftyp"


def test_receipts_and_certificates_verify_offline(archive, world):
    keys = json.loads(archive["jwks.json"])
    assert keys["keys"] and all("d" not in k for k in keys["keys"])
    # "trim" is left out of the required claims: an untrimmed share's receipt has trim: null,
    # which crypto.verify counts as missing (reported; see test_shares_api).
    required = [c for c in crypto.RECEIPT_CLAIMS if c != "trim"]
    for share_id in (world["ready"].id,):
        token = archive[f"shares/{share_id}/receipt.jwt"].decode()
        claims = crypto.verify(token, keys, typ=crypto.RECEIPT_TYP, required=required)
        assert claims["jti"] == share_id and claims["sub"] == str(world["a"].id)
        assert "trim" in claims
        assert json.loads(archive[f"shares/{share_id}/receipt.json"]) == claims
    assert (
        world["ready"].created["receipt"]
        == archive[f"shares/{world['ready'].id}/receipt.jwt"].decode()
    )
    certificate = archive[f"shares/{world['revoked']}/certificate.jwt"].decode()
    assert certificate == world["revocation"]["certificate"]
    claims = crypto.verify(
        certificate, keys, typ=crypto.CERTIFICATE_TYP, required=crypto.CERTIFICATE_CLAIMS
    )
    assert claims["subject_id"] == world["revoked"] and claims["key_destroyed"] is True


def test_access_logs_and_comments(archive, world):
    ready, coach = world["ready"], world["coach"]
    log = json.loads(archive[f"shares/{ready.id}/access-log.json"])
    view = next(v for v in log["views"] if v["id"] == world["view"])
    assert view["viewer_id"] == str(coach.id) and view["viewer_name"] == coach.name
    assert view["ranges"] == [[0, 1000]]
    actions = [e["action"] for e in log["events"]]
    assert {"share.created", "share.ready", "media.play", "comment.added"} <= set(actions)
    comments = json.loads(archive[f"shares/{ready.id}/comments.json"])
    assert [(c["at_s"], c["body"]) for c in comments] == [(4.0, "Good pacing here")]
    revoked_log = json.loads(archive[f"shares/{world['revoked']}/access-log.json"])
    assert "share.revoked" in [e["action"] for e in revoked_log["events"]]
    share = json.loads(archive[f"shares/{world['revoked']}/share.json"])
    # Shredded with the share: the purpose (sealed under its key) is gone from the export too.
    assert share["status"] == "revoked" and share["purpose"] is None
    assert b"Withdrawn later" not in b"".join(archive.values())


def test_nobody_elses_data(rt, archive, world):
    a = world["a"]
    with rt.db.session() as session:
        foreign_ids = {
            str(i)
            for i in [
                *session.scalars(select(Recording.id).where(Recording.owner_id != a.id)),
                *session.scalars(select(Share.id).where(Share.owner_id != a.id)),
            ]
        }
    assert world["b_recording"]["id"] in foreign_ids and world["b_share"]["id"] in foreign_ids
    b = world["b"]
    for name, content in archive.items():
        assert not any(i in name for i in foreign_ids), name
        if name.endswith(TEXT_SUFFIXES):
            text = content.decode()
            assert not any(i in text for i in foreign_ids), name
            for secret in (b.name, b.login, str(b.id), "B's own call", "B's purpose"):
                assert secret not in text, (name, secret)


def test_the_export_is_recorded_and_only_for_employees(client, rt, archive, world):
    with rt.db.session() as session:
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "data.exported", AuditEvent.actor_id == world["a"].id
            )
        ).all()
    assert len(events) >= 1
    assert (
        error_code(client.get("/api/v1/export", headers=world["coach"].headers), 403) == "forbidden"
    )
    assert error_code(client.get("/api/v1/export"), 401) == "unauthenticated"
    # B's own export holds B's recording and share, none of A's.
    response = client.get("/api/v1/export", headers=world["b"].headers)
    with zipfile.ZipFile(io.BytesIO(response.data)) as zipped:
        names = zipped.namelist()
    assert f"recordings/{world['b_recording']['id']}/audio.wav" in names
    assert f"shares/{world['b_share']['id']}/receipt.jwt" in names
    assert not any(world["ready"].id in n or world["ready"].recording_id in n for n in names)
