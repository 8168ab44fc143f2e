"""Resumable uploads (tus 1.0, SPEC §16) through the app: the protocol, the encryption as the
bytes arrive, the refusals (and that they change nothing stored), ownership, the lock, expiry.

Real clients (tuspy against gunicorn, tus-js-client in Chromium) are in test_tus_clients.py and
tests/browser/test_uploads.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from app.models import DataKey, MediaObject, Upload, UploadSegment, utcnow
from app.services import uploads

CHUNK = 16384
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = "application/offset+octet-stream"


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class Tus:
    """A minimal tus client over the Flask test client, for exact control of each request."""

    def __init__(self, client, person):
        self.client, self.person = client, person
        self.headers = {**person.headers, **TUS}

    def create(self, length: int | None, **metadata: str):
        headers = dict(self.headers)
        if length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(length)
        if metadata:
            headers["Upload-Metadata"] = meta(**metadata)
        return self.client.post("/api/v1/uploads", headers=headers)

    def new(self, length: int | None, **metadata: str) -> str:
        response = self.create(length, **metadata)
        assert response.status_code == 201, response.get_json()
        return response.headers["Location"]

    def patch(self, url: str, offset: int, data: bytes, **extra: str):
        headers = {**self.headers, "Upload-Offset": str(offset), "Content-Type": PATCH_TYPE}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return self.client.patch(url, data=data, headers=headers)

    def head(self, url: str):
        return self.client.head(url, headers=self.headers)

    def offset(self, url: str) -> int:
        return int(self.head(url).headers["Upload-Offset"])

    def send_all(self, url: str, data: bytes, *, piece: int | None = None) -> None:
        offset = self.offset(url)
        while offset < len(data):
            stop = len(data) if piece is None else min(offset + piece, len(data))
            response = self.patch(url, offset, data[offset:stop])
            assert response.status_code == 204, response.get_json()
            offset = int(response.headers["Upload-Offset"])

    def make_recording(self, **ids: str):
        body = {"upload_ids": {k: v.rsplit("/", 1)[1] for k, v in ids.items()}, "title": "tus"}
        return self.client.post("/api/v1/recordings", json=body, headers=self.person.headers)


@pytest.fixture
def employee(make_person):
    return make_person("employee")


@pytest.fixture
def tus(client, employee):
    return Tus(client, employee)


def upload_row(rt, url: str) -> Upload:
    with rt.db.session() as session:
        return session.get_one(Upload, uuid.UUID(url.rsplit("/", 1)[1]))


def pieces(rt, url: str) -> list[UploadSegment]:
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(UploadSegment)
                .where(UploadSegment.upload_id == uuid.UUID(url.rsplit("/", 1)[1]))
                .order_by(UploadSegment.seq)
            )
        )


def stored(rt, url: str) -> dict[str, bytes]:
    """Every object under the upload's prefix, as stored."""
    prefix = f"uploads/{url.rsplit('/', 1)[1]}/"
    return {name: b"".join(rt.store.iter_object(name)) for name in rt.store.list(prefix)}


def with_marker(samples, size: int) -> bytes:
    """Real WebM (so the sniff accepts it) followed by a marker repeated: plaintext that
    would be easy to find if any of it were stored in the clear."""
    head = samples.screen_webm.read_bytes()[:4096]
    marker = b"PLAINTEXT-MARKER-" * (size // 17 + 1)
    return (head + marker)[:size]


# --- the protocol --------------------------------------------------------------------------------


def test_options_announces_the_protocol_to_anyone(client):
    response = client.options("/api/v1/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert {"creation", "termination", "checksum"} <= extensions
    assert response.headers["Tus-Checksum-Algorithm"] == "sha256"
    assert int(response.headers["Tus-Max-Size"]) > 0
    assert response.get_data() == b""


def test_a_whole_upload_becomes_a_draft_with_the_files_hash(tus, rt, samples, client, employee):
    data = samples.screen_webm.read_bytes()
    response = tus.create(len(data), filename="screen.webm", filetype="video/webm")
    assert response.status_code == 201
    url = response.headers["Location"]
    assert url.startswith("/api/v1/uploads/")
    assert response.headers["Upload-Offset"] == "0" and "Upload-Expires" in response.headers
    head = tus.head(url)
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Upload-Offset"] == "0"
    assert "filename" in head.headers["Upload-Metadata"]
    assert head.headers["Cache-Control"] == "no-store"

    tus.send_all(url, data)
    assert tus.offset(url) == len(data)
    listed = client.get("/api/v1/uploads", headers=employee.headers).get_json()["uploads"]
    mine = next(u for u in listed if url.endswith(u["id"]))
    assert mine["complete"] and mine["filename"] == "screen.webm"

    made = tus.make_recording(screen=url)
    assert made.status_code == 201, made.get_json()
    recording = made.get_json()
    assert recording["media_sha256"]["screen"] == hashlib.sha256(data).hexdigest()
    assert recording["size_bytes"] == len(data) and recording["parts"] == ["screen"]
    media = client.get(f"/media/recordings/{recording['id']}/screen", headers=employee.headers)
    assert media.get_data() == data
    # The object lives under the recording (SPEC §9), and the upload's pieces are gone.
    with rt.db.session() as session:
        obj = session.scalar(
            select(MediaObject).where(MediaObject.recording_id == uuid.UUID(recording["id"]))
        )
        assert obj.name == f"recordings/{recording['id']}/{obj.id}"
        # The file's hash is now the recording's, sealed: the upload row keeps none in the clear.
        upload = session.get(Upload, uuid.UUID(url.rsplit("/", 1)[1]))
        assert upload.recording_id is not None and upload.plaintext_sha256 is None
    assert stored(rt, url) == {}
    assert pieces(rt, url) == []
    # Used once: a second use, and a HEAD, say so.
    again = tus.make_recording(screen=url)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "upload_used"
    assert tus.head(url).status_code == 410
    assert url.rsplit("/", 1)[1] not in str(
        client.get("/api/v1/uploads", headers=employee.headers).get_json()
    )


def test_only_whole_chunks_are_acknowledged_and_nothing_plain_is_stored(tus, rt, samples):
    data = with_marker(samples, 5 * CHUNK + 1234)
    url = tus.new(len(data), filetype="video/webm")
    response = tus.patch(url, 0, data[: 2 * CHUNK + 999])
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == str(2 * CHUNK)  # the 999 bytes: send again
    objects = stored(rt, url)
    assert len(objects) == 1
    for body in objects.values():
        assert b"PLAINTEXT-MARKER" not in body and b"\x1a\x45\xdf\xa3" not in body[:200]
    # A request that brings less than a chunk stores nothing and moves nothing.
    response = tus.patch(url, 2 * CHUNK, data[2 * CHUNK : 2 * CHUNK + 100])
    assert response.headers["Upload-Offset"] == str(2 * CHUNK)
    assert len(stored(rt, url)) == 1
    tus.send_all(url, data)
    row = upload_row(rt, url)
    assert row.complete and row.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    for body in stored(rt, url).values():
        assert b"PLAINTEXT-MARKER" not in body


def test_deferred_length_the_recorders_way(tus, rt, samples):
    data = samples.screen_webm.read_bytes()
    url = tus.new(None, filetype="video/webm")
    assert tus.head(url).headers["Upload-Defer-Length"] == "1"
    offset = 0
    for stop in (100_000, 300_000, 650_000):
        response = tus.patch(url, offset, data[offset:stop])
        assert response.status_code == 204
        assert "Content-Type" not in response.headers  # no body, no type
        offset = int(response.headers["Upload-Offset"])
        assert offset % CHUNK == 0 and offset <= stop
    # The last request says how long it all was.
    response = tus.patch(url, offset, data[offset:], Upload_Length=str(len(data)))
    assert response.status_code == 204 and response.headers["Upload-Offset"] == str(len(data))
    assert tus.head(url).headers["Upload-Length"] == str(len(data))
    made = tus.make_recording(screen=url)
    assert made.get_json()["media_sha256"]["screen"] == hashlib.sha256(data).hexdigest()


def test_a_deferred_upload_can_be_finished_where_it_is(tus, rt, samples, client, employee):
    """A recorder tab that was closed: the employee keeps what arrived by declaring the
    length to be the offset (an empty PATCH), then makes a draft of it."""
    data = samples.screen_webm.read_bytes()
    url = tus.new(None)
    offset = int(tus.patch(url, 0, data[:500_000]).headers["Upload-Offset"])
    response = tus.patch(url, offset, b"", Upload_Length=str(offset))
    assert response.status_code == 204 and response.headers["Upload-Offset"] == str(offset)
    made = tus.make_recording(screen=url)
    assert made.status_code == 201
    assert made.get_json()["media_sha256"]["screen"] == hashlib.sha256(data[:offset]).hexdigest()


def test_screen_and_audio_uploads_make_one_recording_and_both_keys_are_shredded(
    tus, rt, samples, client, employee
):
    screen, audio = samples.screen_webm.read_bytes(), samples.call_wav.read_bytes()
    screen_url, audio_url = tus.new(len(screen)), tus.new(len(audio))
    tus.send_all(screen_url, screen)
    tus.send_all(audio_url, audio, piece=3 * CHUNK + 5)
    made = tus.make_recording(screen=screen_url, audio=audio_url)
    assert made.status_code == 201, made.get_json()
    recording = made.get_json()
    assert recording["parts"] == ["audio", "screen"]
    for part, data in (("screen", screen), ("audio", audio)):
        body = client.get(f"/media/recordings/{recording['id']}/{part}", headers=employee.headers)
        assert body.get_data() == data
    key_ids = {upload_row(rt, screen_url).key_id, upload_row(rt, audio_url).key_id}
    assert len(key_ids) == 2
    deleted = client.delete(f"/api/v1/recordings/{recording['id']}", headers=employee.headers)
    assert deleted.status_code == 200
    with rt.db.session() as session:
        assert session.scalars(select(DataKey).where(DataKey.id.in_(key_ids))).all() == []
    assert list(rt.store.list(f"recordings/{recording['id']}/")) == []


def test_many_small_requests_are_joined_into_few_pieces_on_the_local_store(
    tus, rt, samples, monkeypatch, tmp_path
):
    from app.storage.local import LocalStore

    monkeypatch.setattr(rt, "store", LocalStore(tmp_path / "objects"))
    monkeypatch.setattr(uploads, "MERGE_BELOW", 256 * 1024)
    data = with_marker(samples, 2 * 1024 * 1024 + 77)
    url = tus.new(len(data))
    tus.send_all(url, data, piece=40_000)  # about 2.5 chunks a request, like the recorder
    kept = pieces(rt, url)
    assert 0 < len(kept) <= 12  # 85 requests
    assert sorted(stored(rt, url)) == sorted(p.name for p in kept)
    made = tus.make_recording(screen=url)
    assert made.get_json()["media_sha256"]["screen"] == hashlib.sha256(data).hexdigest()


# --- refusals: each with its code, and nothing stored changes ------------------------------------


def snapshot(rt, url):
    row = upload_row(rt, url)
    return (row.offset, row.length, row.stored_size, sorted(stored(rt, url)))


def test_refused_requests_change_nothing(tus, rt, samples):
    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 3 * CHUNK])
    before = snapshot(rt, url)
    cases = [
        # wrong offset (behind and ahead)
        (tus.patch(url, 0, data[:CHUNK]), 409, "offset_mismatch"),
        (tus.patch(url, 4 * CHUNK, data[4 * CHUNK : 5 * CHUNK]), 409, "offset_mismatch"),
        # past the declared length
        (tus.patch(url, 3 * CHUNK, data[3 * CHUNK :] + b"x" * 10), 413, "past_upload_length"),
        # a wrong checksum, and an algorithm we do not speak
        (
            tus.patch(
                url,
                3 * CHUNK,
                data[3 * CHUNK : 6 * CHUNK],
                Upload_Checksum="sha256 "
                + base64.b64encode(hashlib.sha256(b"x").digest()).decode(),
            ),
            460,
            "checksum_mismatch",
        ),
        (
            tus.patch(url, 3 * CHUNK, data[3 * CHUNK : 6 * CHUNK], Upload_Checksum="md5 AAAA"),
            400,
            "unsupported_checksum",
        ),
        # the wrong content type, and no tus version
        (
            tus.client.patch(
                url,
                data=data[3 * CHUNK : 4 * CHUNK],
                headers={
                    **tus.headers,
                    "Upload-Offset": str(3 * CHUNK),
                    "Content-Type": "application/octet-stream",
                },
            ),
            415,
            "expected_offset_octet_stream",
        ),
        (
            tus.client.patch(
                url,
                data=data[3 * CHUNK : 4 * CHUNK],
                headers={
                    **tus.person.headers,
                    "Upload-Offset": str(3 * CHUNK),
                    "Content-Type": PATCH_TYPE,
                },
            ),
            412,
            "tus_version",
        ),
        # a length that contradicts the declared one
        (
            tus.patch(url, 3 * CHUNK, data[3 * CHUNK : 4 * CHUNK], Upload_Length="99"),
            400,
            "length_mismatch",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (status, response.get_json())
        assert response.get_json()["error"]["code"] == code
        assert response.get_json()["error"]["message"]
        assert response.headers["Tus-Resumable"] == "1.0.0"
        assert snapshot(rt, url) == before, code
    assert cases[6][0].headers["Tus-Version"] == "1.0.0"
    # The right checksum is accepted.
    body = data[3 * CHUNK : 6 * CHUNK]
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    response = tus.patch(url, 3 * CHUNK, body, Upload_Checksum=f"sha256 {digest}")
    assert response.status_code == 204 and response.headers["Upload-Offset"] == str(6 * CHUNK)


def test_creation_refusals(tus, rt):
    cases = [
        (tus.create(None, filetype="text/plain"), 415, "not_media"),
        (tus.create(10 * 1024**4), 413, "upload_too_large"),
        (tus.create(0), 400, "empty_file"),
        (
            tus.client.post("/api/v1/uploads", headers=tus.headers),
            400,
            "invalid_header",
        ),  # neither length nor deferral
        (
            tus.client.post(
                "/api/v1/uploads",
                headers={
                    **tus.headers,
                    "Upload-Length": "12",
                    "Upload-Metadata": "bad value with spaces",
                },
            ),
            400,
            "invalid_metadata",
        ),
        (
            tus.client.post(
                "/api/v1/uploads", headers={**tus.person.headers, "Upload-Length": "12"}
            ),
            412,
            "tus_version",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (code, response.get_json())
        assert response.get_json()["error"]["code"] == code
    too_big = cases[1][0].get_json()["error"]
    assert "limit" in too_big["message"] and "Shorten" in too_big["message"]


def test_a_file_that_is_not_media_is_refused_on_its_first_bytes(tus, rt):
    url = tus.new(200_000)
    response = tus.patch(url, 0, b"%PDF-1.7 " + os.urandom(100_000))
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "not_media"
    assert snapshot(rt, url) == (0, 200_000, 0, [])


def test_a_make_from_an_unfinished_or_foreign_upload_is_refused(
    tus, rt, samples, make_person, client
):
    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 2 * CHUNK])
    unfinished = tus.make_recording(screen=url)
    assert unfinished.status_code == 409
    assert unfinished.get_json()["error"]["code"] == "upload_incomplete"
    assert str(2 * CHUNK) in unfinished.get_json()["error"]["message"]
    other = Tus(client, make_person("employee"))
    foreign = other.make_recording(screen=url)
    random = other.make_recording(screen=f"/x/{uuid.uuid4()}")
    assert foreign.status_code == random.status_code == 404
    assert foreign.get_json() == random.get_json()
    same_twice = tus.make_recording(screen=url, audio=url)
    assert same_twice.status_code == 400
    none = client.post("/api/v1/recordings", json={"upload_ids": {}}, headers=tus.person.headers)
    assert none.status_code == 400 and none.get_json()["error"]["code"] == "no_media"
    unknown = client.post(
        "/api/v1/recordings",
        json={"upload_ids": {"video": str(uuid.uuid4())}},
        headers=tus.person.headers,
    )
    assert unknown.status_code == 400


def test_another_users_upload_answers_like_none(tus, rt, samples, make_person, client):
    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 2 * CHUNK])
    before = snapshot(rt, url)
    other = Tus(client, make_person("employee"))
    random = f"/api/v1/uploads/{uuid.uuid4()}"
    for target in (url, random):
        responses = [
            other.head(target),
            other.client.get(target, headers=other.headers),
            other.patch(target, 2 * CHUNK, data[2 * CHUNK : 3 * CHUNK]),
            other.client.delete(target, headers=other.headers),
        ]
        assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert snapshot(rt, url) == before
    assert tus.offset(url) == 2 * CHUNK


def test_roles_and_anonymous(client, make_person, tus, samples):
    url = tus.new(1000)
    for role in ("coach", "admin", "representative"):
        someone = Tus(client, make_person(role))
        assert someone.create(1000).status_code == 403, role
        assert someone.patch(url, 0, b"x" * 10).status_code == 403, role
        assert someone.client.get("/api/v1/uploads", headers=someone.headers).status_code == 403
    anonymous = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "1000"})
    assert anonymous.status_code == 401
    assert (
        client.patch(
            url, data=b"x", headers={**TUS, "Upload-Offset": "0", "Content-Type": PATCH_TYPE}
        ).status_code
        == 401
    )
    assert client.head(url, headers=TUS).status_code == 401


def test_termination_deletes_the_pieces_and_shreds_the_key(tus, rt, samples, client):
    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 4 * CHUNK])
    row = upload_row(rt, url)
    assert stored(rt, url)
    response = client.delete(url, headers=tus.headers)
    assert response.status_code == 204
    assert stored(rt, url) == {}
    with rt.db.session() as session:
        assert session.get(DataKey, row.key_id) is None
        assert session.get(Upload, row.id) is None
    assert tus.head(url).status_code == 404


def test_a_second_request_on_a_busy_upload_gets_409(tus, rt, samples):
    """Two requests racing on one upload: the one that holds the lock writes; the other is
    refused at once, whatever its offset, and changes nothing."""
    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 2 * CHUNK])
    before = snapshot(rt, url)
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    with uploads.upload_lock(rt, upload_id):  # as a PATCH in another process holds it
        response = tus.patch(url, 2 * CHUNK, data[2 * CHUNK : 4 * CHUNK])
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "upload_locked"
        assert tus.client.delete(url, headers=tus.headers).status_code == 409
        assert tus.head(url).status_code == 200  # reading the offset needs no lock
    assert snapshot(rt, url) == before
    assert tus.patch(url, 2 * CHUNK, data[2 * CHUNK : 4 * CHUNK]).status_code == 204


def test_racing_requests_cannot_corrupt_an_upload(stack_app, rt, samples, employee):
    """Eight requests at once with the same offset: one wins, the rest get 409; the upload
    then finishes and opens to exactly the file."""
    data = samples.screen_webm.read_bytes()
    tus = Tus(stack_app.test_client(), employee)
    url = tus.new(len(data))
    statuses: list[int] = []

    def send():
        client = Tus(stack_app.test_client(), employee)
        statuses.append(client.patch(url, 0, data[:300_000]).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(204) >= 1
    assert set(statuses) <= {204, 409}
    tus.send_all(url, data)
    made = tus.make_recording(screen=url)
    assert made.get_json()["media_sha256"]["screen"] == hashlib.sha256(data).hexdigest()


def test_the_policy_limit_applies_to_the_actual_bytes(tus, rt, samples, make_person, client):
    admin = make_person("admin")
    before = client.get("/api/v1/admin/policy", headers=admin.headers).get_json()
    data = with_marker(samples, 80 * CHUNK)
    try:
        limit = 1 << 20  # the smallest the policy allows: 64 chunks
        changed = client.put(
            "/api/v1/admin/policy", json={"max_upload_bytes": limit}, headers=admin.headers
        )
        assert changed.status_code == 200, changed.get_json()
        assert tus.create(limit + 1).status_code == 413
        url = tus.new(None)  # deferred: only the bytes themselves can be checked
        ok = tus.patch(url, 0, data[: 60 * CHUNK])
        assert ok.headers["Upload-Offset"] == str(60 * CHUNK)
        before_refusal = snapshot(rt, url)
        refused = tus.patch(url, 60 * CHUNK, data[60 * CHUNK : 70 * CHUNK])
        assert refused.status_code == 413
        assert refused.get_json()["error"]["code"] == "upload_too_large"
        assert snapshot(rt, url) == before_refusal
        assert client.options("/api/v1/uploads").headers["Tus-Max-Size"] == str(limit)
    finally:
        client.put(
            "/api/v1/admin/policy",
            json={"max_upload_bytes": before["max_upload_bytes"]},
            headers=admin.headers,
        )


# --- expiry --------------------------------------------------------------------------------------


def test_expired_uploads_are_deleted_by_the_scheduled_job(tus, rt, samples, stack_app):
    import worker.tasks  # noqa: F401 - registers the task code
    from worker.celery_app import create_celery

    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 3 * CHUNK])
    fresh = tus.new(len(data))
    row = upload_row(rt, url)
    with rt.db.session() as session:
        session.execute(
            update(Upload).where(Upload.id == row.id).values(expires_at=utcnow() - timedelta(1))
        )
    assert tus.head(url).status_code == 404  # expired: gone for its owner at once
    celery = create_celery(rt.settings)
    try:
        assert celery.tasks["worker.tasks.delete_expired_uploads"]() >= 1
    finally:
        celery.runtime.db.dispose()
    assert stored(rt, url) == {}
    with rt.db.session() as session:
        assert session.get(Upload, row.id) is None
        assert session.get(DataKey, row.key_id) is None
    assert tus.head(fresh).status_code == 200


def test_the_reconciler_keeps_live_pieces_and_removes_orphans(tus, rt, samples):
    from app.services.reconcile import reconcile

    data = samples.screen_webm.read_bytes()
    url = tus.new(len(data))
    tus.patch(url, 0, data[: 3 * CHUNK])
    orphan = f"uploads/{uuid.uuid4()}/{uuid.uuid4()}"
    rt.store.put_stream(orphan, [b"ciphertext of a piece whose request died"])
    time.sleep(0.01)
    reconcile(rt, min_orphan_age=timedelta(0))
    assert not rt.store.exists(orphan)
    assert sorted(stored(rt, url)) == sorted(p.name for p in pieces(rt, url))
    assert tus.offset(url) == 3 * CHUNK


# --- on S3: one multipart upload per tus upload --------------------------------------------

MIB = 1 << 20


def open_parts(rt, url: str) -> list[tuple[str, str]]:
    """The S3 multipart uploads still open for this upload (listed through the minio SDK)."""
    return rt.store.open_parts(f"recordings/{url.rsplit('/', 1)[1]}/")


def test_on_s3_the_bytes_go_part_by_part_into_the_recordings_object(
    tus, rt, samples, client, employee, monkeypatch
):
    """Requests of any size: each whole 5 MiB run of sealed bytes becomes a part of one
    multipart upload as it arrives, only the sealed rest waits as a small piece (ciphertext),
    and the draft keeps the completed object where it is: nothing is read back or copied."""
    assert rt.store.supports_parts
    data = with_marker(samples, 12 * MIB + 4321)
    url = tus.new(len(data), filetype="video/webm")
    row = upload_row(rt, url)
    assert tus.patch(url, 0, data[: 3 * MIB + 5]).headers["Upload-Offset"] == str(3 * MIB)
    # Under a part so far: no multipart upload yet, one piece, no plaintext in it.
    assert upload_row(rt, url).multipart_id is None and open_parts(rt, url) == []
    kept = stored(rt, url)
    assert len(kept) == 1 and all(b"PLAINTEXT-MARKER" not in b for b in kept.values())
    assert tus.patch(url, 3 * MIB, data[3 * MIB : 7 * MIB]).status_code == 204
    middle = upload_row(rt, url)
    assert middle.multipart_id is not None and len(middle.parts) == 1
    assert open_parts(rt, url) == [(uploads.object_name(middle), middle.multipart_id)]
    waiting = stored(rt, url)  # the piece became part of the part; the rest waits
    assert len(waiting) == 1 and sum(len(b) for b in waiting.values()) < uploads.PART_BYTES
    assert all(b"PLAINTEXT-MARKER" not in b for b in waiting.values())
    # A wrong checksum after a part went out: nothing acknowledged changes.
    bad = tus.patch(
        url,
        7 * MIB,
        data[7 * MIB : 12 * MIB + 100],
        Upload_Checksum="sha256 " + base64.b64encode(hashlib.sha256(b"x").digest()).decode(),
    )
    assert bad.status_code == 460
    after_bad = upload_row(rt, url)
    assert (after_bad.offset, after_bad.parts) == (middle.offset, middle.parts)
    assert sorted(stored(rt, url)) == sorted(waiting)
    # The last request completes it; the pieces are gone and no multipart upload is left.
    tus.send_all(url, data)
    done = upload_row(rt, url)
    assert done.complete and done.multipart_id is None and done.parts is None
    assert open_parts(rt, url) == [] and stored(rt, url) == {}
    assert done.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    name = uploads.object_name(done)
    assert rt.store.size(name) == done.stored_size
    body = b"".join(rt.store.iter_object(name))
    assert b"PLAINTEXT-MARKER" not in body
    assert hashlib.sha256(body).hexdigest() == done.stored_sha256

    def no_copy(*args, **kwargs):
        raise AssertionError("the upload's object was copied")

    monkeypatch.setattr(rt.store, "compose", no_copy)
    made = tus.make_recording(screen=url)
    assert made.status_code == 201, made.get_json()
    recording = made.get_json()
    assert recording["id"] == str(row.id)  # the upload's id: its object is already in place
    assert recording["media_sha256"]["screen"] == hashlib.sha256(data).hexdigest()
    media = client.get(f"/media/recordings/{recording['id']}/screen", headers=employee.headers)
    assert media.get_data() == data
    assert rt.store.exists(name)


def test_on_s3_termination_and_expiry_leave_no_multipart_upload_or_piece(tus, rt, samples):
    data = with_marker(samples, 8 * MIB)
    cancelled, expired = tus.new(len(data)), tus.new(len(data))
    for url in (cancelled, expired):
        assert tus.patch(url, 0, data[: 6 * MIB + 3]).status_code == 204
        assert len(open_parts(rt, url)) == 1 and len(stored(rt, url)) == 1
    rows = {url: upload_row(rt, url) for url in (cancelled, expired)}

    assert tus.client.delete(cancelled, headers=tus.headers).status_code == 204
    assert open_parts(rt, cancelled) == [] and stored(rt, cancelled) == {}

    with rt.db.session() as session:
        session.execute(
            update(Upload)
            .where(Upload.id == rows[expired].id)
            .values(expires_at=utcnow() - timedelta(1))
        )
    assert uploads.delete_expired(rt) >= 1
    assert open_parts(rt, expired) == [] and stored(rt, expired) == {}
    with rt.db.session() as session:
        for row in rows.values():
            assert session.get(Upload, row.id) is None
            assert session.get(DataKey, row.key_id) is None


def test_on_s3_a_finished_upload_not_yet_a_draft_is_kept_and_then_deleted(tus, rt, samples):
    """Finished, its object is complete under the recording's name-to-be: the reconciler
    keeps it while the upload lives; cancelling the upload deletes it."""
    from app.services.reconcile import reconcile

    data = with_marker(samples, 6 * MIB)
    url = tus.new(len(data))
    tus.send_all(url, data, piece=4 * MIB)
    name = uploads.object_name(upload_row(rt, url))
    reconcile(rt, min_orphan_age=timedelta(0))
    assert rt.store.exists(name)
    assert tus.client.delete(url, headers=tus.headers).status_code == 204
    assert not rt.store.exists(name) and open_parts(rt, url) == []


def test_on_s3_screen_and_audio_from_two_uploads_the_second_is_copied(tus, rt, samples, client):
    screen = with_marker(samples, 5 * MIB + 999)
    audio = samples.call_wav.read_bytes()
    screen_url, audio_url = tus.new(len(screen)), tus.new(len(audio))
    tus.send_all(screen_url, screen)
    tus.send_all(audio_url, audio)
    audio_row = upload_row(rt, audio_url)
    made = tus.make_recording(screen=screen_url, audio=audio_url)
    assert made.status_code == 201, made.get_json()
    recording = made.get_json()
    assert recording["id"] == screen_url.rsplit("/", 1)[1]
    assert not rt.store.exists(uploads.object_name(audio_row))  # copied, then deleted
    for part, data in (("screen", screen), ("audio", audio)):
        body = client.get(f"/media/recordings/{recording['id']}/{part}", headers=tus.person.headers)
        assert body.get_data() == data


@contextlib.contextmanager
def database_refuses_completion(rt):
    """PostgreSQL itself refuses to commit an upload's completion while this lasts (a trigger),
    as when the database goes away between the store's completion and the commit."""
    with rt.db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION cr_test_refuse_completion() RETURNS trigger AS $$ BEGIN "
                "IF NEW.completed_at IS NOT NULL AND OLD.completed_at IS NULL THEN "
                "RAISE EXCEPTION 'the test refuses this commit'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER cr_test_refuse_completion BEFORE UPDATE ON uploads "
                "FOR EACH ROW EXECUTE FUNCTION cr_test_refuse_completion()"
            )
        )
    try:
        yield
    finally:
        with rt.db.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER cr_test_refuse_completion ON uploads"))
            connection.execute(text("DROP FUNCTION cr_test_refuse_completion()"))


def test_on_s3_a_last_request_whose_commit_failed_is_finished_by_its_retry(
    tus, rt, samples, client
):
    """The last request completes the object in the store, then the database refuses the
    commit: the row still holds the multipart upload, which no longer exists. The client's
    retry with the same bytes finishes the upload from the object already there; other bytes
    are refused and change nothing; the draft is the file."""
    data = with_marker(samples, 12 * MIB + 999)
    url = tus.new(len(data))
    assert tus.patch(url, 0, data[: 7 * MIB]).status_code == 204
    before = upload_row(rt, url)
    assert before.multipart_id is not None and len(before.parts) == 1
    waiting = stored(rt, url)
    rest = data[before.offset :]

    with database_refuses_completion(rt):
        failed = tus.patch(url, before.offset, rest)
    assert failed.status_code == 500  # the client tries again
    assert "refuses" not in failed.get_data(as_text=True)  # nothing of the database leaks
    row = upload_row(rt, url)
    assert (row.offset, row.multipart_id, row.parts, row.completed_at) == (
        before.offset,
        before.multipart_id,
        before.parts,
        None,
    )
    name = uploads.object_name(row)
    assert rt.store.exists(name) and open_parts(rt, url) == []  # completed in the store
    assert stored(rt, url) == waiting  # the piece that went into it is still there

    changed = bytearray(rest)
    changed[-5000] ^= 0x01
    refused = tus.patch(url, before.offset, bytes(changed))
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "upload_end_differs"
    assert upload_row(rt, url).offset == before.offset and stored(rt, url) == waiting
    for size in (3 * MIB, 2 * MIB):  # not the end (with and without a part's worth)
        short = tus.patch(url, before.offset, rest[:size])
        assert short.status_code == 409, short.get_json()
        assert upload_row(rt, url).offset == before.offset and stored(rt, url) == waiting

    retried = tus.patch(url, before.offset, rest)
    assert retried.status_code == 204, retried.get_json()
    assert retried.headers["Upload-Offset"] == str(len(data))
    done = upload_row(rt, url)
    assert done.complete and done.multipart_id is None and done.parts is None
    assert done.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert stored(rt, url) == {} and open_parts(rt, url) == []
    body = b"".join(rt.store.iter_object(name))
    assert len(body) == done.stored_size
    assert hashlib.sha256(body).hexdigest() == done.stored_sha256
    made = tus.make_recording(screen=url)
    assert made.status_code == 201, made.get_json()
    media = client.get(
        f"/media/recordings/{made.get_json()['id']}/screen", headers=tus.person.headers
    )
    assert media.get_data() == data


def test_on_s3_the_reconciler_aborts_multipart_uploads_no_upload_holds(tus, rt, samples):
    """A multipart upload left open when its abort failed (the upload is gone) is aborted by
    the reconciler; a live upload's is kept and goes on. (The age guard, which spares one
    younger than an orphan, is not exercised here: the S3 stand-in reports one fixed start
    time, in 2010, for every multipart upload.)"""
    from app.services.reconcile import reconcile

    data = with_marker(samples, 6 * MIB)
    live = tus.new(len(data))
    assert tus.patch(live, 0, data[: 6 * MIB - 7]).status_code == 204
    held = upload_row(rt, live)
    name = f"recordings/{uuid.uuid4()}/{uuid.uuid4()}"
    left = rt.store.start_parts(name)
    rt.store.put_part(name, left, 1, os.urandom(1000))
    everything = rt.store.open_parts("recordings/")
    assert (name, left) in everything and (held.store_name, held.multipart_id) in everything

    report = reconcile(rt, min_orphan_age=timedelta(0))
    assert report["multipart_aborted"] >= 1
    remaining = rt.store.open_parts("recordings/")
    assert (name, left) not in remaining
    assert (held.store_name, held.multipart_id) in remaining
    tus.send_all(live, data)  # the live upload goes on and finishes
    assert upload_row(rt, live).complete
