"""Ingest and the share job on the real stack: PostgreSQL, Redis, moto's S3, ffmpeg, a worker.

Ingest runs through a live gunicorn server (real chunked bodies, real early answers); the
share job runs on the session's Celery worker, or, where a test must hold the job still to
look inside it, by calling ``worker.pipeline.process_share`` from the test on an app whose
queue no worker reads (the opt-in is then a real API call whose message just waits).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import select
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
import redis as redis_lib
from sqlalchemy import func
from sqlalchemy import select as sql_select

from app.jobs import queue_names
from app.models import DataKey, MediaObject, Recording, Share, ShareStatus
from app.services import keys
from tests.conftest import ROOT, LiveServer, wait_for
from tests.samples import AGENT_HZ, CUSTOMER_HZ
from tests.worker import corpus
from worker import pipeline

MiB = 1 << 20


# --- helpers shared by the worker tests --------------------------------------------------------


def upload(client, person, parts: dict[str, tuple[bytes | Path, str]], **fields):
    """POST /api/v1/recordings with the given file parts; returns the response."""
    data: dict = {}
    for name, (content, filename) in parts.items():
        raw = content.read_bytes() if isinstance(content, Path) else content
        data[name] = (io.BytesIO(raw), filename)
    for key, value in fields.items():
        data[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return client.post(
        "/api/v1/recordings",
        data=data,
        headers=person.headers,
        content_type="multipart/form-data",
    )


def upload_ok(client, person, parts, **fields) -> dict:
    response = upload(client, person, parts, **fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def opt_in(client, employee, recording_id, coach, **options) -> dict:
    body = {
        "coach_ids": [str(coach.id)],
        "purpose": "Coaching on call openings",
        "expires_in_days": 7,
        **options,
    }
    response = client.post(
        f"/api/v1/recordings/{recording_id}/shares", json=body, headers=employee.headers
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def share_state(client, person, share_id) -> dict:
    response = client.get(f"/api/v1/shares/{share_id}", headers=person.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_share(client, person, share_id, want: str = "ready", timeout: float = 120) -> dict:
    """Poll the share until it reaches ``want``; fail at once if it lands elsewhere."""

    def settled():
        body = share_state(client, person, share_id)
        if body["status"] != "processing":
            assert body["status"] == want, body
            return body
        return None

    return wait_for(settled, timeout, f"share {share_id} to be {want}")


def store_names(rt, prefix: str) -> set[str]:
    return set(rt.store.list(prefix))


def read_object(rt, name: str) -> bytes:
    return b"".join(rt.store.iter_object(name))


def scratch_dirs(rt, share_id) -> list[Path]:
    root = rt.settings.scratch_dir
    return sorted(root.glob(f"share-{share_id}-*")) if root.is_dir() else []


class QuietApp:
    """The app on the same database, store and keyring, with a queue prefix no worker reads.

    Jobs it sends stay in Redis, where a test can read them, hand them to the real worker
    (:meth:`forward`), or run them itself with ``worker.pipeline``.
    """

    def __init__(self, stack_env: dict[str, str], **extra_env: str) -> None:
        self.prefix = f"quiet{uuid.uuid4().hex[:10]}."
        self.env = {**stack_env, "CR_QUEUE_PREFIX": self.prefix, **extra_env}
        self.app = build_app(self.env)
        settings = self.app.config["CR_SETTINGS"]
        self.rt = self.app.extensions["consent_replay"]
        self.client = self.app.test_client()
        self.redis = redis_lib.Redis.from_url(settings.broker_url)
        self.media_queue, self.io_queue = queue_names(settings)

    def raw_messages(self, queue: str | None = None) -> list[bytes]:
        return self.redis.lrange(queue or self.media_queue, 0, -1)

    def messages(self, queue: str | None = None) -> list[dict]:
        """Each waiting message as {"task", "args", "kwargs", "raw"}."""
        out = []
        for raw in self.raw_messages(queue):
            envelope = json.loads(raw)
            assert envelope["properties"]["body_encoding"] == "base64"
            args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            out.append(
                {
                    "task": envelope["headers"]["task"],
                    "args": args,
                    "kwargs": kwargs,
                    "raw": raw,
                }
            )
        return out

    def drop(self, queue: str | None = None) -> None:
        self.redis.delete(queue or self.media_queue)

    def forward(self, to_queue: str) -> int:
        """Move the waiting media jobs, byte for byte, onto a queue the worker reads."""
        moved = 0
        while self.redis.rpoplpush(self.media_queue, to_queue) is not None:
            moved += 1
        return moved

    def close(self) -> None:
        for key in self.redis.scan_iter(match=f"*{self.prefix}*"):
            self.redis.delete(key)
        self.rt.db.dispose()


def build_app(env: dict[str, str]):
    """create_app for a second app in this process, leaving Celery's current app as it was.

    create_app makes its Celery app the current and default one, and task functions called
    directly run in the Flask app of the current one: other tests must keep getting theirs.
    """
    from celery import _state

    from app import create_app
    from app.config import load_settings

    previous = _state.get_current_app()
    app = create_app(load_settings(env))
    app.config["TESTING"] = True
    previous.set_default()
    previous.set_current()
    return app


def run_task(app, name: str, *args):
    """Run a Celery task's body here, in ``app``'s context (as its worker would)."""
    import worker.tasks  # noqa: F401 - registers the tasks on every Celery app

    return app.extensions["celery"].tasks[name](*args)


def end_leftover_shares(rt, share_ids: Iterable) -> None:
    """Revoke what a test left processing, so no sweep elsewhere picks it up."""
    from app.services import shredding

    for share_id in share_ids:
        with contextlib.suppress(LookupError):
            shredding.end_share(rt, uuid.UUID(str(share_id)), reason="revoked", actor_id=None)


# --- raw HTTP, for early answers and chunked bodies ---------------------------------------------


def raw_upload(
    url: str,
    headers: dict[str, str],
    chunks: Iterable[bytes],
    *,
    chunked: bool,
    midway: callable | None = None,
    midway_after: int = 0,
) -> tuple[int, dict]:
    """Send a request body chunk by chunk and return (status, JSON body).

    The server may answer before the body is all sent (a size limit): the answer is read
    as soon as it arrives, and sending stops there.
    """
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = "POST /api/v1/recordings HTTP/1.1\r\n" + f"Host: {host}:{port}\r\n"
    for key, value in headers.items():
        head += f"{key}: {value}\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    sock.sendall((head + "\r\n").encode())
    sent, called, answered = 0, False, False
    try:
        for chunk in chunks:
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            sock.sendall(frame)
            sent += len(chunk)
            if midway is not None and not called and sent >= midway_after:
                called = True
                midway()
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
        if chunked and not answered:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while b"\r\n\r\n" not in response or len(response) < _wanted(response):
            block = sock.recv(65536)
            if not block:
                break
            response += block
    sock.close()
    status_line, _, rest = response.partition(b"\r\n")
    _headers, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body or b"{}")


def _wanted(response: bytes) -> int:
    head, _, _ = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 62


def multipart(fields: dict[str, str], files: dict[str, tuple[str, Iterable[bytes]]]):
    """(boundary, body chunks) for a multipart/form-data body built on the fly."""
    boundary = f"cr-{uuid.uuid4().hex}"

    def body() -> Iterator[bytes]:
        for name, value in fields.items():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
        for name, (filename, content) in files.items():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            yield from content
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return boundary, body


def blocks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def tmp_file_descriptors(pid: int) -> set[str]:
    """Open files of ``pid`` in the temporary directory, deleted ones included."""
    tmp = os.path.realpath(tempfile.gettempdir())
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.exists() else []:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(tmp + "/"):
                found.add(f"{fd.name}:{target}")
    return found


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet(stack_env, stack_app):
    app = QuietApp(stack_env)
    yield app
    app.close()


@pytest.fixture(scope="module")
def ingest_server(stack_env, stack_app, tmp_path_factory, quiet):
    """gunicorn with a 40 MiB upload limit; its jobs wait on the quiet queue."""
    server = LiveServer(
        {**quiet.env, "CR_MAX_UPLOAD_BYTES": "40M"},
        tmp_path_factory.mktemp("ingest-web") / "web.log",
        workers=1,
        threads=4,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def big_screen(tmp_path_factory) -> Path:
    """MP4 (H.264) at 1080p and 30 fps, a canary in its metadata and after its last box."""
    folder = tmp_path_factory.mktemp("big-screen")
    path = folder / "screen-1080p.mp4"
    corpus.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30:d=5"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-metadata", f"title={corpus.CANARY.decode()}"),
        str(path),
    )
    with open(path, "ab") as handle:
        handle.write(corpus.CANARY)
    return path


# --- ingest ------------------------------------------------------------------------------------


def test_upload_streams_encrypted_and_never_spools_plaintext(ingest_server, quiet, make_person):
    employee = make_person("employee")
    media_bytes = corpus.EBML_MAGIC + os.urandom(30 * MiB)  # sniffs as WebM
    web_pids = [p.pid for p in psutil.Process(ingest_server.process.pid).children(recursive=True)]
    assert web_pids, "no gunicorn worker process"
    baseline = {pid: tmp_file_descriptors(pid) for pid in web_pids}
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    seen_midway: dict[int, set[str]] = {}

    def look_inside() -> None:
        time.sleep(0.3)  # let the server take in what was sent
        for pid in web_pids:
            seen_midway[pid] = tmp_file_descriptors(pid) - baseline[pid]

    boundary, body = multipart(
        {"title": "A call about an invoice"}, {"screen": ("screen.webm", blocks(media_bytes))}
    )
    status, answer = raw_upload(
        ingest_server.url,
        {
            "Authorization": f"Bearer {employee.token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        body(),
        chunked=True,
        midway=look_inside,
        midway_after=15 * MiB,
    )
    assert status == 201, answer
    assert seen_midway and all(not files for files in seen_midway.values()), seen_midway
    assert set(os.listdir(tempfile.gettempdir())) - tmp_before == set()

    # The raw media's SHA-256 is kept, and the stored object is ciphertext of the same length.
    assert answer["media_sha256"] == {"screen": hashlib.sha256(media_bytes).hexdigest()}
    with quiet.rt.db.session() as session:
        (obj,) = session.scalars(
            sql_select(MediaObject).where(MediaObject.recording_id == uuid.UUID(answer["id"]))
        )
        name, plaintext_size = obj.name, obj.plaintext_size
    assert plaintext_size == len(media_bytes)
    stored = read_object(quiet.rt, name)
    assert len(stored) > len(media_bytes)
    for offset in (0, 7 * MiB, len(media_bytes) - 4096):
        assert media_bytes[offset : offset + 4096] not in stored


def test_werkzeug_form_parsing_would_be_seen_spooling():
    """Control for the check above: werkzeug's own form parser does show up as a tmp file."""
    from werkzeug.formparser import parse_form_data

    boundary, body = multipart({}, {"screen": ("s.webm", blocks(os.urandom(4 * MiB)))})
    baseline = tmp_file_descriptors(os.getpid())
    seen: set[str] = set()

    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.chunks = body()
            self.sent = 0
            self.pending = b""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if not self.pending:
                self.pending = next(self.chunks, b"")
                self.sent += len(self.pending)
                if self.sent > 3 * MiB and not seen:
                    seen.update(tmp_file_descriptors(os.getpid()) - baseline or {"none"})
            n = min(len(buffer), len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n

    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "wsgi.input": io.BufferedReader(Stream()),
        "wsgi.input_terminated": True,
    }
    _stream, _form, files = parse_form_data(environ)
    assert "screen" in files
    assert seen and seen != {"none"}, "werkzeug spooled without a visible temporary file"


def test_a_browser_session_upload_streams_like_a_token_upload(stack_app, rt, make_person):
    """The capture page uploads with the session cookie and the CSRF header: the CSRF check
    must not read the form (which would spool the media and leave the ingest an empty body)."""
    import re

    password = "a long enough test password 1"
    employee = make_person("employee", password=password)
    browser = stack_app.test_client()
    login_page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    signed_in = browser.post(
        "/login", data={"login": employee.login, "password": password, "csrf_token": token}
    )
    assert signed_in.status_code == 302
    page = browser.get("/", follow_redirects=True).get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    media_bytes = corpus.EBML_MAGIC + os.urandom(3 * MiB)
    response = browser.post(
        "/api/v1/recordings",
        data={"screen": (io.BytesIO(media_bytes), "screen.webm")},
        headers={"X-CSRFToken": csrf},  # what the capture page's fetch sends
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["media_sha256"]["screen"] == hashlib.sha256(media_bytes).hexdigest()


def _objects_and_rows(quiet, employee_id) -> tuple[set[str], int]:
    with quiet.rt.db.session() as session:
        rows = session.scalar(
            sql_select(func.count()).select_from(Recording).where(Recording.owner_id == employee_id)
        )
    return store_names(quiet.rt, "recordings/"), rows


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_over_the_limit_is_413_and_leaves_nothing(
    ingest_server, quiet, make_person, chunked
):
    employee = make_person("employee")
    objects_before, _ = _objects_and_rows(quiet, employee.id)
    boundary, body = multipart(
        {}, {"screen": ("big.webm", blocks(corpus.EBML_MAGIC + bytes(48 * MiB)))}
    )
    headers = {
        "Authorization": f"Bearer {employee.token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    if not chunked:
        headers["Content-Length"] = str(sum(len(c) for c in body()))
    status, answer = raw_upload(ingest_server.url, headers, body(), chunked=chunked)
    assert status == 413, answer
    assert answer["error"]["code"] == "upload_too_large"
    assert "40 MiB" in answer["error"]["message"]
    objects_after, rows = _objects_and_rows(quiet, employee.id)
    assert objects_after == objects_before and rows == 0


def test_upload_of_non_media_is_415(client, make_person, rt):
    employee = make_person("employee")
    for content, filename in (
        (b"%PDF-1.7\n" + os.urandom(4096), "invoice.pdf"),
        (b"#EXTM3U\n#EXTINF:10,\n/etc/passwd\n", "screen.webm"),
        (os.urandom(64 * 1024), "screen.mp4"),
    ):
        response = upload(client, employee, {"screen": (content, filename)})
        assert response.status_code == 415, response.get_json()
        assert response.get_json()["error"]["code"] == "not_media"
    # a good audio part does not save a bad screen part, and leaves no object behind
    before = store_names(rt, "recordings/")
    response = upload(
        client,
        employee,
        {"audio": (corpus.EBML_MAGIC + bytes(1000), "a.webm"), "screen": (b"text", "s.webm")},
    )
    assert response.status_code == 415
    assert store_names(rt, "recordings/") == before


class _BreakingStream:
    """A request body that fails after ``limit`` bytes, like a client that vanished."""

    def __init__(self, body: bytes, limit: int, error: type[BaseException] | None) -> None:
        self.data = io.BytesIO(body)
        self.limit = limit
        self.error = error

    def tell(self) -> int:
        return self.data.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        # werkzeug's test client measures the body this way: it declares the whole length
        return self.data.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        left = self.limit - self.data.tell()
        if left <= 0:
            if self.error is not None:
                raise self.error("connection reset by peer")
            return b""  # the body just ends early
        return self.data.read(left if size < 0 else min(size, left))

    def readinto(self, buffer) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)


@pytest.mark.parametrize("error", [None, ConnectionResetError], ids=["ends-early", "raises"])
def test_upload_that_breaks_off_leaves_no_object_and_no_row(client, rt, make_person, error):
    employee = make_person("employee")
    boundary, body = multipart(
        {"title": "cut"},
        {
            "audio": ("call.wav", [b"RIFF\x00\x00\x00\x00WAVE" + os.urandom(3 * MiB)]),
            "screen": ("s.webm", [corpus.EBML_MAGIC + os.urandom(20 * MiB)]),
        },
    )
    raw = b"".join(body())
    before = store_names(rt, "recordings/")
    # Cut inside the screen part, after the audio part was stored whole.
    response = client.post(
        "/api/v1/recordings",
        input_stream=_BreakingStream(raw, 3 * MiB + 17 * MiB, error),
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=employee.headers,
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] in {"upload_incomplete", "malformed_upload"}
    assert store_names(rt, "recordings/") == before
    with rt.db.session() as session:
        assert not session.scalar(
            sql_select(func.count()).select_from(Recording).where(Recording.owner_id == employee.id)
        )


# --- the share job through the broker -----------------------------------------------------------


def test_job_message_carries_only_the_share_id(quiet, rt, worker, make_person, samples):
    employee, coach = make_person("employee"), make_person("coach")
    title = f"Secret title {uuid.uuid4().hex}"
    recording = upload_ok(
        quiet.client,
        employee,
        {"screen": (samples.screen_webm, "s.webm"), "audio": (samples.call_wav, "c.wav")},
        title=title,
    )
    quiet.drop()  # the probe job of the upload
    share = opt_in(quiet.client, employee, recording["id"], coach, note="private note")
    assert share["status"] == "processing" and share["progress"] == 0

    # The opt-in committed before the job went out, and the message is only the share id.
    (message,) = quiet.messages()
    assert message["task"] == "worker.tasks.process_share"
    assert message["args"] == [share["id"]] and message["kwargs"] == {}
    raw = message["raw"]
    with quiet.rt.db.session() as session:
        key_ids = [
            session.get(Share, uuid.UUID(share["id"])).key_id,
            session.get(Recording, uuid.UUID(recording["id"])).key_id,
        ]
        wrapped = [session.get(DataKey, key_id).wrapped for key_id in key_ids]
        deks = [
            keys.load_data_key(session, quiet.rt.kek, quiet.rt.key_cache, key_id)
            for key_id in key_ids
        ]
    media_sample = samples.screen_webm.read_bytes()[200:264]
    forbidden = [title.encode(), b"private note", media_sample]
    for secret in [*deks, *wrapped]:
        forbidden += [secret, secret.hex().encode(), base64.b64encode(secret)]
        forbidden += [base64.urlsafe_b64encode(secret).rstrip(b"=")]
    decoded = base64.b64decode(json.loads(raw)["body"])
    for secret in forbidden:
        assert secret not in raw and secret not in decoded

    # That message, moved as it is onto the worker's queue, is all the job needs.
    live_media_queue, _ = queue_names(rt.settings)
    assert quiet.forward(live_media_queue) == 1
    body = wait_share(quiet.client, employee, share["id"])
    assert body["progress"] == 100 and body["error"] is None


# --- the rendition ------------------------------------------------------------------------------


def ffprobe(data: bytes, *args: str) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", "-i", "pipe:0"],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def decoded_audio(mp4: Path, channels: int) -> np.ndarray:
    raw = subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-i", str(mp4), "-vn"),
            *("-f", "f32le", "-ac", str(channels), "-ar", "48000", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels)


def tone_energy(signal: np.ndarray, hz: float, rate: int = 48000) -> float:
    """Energy of ``signal`` within ±20 Hz of ``hz`` (Hann-windowed FFT)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)))) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    return float(spectrum[(freqs > hz - 20) & (freqs < hz + 20)].sum())


def media_get(client, person, share_id, kind) -> bytes:
    response = client.get(f"/media/shares/{share_id}/{kind}", headers=person.headers)
    assert response.status_code == 200, (kind, response.status_code)
    return response.get_data()


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_rendition_meets_the_contract_and_nothing_is_stored_in_the_clear(
    client, rt, worker, make_person, samples, big_screen, tmp_path
):
    employee, coach = make_person("employee"), make_person("coach")
    recording = upload_ok(
        client,
        employee,
        {"screen": (big_screen, "screen.mp4"), "audio": (samples.call_wav, "call.wav")},
        customer_informed=True,
        agent_channel="left",
    )
    assert recording["media_sha256"] == {
        "screen": hashlib.sha256(big_screen.read_bytes()).hexdigest(),
        "audio": hashlib.sha256(samples.call_wav.read_bytes()).hexdigest(),
    }
    trim = {"start_s": 1.0, "end_s": 4.5}
    agent_only = opt_in(client, employee, recording["id"], coach, trim=trim)
    both = opt_in(client, employee, recording["id"], coach, trim=trim, include_customer_audio=True)
    assert jwt_claims(agent_only["receipt"])["media_sha256"] == recording["media_sha256"]

    # progress is visible while the job runs, within 0..100 and never going back
    seen = [agent_only["progress"]]

    def ready():
        body = share_state(client, coach, agent_only["id"])
        seen.append(body["progress"])
        assert body["status"] in {"processing", "ready"}, body
        return body["status"] == "ready" and body

    wait_for(ready, 120, "the share to be ready", interval=0.1)
    assert seen[0] == 0 and seen[-1] == 100
    assert all(0 <= p <= 100 for p in seen) and seen == sorted(seen), seen
    wait_share(client, coach, both["id"])

    for share, channels in ((agent_only, 1), (both, 2)):
        video = media_get(client, coach, share["id"], "video")
        info = ffprobe(video, "-show_format", "-show_streams")
        codecs = {s["codec_type"]: s for s in info["streams"]}
        assert codecs["video"]["codec_name"] == "h264" and codecs["audio"]["codec_name"] == "aac"
        assert codecs["audio"]["channels"] == channels
        assert abs(float(info["format"]["duration"]) - 3.5) <= 0.5
        assert codecs["video"]["width"] <= 1280 and codecs["video"]["height"] <= 720
        assert (codecs["video"]["width"], codecs["video"]["height"]) == (1280, 720)
        num, den = map(int, codecs["video"]["avg_frame_rate"].split("/"))
        assert num / den <= 15.0001
        keyframes = [
            float(p["pts_time"])
            for p in ffprobe(video, "-select_streams", "v", "-show_packets")["packets"]
            if "K" in p["flags"]
        ]
        assert keyframes[0] == pytest.approx(0, abs=0.07)
        gaps = np.diff([*keyframes, float(info["format"]["duration"])])
        assert gaps.max() <= 2.0 + 0.07, keyframes
        boxes = corpus.top_level_boxes(video)
        assert boxes.index(b"moov") < boxes.index(b"mdat"), boxes  # +faststart

        poster = media_get(client, coach, share["id"], "poster.jpg")
        sprite = media_get(client, coach, share["id"], "thumbnails.jpg")
        for jpeg in (poster, sprite):
            assert jpeg[:3] == b"\xff\xd8\xff"
            assert ffprobe(jpeg, "-show_streams")["streams"][0]["codec_name"] == "mjpeg"
        assert ffprobe(poster, "-show_streams")["streams"][0]["width"] == 640
        wave = json.loads(media_get(client, coach, share["id"], "waveform.json"))
        sprite_info = ffprobe(sprite, "-show_streams")["streams"][0]
        assert (sprite_info["width"], sprite_info["height"]) == (
            wave["thumbnails"]["columns"] * wave["thumbnails"]["width"],
            wave["thumbnails"]["rows"] * wave["thumbnails"]["height"],
        )
        assert wave["channels"] == channels and len(wave["peaks"]) == channels
        assert all(len(row) == wave["buckets"] for row in wave["peaks"])
        assert wave["duration_s"] == pytest.approx(3.5, abs=0.01)
        assert max(max(row) for row in wave["peaks"]) > 0.1  # the tones (amplitude 1/8)

        # The customer (1000 Hz, right) is gone unless chosen; the agent (440 Hz) is kept.
        path = tmp_path / f"{share['id']}.mp4"
        path.write_bytes(video)
        audio = decoded_audio(path, channels)
        agent = tone_energy(audio[:, 0], AGENT_HZ)
        customer = sum(tone_energy(audio[:, c], CUSTOMER_HZ) for c in range(channels))
        if channels == 1:
            assert customer < agent * 1e-4, (agent, customer)
        else:
            assert customer > agent * 0.1, (agent, customer)
            assert tone_energy(audio[:, 1], CUSTOMER_HZ) > tone_energy(audio[:, 1], AGENT_HZ)

        # Nothing in the store is plaintext: no MP4/JPEG/JSON, no canary, no slice of any output.
        plain = [video, poster, sprite, json.dumps(wave).encode()[:64]]
        samples_of_plain = [p[i : i + 32] for p in plain for i in (0, len(p) // 2, len(p) - 40)]
        names = store_names(rt, f"shares/{share['id']}/")
        assert len(names) == 4
        for name in names | store_names(rt, f"recordings/{recording['id']}/"):
            stored = read_object(rt, name)
            assert b"ftypisom" not in stored and corpus.CANARY not in stored, name
            assert not stored.startswith((b"\xff\xd8", b"{", corpus.EBML_MAGIC, b"RIFF"))
            for piece in samples_of_plain:
                assert piece not in stored, name
        assert not scratch_dirs(rt, share["id"])
    # the raw uploads, likewise
    for name in store_names(rt, f"recordings/{recording['id']}/"):
        stored = read_object(rt, name)
        assert big_screen.read_bytes()[100:164] not in stored
        assert samples.call_wav.read_bytes()[4000:4064] not in stored


# --- the job itself: idempotence, lease, failure, revocation, scratch ---------------------------


class HookedStore:
    """The real store, with a callback run after each finished put (to act mid-job)."""

    def __init__(self, store, after_put) -> None:
        self._store = store
        self._after_put = after_put
        self.puts: list[str] = []

    def put_stream(self, name, chunks):
        size = self._store.put_stream(name, chunks)
        self.puts.append(name)
        self._after_put(name)
        return size

    def __getattr__(self, attr):
        return getattr(self._store, attr)


def _quiet_share(quiet, make_person, parts, **options) -> tuple[dict, object, object]:
    employee, coach = make_person("employee"), make_person("coach")
    recording = upload_ok(quiet.client, employee, parts)
    share = opt_in(quiet.client, employee, recording["id"], coach, **options)
    quiet.drop()  # the job waits for this test to run it, not for a worker
    return share, employee, coach


def _share_row(rt, share_id) -> Share:
    with rt.db.session() as session:
        return session.get(Share, uuid.UUID(str(share_id)))


def _rows_of(rt, share_id) -> int:
    with rt.db.session() as session:
        return session.scalar(
            sql_select(func.count())
            .select_from(MediaObject)
            .where(MediaObject.share_id == uuid.UUID(str(share_id)))
        )


def test_job_is_idempotent_and_a_second_run_backs_off(quiet, make_person, samples):
    share, employee, _coach = _quiet_share(
        quiet, make_person, {"screen": (samples.screen_webm, "s.webm")}
    )
    sid = uuid.UUID(share["id"])
    release = threading.Event()
    seen: dict = {}

    def hold_first_upload(name: str) -> None:
        if len(hooked.puts) == 1:
            # while the first run holds the lease, a second run must back off
            try:
                pipeline.process_share(quiet.rt, sid)
            except pipeline.LeaseHeld as held:
                seen["retry_in"] = held.retry_in
            else:
                seen["retry_in"] = None
            seen["scratch"] = [
                (p, stat.S_IMODE(p.stat().st_mode)) for p in scratch_dirs(quiet.rt, sid)
            ]
            seen["out"] = [
                (p.name, stat.S_IMODE(p.stat().st_mode))
                for d, _ in seen["scratch"]
                for p in d.iterdir()
            ]
            release.wait(30)

    hooked = HookedStore(quiet.rt.store, hold_first_upload)
    outcome: list = []
    runner = threading.Thread(
        target=lambda: outcome.append(pipeline.process_share(replace(quiet.rt, store=hooked), sid))
    )
    runner.start()
    # "out" is recorded last: wait for it, not for the first entry (the hook is still writing).
    wait_for(lambda: "out" in seen, 60, "the first run to reach its first upload")
    assert seen["retry_in"] is not None and 1 < seen["retry_in"] <= 32
    # the scratch directory while the job works: private, and only this job's
    ((scratch, mode),) = seen["scratch"]
    assert mode == 0o700 and stat.S_IMODE(quiet.rt.settings.scratch_dir.stat().st_mode) == 0o700
    modes = dict(seen["out"])
    assert modes["screen.input"] == 0o600 and modes["out"] == 0o700
    release.set()
    runner.join(60)
    assert outcome and outcome[0].result == "ready", outcome
    assert not scratch.exists()

    row = _share_row(quiet.rt, sid)
    assert row.status is ShareStatus.READY and row.job_attempts == 1 and row.progress == 100
    names = store_names(quiet.rt, f"shares/{sid}/")
    assert len(names) == 4 and _rows_of(quiet.rt, sid) == 4

    # Running the job again on a ready share does nothing at all.
    again = pipeline.process_share(quiet.rt, sid)
    assert again.result == "nothing_to_do"
    assert store_names(quiet.rt, f"shares/{sid}/") == names and _rows_of(quiet.rt, sid) == 4
    assert _share_row(quiet.rt, sid).job_attempts == 1
    assert share_state(quiet.client, employee, sid)["status"] == "ready"


def test_bad_file_fails_at_once_with_a_human_message(quiet, make_person, tmp_path):
    fake = corpus.noise_after_magic(tmp_path)
    share, employee, _coach = _quiet_share(
        quiet, make_person, {"screen": (fake, "screen.webm")}, trim={"start_s": 0, "end_s": 5}
    )
    sid = uuid.UUID(share["id"])
    outcome = pipeline.process_share(quiet.rt, sid)
    assert outcome.result == "failed"
    assert outcome.detail == "The screen file could not be read as audio or video."
    body = share_state(quiet.client, employee, sid)
    assert body["status"] == "failed" and body["error"] == outcome.detail
    assert not store_names(quiet.rt, f"shares/{sid}/") and not scratch_dirs(quiet.rt, sid)
    # no retry: a failed share is final for the job
    assert pipeline.process_share(quiet.rt, sid).result == "nothing_to_do"
    assert _share_row(quiet.rt, sid).job_attempts == 1


def test_revoke_during_ffmpeg_stops_it_and_leaves_nothing(quiet, make_person, samples, monkeypatch):
    share, employee, _coach = _quiet_share(
        quiet,
        make_person,
        {"screen": (samples.screen_webm, "s.webm"), "audio": (samples.call_wav, "c.wav")},
    )
    sid = uuid.UUID(share["id"])
    # Check consent at every progress call, every 20 ms: a fast machine's short run is caught.
    monkeypatch.setattr(pipeline, "LEASE_RENEW_EVERY_S", 0.0)
    monkeypatch.setattr(pipeline.media, "PROGRESS_EVERY_S", 0.02)
    real_run = pipeline.media.run_ffmpeg
    events: list[str] = []

    def run_and_revoke(argv, *, total_s, timeout_s, on_progress):
        def progress(fraction: float) -> None:
            # Called only while ffmpeg runs: revoke at the first call.
            if "revoked" not in events:
                response = quiet.client.post(
                    f"/api/v1/shares/{sid}/revoke", headers=employee.headers
                )
                assert response.status_code == 200
                events.append("revoked")
            on_progress(fraction)

        try:
            real_run(argv, total_s=total_s, timeout_s=timeout_s, on_progress=progress)
        except pipeline.ShareEnded:
            events.append("ffmpeg stopped")
            raise
        events.append("ffmpeg finished")

    monkeypatch.setattr(pipeline.media, "run_ffmpeg", run_and_revoke)
    outcome = pipeline.process_share(quiet.rt, sid)
    assert outcome.result == "ended"
    assert events == ["revoked", "ffmpeg stopped"]
    scratch_root = quiet.rt.settings.scratch_dir
    assert not scratch_dirs(quiet.rt, sid)
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(scratch_root) in " ".join(p.info["cmdline"] or [])
    ]
    assert not store_names(quiet.rt, f"shares/{sid}/") and _rows_of(quiet.rt, sid) == 0
    row = _share_row(quiet.rt, sid)
    assert row.status is ShareStatus.REVOKED and row.certificate


def test_revoke_after_an_upload_deletes_what_the_job_stored(quiet, make_person, samples):
    share, employee, _coach = _quiet_share(
        quiet, make_person, {"screen": (samples.screen_webm, "s.webm")}
    )
    sid = uuid.UUID(share["id"])
    present_at_revoke: list[set[str]] = []

    def revoke_after_first(name: str) -> None:
        if len(hooked.puts) == 1:
            present_at_revoke.append(store_names(quiet.rt, f"shares/{sid}/"))
            response = quiet.client.post(f"/api/v1/shares/{sid}/revoke", headers=employee.headers)
            assert response.status_code == 200 and response.get_json()["key_destroyed"]

    hooked = HookedStore(quiet.rt.store, revoke_after_first)
    outcome = pipeline.process_share(replace(quiet.rt, store=hooked), sid)
    assert outcome.result == "ended"
    assert present_at_revoke == [{hooked.puts[0]}]  # the rendition was stored when it ended
    assert len(hooked.puts) == 1  # and nothing after it
    assert not store_names(quiet.rt, f"shares/{sid}/") and _rows_of(quiet.rt, sid) == 0
    assert not scratch_dirs(quiet.rt, sid)
    certificate = jwt_claims(share_state(quiet.client, employee, sid)["certificate"])
    assert certificate["absence_check"]["all_absent"] is True


def test_revoke_during_an_upload_stops_it_midway(quiet, make_person, samples, monkeypatch):
    share, employee, _coach = _quiet_share(
        quiet, make_person, {"screen": (samples.screen_webm, "s.webm")}
    )
    sid = uuid.UUID(share["id"])
    monkeypatch.setattr(pipeline, "LEASE_RENEW_EVERY_S", 0)  # every block checks consent
    started: list[str] = []

    class RevokingStore(HookedStore):
        def put_stream(self, name, chunks):
            def revoke_after_first_block():
                iterator = iter(chunks)
                yield next(iterator)
                if not started:
                    started.append(name)
                    response = quiet.client.post(
                        f"/api/v1/shares/{sid}/revoke", headers=employee.headers
                    )
                    assert response.status_code == 200
                yield from iterator

            return super().put_stream(name, revoke_after_first_block())

    store = RevokingStore(quiet.rt.store, lambda name: None)
    outcome = pipeline.process_share(replace(quiet.rt, store=store), sid)
    assert outcome.result == "ended"
    assert started and store.puts == []  # the put in progress was abandoned, none completed
    assert not quiet.rt.store.exists(started[0])
    assert not store_names(quiet.rt, f"shares/{sid}/") and _rows_of(quiet.rt, sid) == 0
    assert not scratch_dirs(quiet.rt, sid)


def test_probe_of_a_recording_whose_media_is_gone_fails_without_retrying(
    quiet, make_person, samples
):
    employee = make_person("employee")
    recording = upload_ok(quiet.client, employee, {"audio": (samples.call_wav, "c.wav")})
    quiet.drop()
    rid = uuid.UUID(recording["id"])
    with quiet.rt.db.session() as session:
        (name,) = session.scalars(
            sql_select(MediaObject.name).where(MediaObject.recording_id == rid)
        )
    quiet.rt.store.delete(name)
    # Not an outage: a missing object is final, so the probe says so instead of retrying.
    assert pipeline.probe_recording(quiet.rt, rid) == "failed"
    body = quiet.client.get(f"/api/v1/recordings/{rid}", headers=employee.headers).get_json()
    assert body["probe_error"] == "The recording's media is missing from storage; upload it again."

    other = upload_ok(quiet.client, employee, {"audio": (samples.call_wav, "c.wav")})
    quiet.drop()
    oid = uuid.UUID(other["id"])
    for stored in store_names(quiet.rt, f"recordings/{oid}/"):
        quiet.rt.store.delete(stored)
    with quiet.rt.db.session() as session:
        session.execute(MediaObject.__table__.delete().where(MediaObject.recording_id == oid))
    assert pipeline.probe_recording(quiet.rt, oid) == "failed"
    body = quiet.client.get(f"/api/v1/recordings/{oid}", headers=employee.headers).get_json()
    assert body["probe_error"] == "The recording has no playable length."


# --- scratch sweeping ---------------------------------------------------------------------------


def test_sweeper_removes_only_abandoned_scratch(tmp_path):
    root = tmp_path / "scratch"
    with pipeline.scratch_directory(root, "share-live") as live:
        (live / "screen.input").write_bytes(b"plaintext")
        abandoned = root / "share-killed-1"
        abandoned.mkdir()
        (abandoned / pipeline.LOCK_NAME).touch()  # its job died, so nothing holds the lock
        (abandoned / "screen.input").write_bytes(b"plaintext")
        fresh = root / "share-starting-2"
        fresh.mkdir()  # no lock yet: a job that is just starting
        stale = root / "share-old-3"
        stale.mkdir()
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        (root / "not-a-dir").write_text("x")

        removed = pipeline.sweep_scratch(root, min_age_s=60)
        assert sorted(removed) == ["share-killed-1", "share-old-3"]
        assert live.is_dir() and (live / "screen.input").exists()
        assert fresh.is_dir() and not abandoned.exists() and not stale.exists()
    assert not live.exists()  # the job's own exit removes its directory


def test_a_killed_job_leaves_scratch_the_sweeper_removes(quiet, make_person, samples):
    share, _employee, _coach = _quiet_share(
        quiet,
        make_person,
        {"screen": (samples.screen_webm, "s.webm"), "audio": (samples.call_wav, "c.wav")},
    )
    sid = share["id"]
    script = (
        "import os, sys, uuid\n"
        "from app import create_app\n"
        "from app.config import load_settings\n"
        "from worker import pipeline\n"
        "app = create_app(load_settings(os.environ))\n"
        "with app.app_context():\n"
        f"    pipeline.process_share(app.extensions['consent_replay'], uuid.UUID('{sid}'))\n"
    )
    job = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **quiet.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def converting():
            assert job.poll() is None, "the job ended before it could be killed"
            return [
                d for d in scratch_dirs(quiet.rt, sid) if (d / "out" / "rendition.mp4").exists()
            ]

        (left,) = wait_for(converting, 60, "the job to be converting")
        ffmpeg_procs = [p for p in psutil.Process(job.pid).children() if p.name() == "ffmpeg"]
        job.kill()
        job.wait(10)
    finally:
        job.kill()
    # ffmpeg goes with it, and the plaintext stays behind until the sweeper comes
    assert ffmpeg_procs
    _gone, alive = psutil.wait_procs(ffmpeg_procs, timeout=10)
    assert not alive
    assert (left / "screen.input").exists()
    with pipeline.scratch_directory(quiet.rt.settings.scratch_dir, "share-other") as other:
        removed = pipeline.sweep_scratch(quiet.rt.settings.scratch_dir, min_age_s=60)
        assert left.name in removed and other.name not in removed
        assert not left.exists() and other.is_dir()
    end_leftover_shares(quiet.rt, [sid])
