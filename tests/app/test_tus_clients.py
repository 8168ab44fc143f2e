"""Resumable uploads with a tus client nobody here wrote (tuspy) against the real web server
(gunicorn): whole files, checksums, odd chunk sizes, a web process killed mid-upload, and a
slow client holding a PATCH open. Each ends with the draft's plaintext hash equal to the
file's. (tus-js-client in Chromium: tests/browser/test_uploads.py.)"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path

import pytest
import requests
from tusclient import client as tus_client
from tusclient.uploader import Uploader

from app.api.uploads import READ_PIECE
from app.models import Upload
from tests.conftest import kill_server, wait_for

CHUNK = 16384


class Sha256Uploader(Uploader):
    """tuspy's own extension point for the checksum algorithm (it defaults to sha1)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def media_file(samples, folder: Path, size: int) -> Path:
    """A WebM head (the server sniffs it) and random bytes up to size."""
    head = samples.screen_webm.read_bytes()[:4096]
    path = folder / f"upload-{size}.webm"
    with open(path, "wb") as handle:
        handle.write(head)
        handle.write(os.urandom(size - len(head)))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_draft(server_url: str, person, **ids: str) -> dict:
    response = requests.post(
        f"{server_url}/api/v1/recordings",
        json={"upload_ids": ids, "title": "tuspy"},
        headers=person.headers,
        timeout=120,
    )
    assert response.status_code == 201, response.text
    return response.json()


def tus(server_url: str, person) -> tus_client.TusClient:
    return tus_client.TusClient(f"{server_url}/api/v1/uploads", headers=person.headers)


def test_tuspy_uploads_a_file_whole_and_with_checksums(live_server, make_person, samples, tmp_path):
    employee = make_person("employee")
    client = tus(live_server.url, employee)
    # One PATCH with the whole file (tuspy's default chunk size).
    path = media_file(samples, tmp_path, 3 * 1024 * 1024 + 123)
    uploader = client.uploader(
        file_path=str(path), metadata={"filename": path.name, "filetype": "video/webm"}
    )
    uploader.upload()
    assert uploader.offset == path.stat().st_size
    draft = make_draft(live_server.url, employee, screen=uploader.url.rsplit("/", 1)[1])
    assert draft["media_sha256"]["screen"] == sha256(path)

    # Chunks that are not whole 16 KiB chunks, each with a sha256 checksum: the server keeps
    # the whole chunks of each, and tuspy resends the rest from the offset it answers.
    audio = Path(samples.call_wav)
    checked = Sha256Uploader(
        file_path=str(audio),
        client=client,
        chunk_size=100_000,
        upload_checksum=True,
        metadata={"filename": "call.wav", "filetype": "audio/wav"},
    )
    offsets = []
    checked.set_url(checked.create_url())
    while checked.offset < checked.get_file_size():
        checked.upload_chunk()
        offsets.append(checked.offset)
    assert all(o % CHUNK == 0 for o in offsets[:-1]) and offsets[-1] == audio.stat().st_size
    assert len(offsets) > audio.stat().st_size // 100_000  # some bytes were sent twice
    draft = make_draft(live_server.url, employee, audio=checked.url.rsplit("/", 1)[1])
    assert draft["media_sha256"]["audio"] == sha256(audio)


def _trickle_patch(url: str, person, offset: int, payload: bytes, claimed: int) -> socket.socket:
    """A PATCH that says it brings `claimed` bytes, sends only `payload`, then goes quiet: a
    slow, or dying, client."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1]
    sock = socket.create_connection((host, int(port)))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {person.token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {claimed}\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


def _offset(url: str, person) -> int:
    response = requests.head(url, headers={**person.headers, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


@pytest.mark.parametrize(
    ("size_mib", "stop_mib"),
    [
        (6, 2),  # killed before a 5 MiB part was sent: the sealed bytes wait as pieces
        (13, 7),  # killed with the S3 multipart upload open and a part acknowledged
    ],
)
def test_an_upload_survives_a_web_process_killed_mid_patch(
    own_server, make_person, samples, tmp_path, rt, size_mib, stop_mib
):
    employee = make_person("employee")
    path = media_file(samples, tmp_path, size_mib * 1024 * 1024 + 777)
    data = path.read_bytes()
    client = tus(own_server.url, employee)
    first = client.uploader(file_path=str(path), chunk_size=1024 * 1024)
    first.upload(stop_at=stop_mib * 1024 * 1024)
    url = first.url
    committed = _offset(url, employee)
    assert committed == stop_mib * 1024 * 1024
    with rt.db.session() as session:
        row = session.get_one(Upload, uuid.UUID(url.rsplit("/", 1)[1]))
        assert (row.multipart_id is not None) == (stop_mib >= 5)  # on S3: parts are open

    # A PATCH is in flight (its bytes partly sent) when the web process dies hard.
    sock = _trickle_patch(
        url, employee, committed, data[committed : committed + 500_000], len(data) - committed
    )
    wait_for(lambda: _lock_held(rt, url), 30, "the PATCH to be under way")
    kill_server(own_server)
    sock.close()
    own_server.start()  # same port, same database and store, a new process: no state kept

    # The upload is where the last acknowledged request left it (the killed one added
    # nothing, or only whole chunks), and tuspy carries on from there.
    after = _offset(url, employee)
    assert committed <= after < len(data) and after % CHUNK == 0
    resumed = tus(own_server.url, employee).uploader(
        file_path=str(path), url=url, chunk_size=CHUNK * 64
    )
    assert resumed.offset == after
    resumed.upload()
    draft = make_draft(own_server.url, employee, screen=url.rsplit("/", 1)[1])
    assert draft["media_sha256"]["screen"] == sha256(path)


def _lock_held(rt, url: str) -> bool:
    """Whether a request holds the upload's advisory lock (PostgreSQL's own view of it)."""

    from sqlalchemy import text

    from app.services.uploads import _lock_key

    key = _lock_key(uuid.UUID(url.rsplit("/", 1)[1])) & 0xFFFFFFFFFFFFFFFF
    with rt.db.engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :hi AND objid = :lo AND objsubid = 1"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            ).scalar()
        )


def test_a_slow_client_holds_only_its_own_upload_and_keeps_its_whole_chunks(
    own_server, make_person, samples, tmp_path, rt
):
    employee, other = make_person("employee"), make_person("employee")
    path = media_file(samples, tmp_path, 2 * 1024 * 1024)
    data = path.read_bytes()
    url = tus(own_server.url, employee).uploader(file_path=str(path)).create_url()
    sent = 10 * CHUNK + 100
    sock = _trickle_patch(url, employee, 0, data[:sent], len(data))
    wait_for(lambda: _lock_held(rt, url), 30, "the slow request to hold the upload")
    # While it trickles: a second PATCH on the same upload is refused at once (409) ...
    racing = requests.patch(
        url,
        data=data[:CHUNK],
        headers={
            **employee.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=10,
    )
    assert racing.status_code == 409
    assert racing.json()["error"]["code"] == "upload_locked"
    # ... and everyone else is served as usual.
    elsewhere = tus(own_server.url, other).uploader(file_path=str(samples.call_wav))
    elsewhere.upload()
    assert _offset(elsewhere.url, other) == samples.call_wav.stat().st_size
    # The server drops the silent client after CR_CLIENT_TIMEOUT_S (5 s here) and keeps the
    # whole chunks it had sent (all but the 64 KiB read it was in); the lock is free again.
    wait_for(lambda: not _lock_held(rt, url), 30, "the stalled request to end")
    kept = _offset(url, employee)
    assert kept % CHUNK == 0 and sent - READ_PIECE - CHUNK <= kept <= sent
    sock.close()
    resumed = tus(own_server.url, employee).uploader(file_path=str(path), url=url)
    resumed.upload()
    draft = make_draft(own_server.url, employee, screen=url.rsplit("/", 1)[1])
    assert draft["media_sha256"]["screen"] == sha256(path)


def test_anonymous_and_other_roles_cannot_use_tus(live_server, make_person, samples):
    path = Path(samples.call_wav)
    for headers in ({}, make_person("coach").headers, make_person("admin").headers):
        uploader = tus_client.TusClient(f"{live_server.url}/api/v1/uploads", headers=headers)
        with pytest.raises(Exception) as refused:
            uploader.uploader(file_path=str(path)).upload()
        assert getattr(refused.value, "status_code", None) in (401, 403), refused.value
