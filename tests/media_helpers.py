"""Helpers for tests that need a ready share: upload, opt in, let the real worker make it.

Everything goes through the public API (the Flask test client of the session's ``stack_app``)
and the real Celery worker; nothing is faked. Use them from a module-scoped fixture and reuse
the share across the module's tests: making one costs a real transcode.

    @pytest.fixture(scope="module")
    def ready(stack_app, rt, worker, samples):
        return make_ready_share(stack_app.test_client(), rt, files=small_files(samples))

``noise_screen`` makes an input whose H.264 rendition is large (noise does not compress), for
tests that need a rendition of many 2 MiB batches.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.conftest import Person, create_person, wait_for

KINDS = ("video", "poster.jpg", "thumbnails.jpg", "waveform.json")


# --- the error shape --------------------------------------------------------------------------


def error_code(response, status: int) -> str:
    """Assert ``response`` is ``status`` with the JSON error shape of SPEC §5; return the code."""
    body = response.get_json(silent=True) if hasattr(response, "get_json") else response.json()
    assert response.status_code == status, (response.status_code, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body
    text = str(body)
    assert "Traceback" not in text and 'File "' not in text, body
    return error["code"]


# --- inputs -------------------------------------------------------------------------------------


def small_files(samples) -> dict[str, Path]:
    """The session's small samples: a 12 s 640x360 screen and a stereo call."""
    return {"screen": samples.screen_webm, "audio": samples.call_wav}


_noise_lock = threading.Lock()


def noise_mp4_args(seconds: float, size: str = "1280x720") -> list[str]:
    """ffmpeg's input and encoder arguments for H.264 of moving noise at 15 fps (the output
    file and any muxer options follow). Shared by the tests and bench/serve.py."""
    return [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={size}:r=15:d={seconds:g},noise=alls=60:allf=t+u",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
    ]


def noise_screen(folder: Path, seconds: float = 4, size: str = "1280x720") -> Path:
    """An H.264 MP4 of moving noise at 15 fps: its rendition is large (about 3.5 MB a second
    at 720p) and quick to make. Cached in ``folder``."""
    path = folder / f"noise-{size}-{seconds:g}s.mp4"
    with _noise_lock:
        if not path.exists():
            partial = path.with_suffix(".part.mp4")
            subprocess.run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    *noise_mp4_args(seconds, size),
                    str(partial),
                ],
                check=True,
                timeout=120,
            )
            partial.rename(path)
    return path


# --- recordings and shares through the API ------------------------------------------------------


def upload_recording(client, person: Person, files: dict[str, Path], **fields: Any) -> dict:
    data: dict[str, Any] = {
        field_name: (io.BytesIO(path.read_bytes()), path.name) for field_name, path in files.items()
    }
    data["title"] = fields.pop("title", "A call about an invoice")
    for key, value in fields.items():
        data[key] = str(value).lower() if isinstance(value, bool) else str(value)
    response = client.post(
        "/api/v1/recordings", data=data, headers=person.headers, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def wait_probed(client, person: Person, recording_id: str, timeout: float = 90) -> dict:
    def probed():
        body = client.get(f"/api/v1/recordings/{recording_id}", headers=person.headers).get_json()
        assert body["probe_status"] != "failed", body
        return body["probe_status"] == "ok" and body

    return wait_for(probed, timeout, f"the probe of recording {recording_id}")


def opt_in(
    client,
    owner: Person,
    recording_id: str,
    coaches: list[Person],
    *,
    purpose: str = "Coaching on the call opening",
    expires_in_days: int = 7,
    **extra: Any,
) -> dict:
    response = client.post(
        f"/api/v1/recordings/{recording_id}/shares",
        json={
            "coach_ids": [str(c.id) for c in coaches],
            "purpose": purpose,
            "expires_in_days": expires_in_days,
            **extra,
        },
        headers=owner.headers,
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def wait_ready(client, viewer: Person, share_id: str, timeout: float = 180) -> dict:
    def ready():
        body = client.get(f"/api/v1/shares/{share_id}", headers=viewer.headers).get_json()
        assert body["status"] not in ("failed", "revoked", "expired"), body
        return body["status"] == "ready" and body

    return wait_for(ready, timeout, f"share {share_id} to be ready", interval=0.25)


@dataclass
class ReadyShare:
    """A share the real worker made ready, with who made it and what went in."""

    id: str
    recording_id: str
    owner: Person
    coaches: list[Person]
    created: dict  # the 202 answer of the opt-in (holds the receipt)
    body: dict  # GET /api/v1/shares/{id} once ready
    uploads: dict[str, bytes] = field(default_factory=dict)

    @property
    def coach(self) -> Person:
        return self.coaches[0]

    def url(self, kind: str = "video") -> str:
        return f"/media/shares/{self.id}/{kind}"


@dataclass
class Pending:
    id: str
    recording_id: str
    owner: Person
    coaches: list[Person]
    created: dict
    uploads: dict[str, bytes]


def start_shares(
    client,
    rt,
    *,
    files: dict[str, Path],
    count: int = 1,
    owner: Person | None = None,
    coaches: list[Person] | None = None,
    recording_fields: dict[str, Any] | None = None,
    **share_args: Any,
) -> list[Pending]:
    """Upload one recording and opt it in ``count`` times (each share is its own job). One
    employee may have only MAX_PROCESSING_PER_USER shares in preparation: beyond that, each
    group of that many is another employee's (unless ``owner`` is given)."""
    from app.services.shares import MAX_PROCESSING_PER_USER

    if count > MAX_PROCESSING_PER_USER and owner is None:
        out: list[Pending] = []
        for first in range(0, count, MAX_PROCESSING_PER_USER):
            out += start_shares(
                client,
                rt,
                files=files,
                count=min(MAX_PROCESSING_PER_USER, count - first),
                coaches=coaches,
                recording_fields=recording_fields,
                **share_args,
            )
        return out
    owner = owner or create_person(rt, "employee")
    coaches = coaches or [create_person(rt, "coach")]
    recording = upload_recording(client, owner, files, **(recording_fields or {}))
    if "trim" in share_args:
        wait_probed(client, owner, recording["id"])
    uploads = {name: path.read_bytes() for name, path in files.items()}
    return [
        Pending(
            id=created["id"],
            recording_id=recording["id"],
            owner=owner,
            coaches=coaches,
            created=created,
            uploads=uploads,
        )
        for created in (
            opt_in(client, owner, recording["id"], coaches, **share_args) for _ in range(count)
        )
    ]


def finish(client, pending: list[Pending], timeout: float = 180) -> list[ReadyShare]:
    out = []
    for item in pending:
        body = wait_ready(client, item.owner, item.id, timeout)
        out.append(
            ReadyShare(
                id=item.id,
                recording_id=item.recording_id,
                owner=item.owner,
                coaches=item.coaches,
                created=item.created,
                body=body,
                uploads=item.uploads,
            )
        )
    return out


def make_ready_share(client, rt, *, files: dict[str, Path], **kwargs: Any) -> ReadyShare:
    """Upload, opt in, and wait for the real worker to make the share ready."""
    return finish(client, start_shares(client, rt, files=files, **kwargs))[0]


# --- looking underneath: the database and the store ----------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    id: str
    name: str
    kind: str
    stored_size: int
    plaintext_size: int
    key_id: str


def stored_objects(rt, share_id: str) -> dict[str, StoredObject]:
    """The share's media objects by kind (rendition, poster, thumbnails, waveform)."""
    from app.models import MediaObject, Share

    with rt.db.session() as session:
        share = session.get(Share, uuid.UUID(share_id))
        rows = session.scalars(select(MediaObject).where(MediaObject.share_id == share.id)).all()
        return {
            row.kind: StoredObject(
                str(row.id),
                row.name,
                row.kind,
                row.stored_size,
                row.plaintext_size,
                str(share.key_id),
            )
            for row in rows
        }


def chunk_offset(obj: StoredObject, index: int) -> int:
    """Where chunk ``index`` of a stored object starts (header, preamble, then chunks)."""
    import crypto

    header = len(crypto.encode_header(obj.key_id, obj.id))
    return header + crypto.chunked.PREAMBLE_SIZE + index * crypto.chunked.CHUNK_CIPHERTEXT_SIZE


@contextlib.contextmanager
def flipped_byte(rt, name: str, offset: int) -> Iterator[None]:
    """Flip one byte of a stored object in the S3 server itself (download, flip, re-upload
    with the minio client); put the original back afterwards."""
    client, bucket = rt.store.client, rt.store.bucket
    response = client.get_object(bucket, name)
    try:
        original = response.read()
    finally:
        response.close()
        response.release_conn()
    damaged = bytearray(original)
    damaged[offset] ^= 0x01
    client.put_object(bucket, name, io.BytesIO(bytes(damaged)), len(damaged))
    try:
        yield
    finally:
        client.put_object(bucket, name, io.BytesIO(original), len(original))


@dataclass
class Get:
    """One GET the app sent to the S3 server: what it asked for, and how it read the answer."""

    name: str
    offset: int
    length: int  # bytes asked for (the object's size for a GET without a range)
    reads: list[int] = field(default_factory=list)  # sizes of the reads off the response


class StoreReads:
    def __init__(self) -> None:
        self.calls: list[Get] = []
        self._lock = threading.Lock()

    def add(self, call: Get) -> None:
        with self._lock:
            self.calls.append(call)

    def of(self, name: str) -> list[Get]:
        return [c for c in self.calls if c.name == name]

    def bytes_of(self, name: str) -> int:
        return sum(c.length for c in self.of(name))


class _CountedResponse:
    def __init__(self, response, call: Get) -> None:
        self._response = response
        self._call = call

    def read(self, amt=None, *args, **kwargs):
        data = self._response.read(amt, *args, **kwargs)
        self._call.reads.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._response, name)


@contextlib.contextmanager
def counting_reads(store) -> Iterator[StoreReads]:
    """Record every GET this process's S3 store client sends (ranged or streamed), by wrapping
    the app's own minio client method: no mock, each call still goes to the S3 server."""
    reads = StoreReads()
    client = store.client
    original = client.get_object

    def get_object(bucket, name, offset=0, length=0, **kwargs):
        response = original(bucket, name, offset=offset, length=length, **kwargs)
        size = length or int(response.headers.get("Content-Length", 0))
        call = Get(name, offset, size)
        reads.add(call)
        return _CountedResponse(response, call)

    client.get_object = get_object
    try:
        yield reads
    finally:
        del client.get_object  # back to the class's method


def jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.get_json()


def audit_ok(rt) -> Any:
    from app.services import audit

    with rt.db.session() as session:
        verdict = audit.verify_chain(session)
    assert verdict.ok, verdict
    return verdict


# --- the OpenAPI document ------------------------------------------------------------------------


def openapi(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _inline(node: Any, spec: dict, depth: int = 0) -> Any:
    """The node with every local $ref replaced by what it points at."""
    assert depth < 50, "a $ref cycle"
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(target, spec, depth + 1)
        return {key: _inline(value, spec, depth) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, spec, depth) for value in node]
    return node


def documented_schema(
    spec: dict, method: str, path: str, status: int | str, media_type: str = "application/json"
) -> dict:
    """The schema the OpenAPI document gives for one response (the ``default`` one when the
    status is not listed), with its references resolved."""
    responses = spec["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status)) or responses["default"]
    response = _inline(response, spec)
    return response["content"][media_type]["schema"]


def assert_documented(
    spec: dict, method: str, path: str, response, media_type: str = "application/json"
) -> None:
    """The body of a real response validates against what the OpenAPI document says of it."""
    from openapi_schema_validator import OAS30Validator

    body = response.get_json() if hasattr(response, "get_json") else response.json()
    schema = documented_schema(spec, method, path, response.status_code, media_type)
    OAS30Validator(schema).validate(body)
