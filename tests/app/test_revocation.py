"""``POST /api/v1/shares/{id}/revoke``: withdrawal is immediate and final (SPEC §2.4, §6, §8).

After the revoke response no request gets another byte, in any web process, whatever it has
cached; the wrapped key is gone from the database, the objects from the S3 server, and the
employee holds a certificate that verifies against the JWKS. Shares are made by the real worker
(small ones from the session samples, large ones from a noise video) once for the module.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import func, select, update

import crypto
from app.models import Comment, DataKey, MediaObject, Share, ViewSession
from app.services import playback
from tests.conftest import LiveServer, create_person, wait_for
from tests.media_helpers import (
    KINDS,
    audit_ok,
    error_code,
    finish,
    jwks,
    noise_screen,
    small_files,
    start_shares,
    stored_objects,
)

CHUNK = crypto.chunked.CHUNK_SIZE
BATCH = 128 * CHUNK  # app/services/playback.py BATCH_CHUNKS: the most one response may still send
WRITE = playback.WRITE_SIZE  # one write to the socket: what may be in hand when a revoke commits


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("noise")


@pytest.fixture(scope="module")
def shares(client, rt, worker, samples, noise_folder):
    """Six ready shares, one for each test that ends one and one that stays ready: three
    small, three with a ~10 MB rendition (started together)."""
    small = start_shares(client, rt, files=small_files(samples), count=3)
    big = start_shares(client, rt, files={"screen": noise_screen(noise_folder, seconds=3)}, count=3)
    ready = finish(client, small + big)
    names = ("small", "revoked", "twice", "stream", "live", "paused")
    return dict(zip(names, ready, strict=True))


def certificate_claims(client, token: str) -> dict:
    return crypto.verify(
        token, jwks(client), typ=crypto.CERTIFICATE_TYP, required=crypto.CERTIFICATE_CLAIMS
    )


def revoke(client, share, who=None):
    return client.post(f"/api/v1/shares/{share.id}/revoke", headers=(who or share.owner).headers)


def _status(rt, share_id: str):
    with rt.db.session() as session:
        return session.get(Share, uuid.UUID(share_id)).status.value


# --- who may revoke -------------------------------------------------------------------------


def test_only_the_owner_can_revoke(client, rt, shares):
    share = shares["small"]
    unknown = client.post(f"/api/v1/shares/{uuid.uuid4()}/revoke", headers=share.owner.headers)
    assert error_code(unknown, 404) == "not_found"
    other_employee = create_person(rt, "employee")
    foreign = revoke(client, share, other_employee)
    assert error_code(foreign, 404) == "not_found"
    assert foreign.get_json() == unknown.get_json()
    assert error_code(revoke(client, share, share.coach), 403) == "forbidden"
    assert error_code(revoke(client, share, create_person(rt, "admin")), 403) == "forbidden"
    anonymous = client.post(f"/api/v1/shares/{share.id}/revoke")
    assert error_code(anonymous, 401) == "unauthenticated"
    garbage = client.post("/api/v1/shares/not-an-id/revoke", headers=share.owner.headers)
    assert error_code(garbage, 404) == "not_found"
    get = client.get(f"/api/v1/shares/{share.id}/revoke", headers=share.owner.headers)
    assert error_code(get, 405) == "method_not_allowed"
    # None of that changed anything.
    assert _status(rt, share.id) == "ready"
    response = client.get(share.url(), headers={**share.coach.headers, "Range": "bytes=0-99"})
    assert response.status_code == 206


def test_a_share_past_its_end_date_is_gone_at_once(client, rt, shares):
    """The end date is checked on every request, before any sweeper has run."""
    share = shares["small"]
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share.id))
        original = row.expires_at
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    try:
        for kind in KINDS:
            response = client.get(share.url(kind), headers=share.coach.headers)
            assert error_code(response, 410) == "share_ended", kind
    finally:
        with rt.db.session() as session:
            session.execute(
                update(Share).where(Share.id == uuid.UUID(share.id)).values(expires_at=original)
            )
    assert client.get(share.url("poster.jpg"), headers=share.coach.headers).status_code == 200


# --- the revocation -------------------------------------------------------------------------


def test_revoke_destroys_everything_and_certifies_it(client, rt, shares, stack_env):
    share = shares["revoked"]
    sid = uuid.UUID(share.id)
    before = stored_objects(rt, share.id)
    names = sorted(o.name for o in before.values())
    key_id = next(iter(before.values())).key_id
    assert len(names) == 4 and all(n.startswith(f"shares/{share.id}/") for n in names)
    comment = client.post(
        f"/api/v1/shares/{share.id}/comments",
        json={"at_s": 1.5, "body": "Nice greeting"},
        headers=share.coach.headers,
    )
    assert comment.status_code == 201
    # Play it, so the key is cached in this process.
    assert client.get(share.url(), headers=share.coach.headers).status_code == 200
    assert rt.key_cache.get(key_id) is not None

    started = datetime.now(UTC)
    response = revoke(client, share)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "revoked"
    assert body["key_destroyed"] is True
    assert body["id"] == share.id
    revoked_at = datetime.fromisoformat(body["revoked_at"])
    assert started - timedelta(seconds=1) <= revoked_at <= datetime.now(UTC)

    # Access stopped, for every kind, for the coach and the owner alike.
    for who in (share.coach, share.owner):
        for kind in KINDS:
            gone = client.get(share.url(kind), headers={**who.headers, "Range": "bytes=0-99"})
            assert error_code(gone, 410) == "share_ended", (who.role, kind)
    # Comments: gone, and none can be added.
    listed = client.get(f"/api/v1/shares/{share.id}/comments", headers=share.coach.headers)
    assert error_code(listed, 410) == "share_ended"
    added = client.post(
        f"/api/v1/shares/{share.id}/comments",
        json={"at_s": 2, "body": "too late"},
        headers=share.coach.headers,
    )
    assert error_code(added, 410) == "share_ended"
    view = client.post(f"/api/v1/shares/{share.id}/views", headers=share.coach.headers)
    assert error_code(view, 410) == "share_ended"

    # The key: no wrapped row, nothing cached.
    with rt.db.session() as session:
        assert session.get(DataKey, uuid.UUID(key_id)) is None
        assert session.scalar(select(func.count()).where(Comment.share_id == sid)) == 0
        assert session.scalar(select(func.count()).where(MediaObject.share_id == sid)) == 0
        row = session.get(Share, sid)
        assert row.status.value == "revoked"
        assert row.title_sealed is None and row.note_sealed is None
    assert rt.key_cache.get(key_id) is None
    # The objects: absent by name and by prefix, asked of the S3 server directly.
    assert list(rt.store.list(f"shares/{share.id}/")) == []
    assert not any(rt.store.exists(name) for name in names)
    raw = rt.store.client.list_objects(rt.store.bucket, prefix=f"shares/{share.id}/")
    assert [o.object_name for o in raw] == []

    # The certificate.
    claims = certificate_claims(client, body["certificate"])
    assert claims["subject_type"] == "share" and claims["subject_id"] == share.id
    assert claims["sub"] == str(share.owner.id)
    assert claims["key_id"] == key_id and claims["key_destroyed"] is True
    assert sorted(claims["objects_deleted"]) == names
    assert claims["absence_check"]["all_absent"] is True
    assert claims["reason"] == "revoked"
    assert abs(datetime.fromisoformat(claims["destroyed_at"]) - revoked_at) < timedelta(seconds=1)
    # Tampered, it is refused.
    header, _, signature = body["certificate"].split(".")
    other = crypto.sign(rt.keyring, {**claims, "subject_id": str(uuid.uuid4())}, typ="x")
    with pytest.raises(crypto.TokenError) as refused:
        certificate_claims(client, f"{header}.{other.split('.')[1]}.{signature}")
    assert refused.value.reason == "bad_signature"

    # A repeat answers the same, byte for byte.
    again = revoke(client, share)
    assert again.status_code == 200
    assert again.get_json() == body
    assert again.data == response.data

    # What the owner and the coach see now.
    mine = client.get(f"/api/v1/shares/{share.id}", headers=share.owner.headers).get_json()
    assert mine["status"] == "revoked" and mine["certificate"] == body["certificate"]
    assert "media" not in mine and mine["title"] is None
    # The coach is told only that it ended (tests/app/test_share_end.py has the rest).
    theirs = client.get(f"/api/v1/shares/{share.id}", headers=share.coach.headers)
    assert error_code(theirs, 410) == "share_ended"

    # Recorded: revoked and objects deleted, in a chain that verifies (API, function, CLI).
    log = client.get(f"/api/v1/shares/{share.id}/access-log", headers=share.owner.headers)
    actions = [e["action"] for e in log.get_json()["events"]]
    assert "share.revoked" in actions and "share.objects_deleted" in actions
    revoked_event = next(e for e in log.get_json()["events"] if e["action"] == "share.revoked")
    assert revoked_event["actor_id"] == str(share.owner.id)
    audit_ok(rt)
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "consent-replay"), "audit", "verify"],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "audit chain ok" in cli.stdout


def test_concurrent_revokes_all_answer_the_one_certificate(stack_app, rt, shares):
    """Idempotent under a double click: every answer carries the stored certificate."""
    share = shares["twice"]
    barrier = threading.Barrier(4)

    def one(_):
        client = stack_app.test_client()
        barrier.wait(timeout=10)
        response = client.post(f"/api/v1/shares/{share.id}/revoke", headers=share.owner.headers)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert [status for status, _ in results] == [200] * 4, results
    certificates = {body["certificate"] for _, body in results}
    assert len(certificates) == 1 and None not in certificates, results
    assert len({body["revoked_at"] for _, body in results}) == 1
    with rt.db.session() as session:
        stored = session.get(Share, uuid.UUID(share.id)).certificate
    assert certificates == {stored}
    assert list(rt.store.list(f"shares/{share.id}/")) == []
    audit_ok(rt)


# --- revocation during a stream -------------------------------------------------------------


def test_a_response_in_progress_stops_within_one_batch(client, rt, shares):
    """The streaming response of one long range, read in this process: once the revoke has
    answered, at most one more batch comes, and the stream ends cleanly (by the state check,
    not by a failing read of the deleted objects)."""
    share = shares["stream"]
    size = stored_objects(rt, share.id)["rendition"].plaintext_size
    assert size > 4 * BATCH
    response = client.get(share.url(), headers=share.coach.headers, buffered=False)
    assert response.status_code == 200
    body = iter(response.response)
    received = 0
    while received < BATCH:  # the first batch and at least part of the next
        received += len(next(body))
    revoked = revoke(client, share)
    assert revoked.status_code == 200
    after = 0
    for block in body:  # must end, without an exception
        after += len(block)
    response.close()
    assert after <= BATCH, after
    assert received + after < size
    # What was served is tallied in memory and written by the process's flusher within seconds.

    def served() -> int:
        with rt.db.session() as session:
            return session.scalars(
                select(ViewSession.bytes_served).where(ViewSession.share_id == uuid.UUID(share.id))
            ).one()

    wait_for(lambda: served() == received + after, 10, "the bytes served to be recorded")


class _Reader:
    """Range requests in a loop, alternating over web servers (new connection each time)."""

    def __init__(self, urls: list[str], share, size: int) -> None:
        self.urls, self.share, self.size = urls, share, size
        self.results: list[tuple[float, float, str, int, int, bytes]] = []
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def run(self, offset_seed: int) -> None:
        n = offset_seed
        try:
            while not self.stop.is_set():
                base = self.urls[n % len(self.urls)]
                start = (n * 1_048_573) % (self.size - 65536)
                began = time.monotonic()
                try:
                    response = requests.get(
                        f"{base}/media/shares/{self.share.id}/video",
                        headers={
                            **self.share.coach.headers,
                            "Range": f"bytes={start}-{start + 65535}",
                            "Connection": "close",
                        },
                        timeout=30,
                    )
                except requests.exceptions.ChunkedEncodingError:
                    # Its headers went out, then the revoke committed before its first write:
                    # cut short, as it must be. Only a request begun before the revoke may be.
                    self.results.append((began, time.monotonic(), base, -1, 0, b""))
                    n += 1
                    continue
                ended = time.monotonic()
                self.results.append(
                    (
                        began,
                        ended,
                        base,
                        response.status_code,
                        len(response.content),
                        response.content[:200],
                    )
                )
                n += 1
        except BaseException as exc:
            self.errors.append(exc)


def _slow_stream(url: str, path: str, headers: dict, marks: dict, rcvbuf: int = 65536) -> None:
    """One GET of the whole video read slowly through a small receive buffer; records in
    ``marks`` the bytes received by the time the revoke answered, and in total."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    marks["port"] = sock.getsockname()[1]
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.sock = sock
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    marks["status"] = response.status
    marks["length"] = int(response.getheader("Content-Length") or 0)
    total = 0
    try:
        while True:
            block = response.read(16384)
            if not block:
                break
            total += len(block)
            marks["total"] = total
            time.sleep(0.004)  # about 4 MB/s
    except (http.client.IncompleteRead, OSError) as exc:
        marks["cut"] = repr(exc)
    finally:
        conn.close()
    marks["total"] = total
    marks["done"] = True


def _queued_bytes(client_port: int) -> int:
    """Bytes in flight on a loopback connection: unread by the client (its Recv-Q) plus
    unacknowledged by it (the server's Send-Q), from ``ss``."""
    out = subprocess.run(
        [
            "ss",
            "-tnH",
            "state",
            "established",
            f"( sport = :{client_port} or dport = :{client_port} )",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    total, ends = 0, set()
    for line in out.splitlines():
        recv_q, send_q, local, peer = line.split()[:4]
        if local.endswith(f":{client_port}"):
            total, ends = total + int(recv_q), ends | {"client"}
        elif peer.endswith(f":{client_port}"):
            total, ends = total + int(send_q), ends | {"server"}
    # Both ends of the live download must be measured, or the figure means nothing.
    assert ends == {"client", "server"}, out
    return total


@pytest.fixture(scope="module")
def second_server(stack_env, live_server, tmp_path_factory):
    """Another `consent-replay web` (its own process) next to live_server's two."""
    server = LiveServer(stack_env, tmp_path_factory.mktemp("web2") / "web.log", workers=1)
    server.start()
    yield server
    server.stop()


def test_no_byte_after_the_revoke_response_in_any_web_process(
    rt, shares, live_server, second_server
):
    revoke_while_streaming(rt, shares["live"], live_server.url, second_server.url)


def revoke_while_streaming(rt, share, first_url: str, second_url: str) -> None:
    """Readers fetch 64 KiB ranges from both servers and one client reads the whole video
    slowly from the second; the owner revokes through the first. Then: every request begun
    after the revoke answered got 410 and no media, and the long response stopped."""
    size = stored_objects(rt, share.id)["rendition"].plaintext_size
    urls = [first_url, second_url]
    reader = _Reader(urls, share, size)
    threads = [threading.Thread(target=reader.run, args=(seed,), daemon=True) for seed in range(4)]
    for thread in threads:
        thread.start()
    # Every server has served ranges (and so holds the key in its cache) before the revoke.
    wait_for(
        lambda: all(
            sum(1 for r in reader.results if r[2] == url and r[3] == 206) >= 5 for url in urls
        ),
        30,
        "ranges served by both servers",
        interval=0.05,
    )
    marks: dict = {}
    slow = threading.Thread(
        target=_slow_stream,
        args=(
            second_url,
            f"/media/shares/{share.id}/video",
            share.coach.headers,
            marks,
        ),
        daemon=True,
    )
    slow.start()
    wait_for(lambda: marks.get("total", 0) >= 512 * 1024, 30, "the long stream to start", 0.01)

    revoked = requests.post(
        f"{first_url}/api/v1/shares/{share.id}/revoke",
        headers=share.owner.headers,
        timeout=30,
    )
    revoke_answered = time.monotonic()
    marks["revoked"] = True
    # What the kernel already holds for the long response (sent before the revoke answered,
    # or being sent from the batch in hand), measured right now.
    queued = _queued_bytes(marks["port"])
    received_then = marks["total"]
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["key_destroyed"] is True

    wait_for(
        lambda: all(
            sum(1 for r in reader.results if r[2] == url and r[0] > revoke_answered) >= 10
            for url in urls
        ),
        30,
        "requests after the revoke on both servers",
        interval=0.05,
    )
    reader.stop.set()
    for thread in threads:
        thread.join(30)
    slow.join(60)
    assert not reader.errors, reader.errors

    before = [r for r in reader.results if r[1] < revoke_answered]
    after = [r for r in reader.results if r[0] > revoke_answered]
    cut = [r for r in reader.results if r[3] == -1]
    assert all(r[0] < revoke_answered for r in cut), cut
    assert sum(1 for r in before if r[3] == 206 and r[4] == 65536) >= 10
    for _, _, url, status, length, head in after:
        assert status == 410, (url, status, length)
        assert b'"share_ended"' in head and length < 1000, head
    assert {r[2] for r in after} == set(urls)

    # The long response in progress stopped: after the revoke answered, beyond what the
    # kernel's socket queues already held then, at most one batch; far from the whole.
    assert marks.get("done"), marks
    assert marks["status"] == 200
    late = marks["total"] - received_then
    # The other process stopped before its next write (NOTIFY), not one batch later.
    assert late <= queued + WRITE, (late, queued, marks)
    assert marks["total"] < marks["length"], marks

    # And nothing is left to serve from anywhere.
    for url in urls:
        for kind in KINDS:
            response = requests.get(
                f"{url}/media/shares/{share.id}/{kind}", headers=share.coach.headers, timeout=10
            )
            assert error_code(response, 410) == "share_ended"
    assert list(rt.store.list(f"shares/{share.id}/")) == []


def _settled_queue(port: int, timeout: float = 30) -> int:
    """The bytes in flight once the server is blocked on a reader that stopped reading."""
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = _queued_bytes(port)
        if queued != last:
            last, stable_since = queued, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            return queued
        time.sleep(0.05)
    raise AssertionError(f"the server kept sending to a reader that stopped ({last} queued)")


def test_a_paused_reader_gets_nothing_written_after_the_revoke(
    rt, shares, live_server, second_server
):
    """A client reads a little of the video through a small receive buffer and stops reading;
    the employee revokes through another web server. Whatever the client can read afterwards
    is what the kernel's queues held at the revoke, plus at most the one write the server had
    in hand: not a block written after the commit (finding 3 of issue 12: 2.1 MB were)."""
    share = shares["paused"]
    size = stored_objects(rt, share.id)["rendition"].plaintext_size
    host, port = second_server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    client_port = sock.getsockname()[1]
    token = share.coach.headers["Authorization"]
    sock.sendall(
        f"GET /media/shares/{share.id}/video HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {token}\r\nConnection: close\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    head, _, body = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    received = len(body)
    while received < 256 * 1024:  # a little, then the reader pauses
        received += len(sock.recv(16384))
    in_flight = _settled_queue(client_port)

    revoked = requests.post(
        f"{live_server.url}/api/v1/shares/{share.id}/revoke",
        headers=share.owner.headers,
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    at_revoke = _queued_bytes(client_port)  # the server is still blocked: nothing moved

    after = 0
    try:
        while block := sock.recv(65536):
            after += len(block)
    except OSError:
        pass
    finally:
        sock.close()
    written_after = after - at_revoke
    record_line = (received, in_flight, at_revoke, after, written_after)
    print("paused reader: received, in flight, at revoke, after, written after:", record_line)
    # The kernel's share is bounded (a small send buffer on media responses) and measured…
    assert at_revoke <= 512 * 1024, record_line
    # … and beyond it the server wrote at most the remainder of the write in hand.
    assert written_after <= WRITE, record_line
    assert received + after < size, record_line


@pytest.mark.proof
def test_no_byte_after_revokes_soak(client, rt, worker, noise_folder, live_server, second_server):
    """The same, ten times over, each share revoked through one server or the other."""
    pending = start_shares(
        client, rt, files={"screen": noise_screen(noise_folder, seconds=3)}, count=10
    )
    for n, share in enumerate(finish(client, pending, timeout=600)):
        urls = [live_server.url, second_server.url]
        revoke_while_streaming(rt, share, urls[n % 2], urls[(n + 1) % 2])
    audit_ok(rt)


# --- revoking a share that is still being made ------------------------------------------------


def _job_processes(share_id: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if any(f"share-{share_id}" in part for part in process.info["cmdline"] or []):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_revoking_a_processing_share_stops_the_job_and_leaves_nothing(
    client, rt, worker, stack_env, noise_folder
):
    pending = start_shares(client, rt, files={"screen": noise_screen(noise_folder, seconds=6)})[0]
    owner, coach, sid = pending.owner, pending.coaches[0], pending.id

    def transcoding():
        body = client.get(f"/api/v1/shares/{sid}", headers=owner.headers).get_json()
        assert body["status"] == "processing", body
        return body["progress"] >= 5 and _job_processes(sid)

    wait_for(transcoding, 120, "ffmpeg to be working on the share", interval=0.1)
    not_ready = client.get(f"/media/shares/{sid}/video", headers=coach.headers)
    assert error_code(not_ready, 422) == "share_not_ready"

    response = client.post(f"/api/v1/shares/{sid}/revoke", headers=owner.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "revoked" and body["key_destroyed"] is True
    claims = certificate_claims(client, body["certificate"])
    assert claims["subject_id"] == sid

    scratch = Path(stack_env["CR_SCRATCH_DIR"])
    wait_for(lambda: not _job_processes(sid), 60, "the job's ffmpeg to stop")
    wait_for(
        lambda: f"share {sid} ended while processing" in worker.log_path.read_text(),
        60,
        "the worker to notice the revoke",
    )
    assert not list(scratch.glob(f"share-{sid}-*")), "plaintext scratch left behind"
    assert list(rt.store.list(f"shares/{sid}/")) == []
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(sid))
        assert row.status.value == "revoked"
        assert session.get(DataKey, row.key_id) is None
        assert session.scalar(select(func.count()).where(MediaObject.share_id == row.id)) == 0
    gone = client.get(f"/media/shares/{sid}/video", headers=coach.headers)
    assert error_code(gone, 410) == "share_ended"
    audit_ok(rt)
