"""Resumable uploads (tus 1.0, SPEC §16): encrypted as they arrive, nothing plain at rest.

An upload is one file. Creating it makes its own data key (wrapped in ``data_keys``) and the
object id its header will name. Each ``PATCH`` is sealed on the fly (``crypto.Sealer``) and
the *whole* 16 KiB chunks it brought are stored as one new piece (``upload_segments``,
objects ``uploads/<upload-id>/<piece-id>``) before the new offset is acknowledged. The bytes
past the last whole chunk are dropped, never stored, and the answer's ``Upload-Offset`` tells
the client to send them again (tus allows a server to take less than it was sent); only the
request that reaches the declared length seals the short final chunk. Between two requests
nothing but ciphertext exists anywhere, and the sealer is rebuilt from the stored head (header,
salt, commitment) and the data key (``crypto.Sealer.resume``), in whichever web process the
next request lands.

- One request at a time per upload: a PATCH (and a termination) holds a lock on the upload for
  its whole length, a PostgreSQL advisory lock (or a file lock with SQLite) that dies with its
  connection or process; a second request meanwhile gets 409.
- A client that breaks off keeps what it sent: the whole chunks received are stored and
  counted, unless the request carried a checksum (which cannot be checked then).
- Many small pieces (the recorder sends one a second) are joined into one once they add up to
  ``MERGE_BELOW``, so an hour's recording is a few dozen objects, not thousands.
- ``POST /api/v1/recordings`` with ``upload_ids`` (``take_for_recording``) joins the pieces into
  ``recordings/<recording-id>/<object-id>`` (``ObjectStore.compose``: a link, or server-side
  copies on S3), and the recording keeps the upload's data key.
- Unfinished uploads expire with the draft lifetime: the scheduler deletes their pieces and
  shreds their key (``delete_expired``).

On S3 (``_PartsRun``) nothing is joined afterwards: each upload keeps one multipart upload of
``recordings/<upload-id>/<object-id>`` open across its requests (its id on the row, so it
survives a restart), every 5 MiB run of sealed bytes goes in as a part as it arrives, and only
the sealed rest (under 5 MiB, ciphertext) waits as small pieces until a later request tops it
up. The last request completes the multipart upload, and the draft made of the upload takes
the upload's id as its own, so its object is already where it belongs. Termination and expiry
abort the multipart upload and delete the pieces and the object.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

import crypto
from app.db import after_commit
from app.models import Upload, UploadSegment, User, utcnow
from app.runtime import Runtime
from app.services import keys, policy
from app.services.errors import (
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMedia,
)
from app.services.i18n import _, format_number
from app.services.ingest import UploadAborted, put_overlapped, sniff_container
from app.services.sealing import open_text, seal_text
from app.storage import PartStore

log = logging.getLogger(__name__)

CHUNK = crypto.chunked.CHUNK_SIZE
PREFIX = "uploads/"
MAX_OPEN_UPLOADS = 20
MERGE_BELOW = 8 * 1024 * 1024
# On S3: the bytes sent on as one part of the upload's multipart upload (the S3 minimum).
PART_BYTES = 5 * 1024 * 1024
CHECKSUM_ALGORITHMS = ("sha256",)
SNIFF_BYTES = 64
MEDIA_TYPES = ("video/", "audio/")
OTHER_MEDIA_TYPES = ("application/octet-stream", "application/ogg", "application/x-matroska")


class UploadLocked(Conflict):
    code = "upload_locked"


def limit_bytes(session: Session, rt: Runtime) -> int:
    """The largest upload accepted now: the policy's limit under the deployment's ceiling."""
    return min(policy.current_policy(session).max_upload_bytes, rt.settings.max_upload_bytes)


def too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    mib = max(1, limit // (1 << 20))
    what = (
        _("This file (%(size)s MiB)", size=format_number(round(size / (1 << 20))))
        if size
        else _("This upload")
    )
    return PayloadTooLarge(
        _(
            "%(what)s is larger than the upload limit of %(limit)s MiB. Shorten it (trim the "
            "recording or record the call in parts), or ask an admin about the limit.",
            what=what,
            limit=format_number(mib),
        ),
        code="upload_too_large",
        details={"limit_bytes": limit},
    )


# --- metadata ---------------------------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    result: dict[str, str] = {}
    if not header or not header.strip():
        return result
    if len(header) > 4096:
        raise InvalidRequest(_("Upload-Metadata is too long."), code="invalid_metadata")
    for pair in header.split(","):
        key, _space, value = pair.strip().partition(" ")
        if not key or not key.isascii() or " " in value.strip() or key in result:
            raise InvalidRequest(
                _(
                    "Upload-Metadata must be comma-separated 'key base64value' pairs, "
                    "each key once."
                ),
                code="invalid_metadata",
            )
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest(
                _("The Upload-Metadata value of %(key)r is not base64 of UTF-8 text.", key=key),
                code="invalid_metadata",
            ) from None
        result[key] = decoded
    return result


def encode_metadata(values: dict[str, str | None]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in values.items()
        if value is not None
    )


def _file_type(metadata: dict[str, str]) -> str | None:
    # tus clients send filename/filetype; Uppy-style clients name/type.
    filetype = (metadata.get("filetype") or metadata.get("type") or "").strip().lower()
    if not filetype:
        return None
    if len(filetype) > 100 or not (
        filetype.startswith(MEDIA_TYPES) or filetype.startswith(OTHER_MEDIA_TYPES)
    ):
        raise UnsupportedMedia(
            _(
                "A file of type %(type)s is not audio or video. Upload screen video (WebM, MP4, "
                "Matroska) or call audio (WAV, Ogg/Opus, MP3, M4A).",
                type=repr(filetype[:100]),
            ),
            code="not_media",
        )
    return filetype


# --- creating, reading, listing -----------------------------------------------------------------


def create_upload(
    session: Session, rt: Runtime, owner: User, *, length: int | None, metadata: dict[str, str]
) -> Upload:
    """A new, empty upload of ``length`` bytes (None: the length comes later)."""
    limit = limit_bytes(session, rt)
    if length is not None:
        if length == 0:
            raise InvalidRequest(_("The file is empty."), code="empty_file")
        if length > limit:
            raise too_large(limit, length)
    filetype = _file_type(metadata)
    filename = (metadata.get("filename") or metadata.get("name") or "").strip()[:255] or None
    now = utcnow()
    open_count = session.scalar(
        select(func.count())
        .select_from(Upload)
        .where(Upload.owner_id == owner.id, Upload.recording_id.is_(None), Upload.expires_at > now)
    )
    if (open_count or 0) >= MAX_OPEN_UPLOADS:
        raise Conflict(
            _(
                "You have %(count)s unfinished uploads. Finish or cancel some of them (My "
                "recordings) before starting another.",
                count=MAX_OPEN_UPLOADS,
            ),
            code="too_many_uploads",
        )
    key_id, dek = keys.create_data_key(session, rt.kek, owner_id=owner.id)
    upload_id = uuid.uuid4()
    upload = Upload(
        id=upload_id,
        owner_id=owner.id,
        key_id=key_id,
        object_id=uuid.uuid4(),
        length=length,
        offset=0,
        stored_size=0,
        filename_sealed=seal_text(dek, key_id, "filename", upload_id, filename)
        if filename
        else None,
        filetype=filetype,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=policy.current_policy(session).draft_lifetime_hours),
    )
    session.add(upload)
    session.flush()
    return upload


def get_own(
    session: Session, owner: User, upload_id: uuid.UUID | str, *, for_update: bool = False
) -> Upload:
    """The caller's upload; someone else's, or an expired one, is no upload (404)."""
    try:
        uid = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound("upload") from None
    query = select(Upload).where(
        Upload.id == uid, Upload.owner_id == owner.id, Upload.expires_at > utcnow()
    )
    if for_update:
        query = query.with_for_update()
    upload = session.scalar(query)
    if upload is None:
        raise NotFound("upload")
    return upload


def _not_used(upload: Upload) -> Upload:
    if upload.recording_id is not None:
        raise Gone(
            _("This upload has already become a recording; find it in My recordings."),
            code="upload_used",
        )
    return upload


def get_open(session: Session, owner: User, upload_id: uuid.UUID | str) -> Upload:
    """The caller's upload that has not become a recording yet (410 if it has)."""
    return _not_used(get_own(session, owner, upload_id))


def filename_of(session: Session, rt: Runtime, upload: Upload) -> str | None:
    if upload.filename_sealed is None:
        return None
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, upload.key_id)
        return open_text(dek, upload.key_id, "filename", upload.id, upload.filename_sealed)
    except (keys.KeyDestroyed, crypto.DecryptionError):
        return None


def present(session: Session, rt: Runtime, upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "offset": upload.offset,
        "length": upload.length,
        "complete": upload.complete,
        "filename": filename_of(session, rt, upload),
        "filetype": upload.filetype,
        "container": upload.container,
        "created_at": upload.created_at,
        "updated_at": upload.updated_at,
        "expires_at": upload.expires_at,
    }


def list_open(session: Session, owner: User) -> list[Upload]:
    """The caller's uploads that have not become a recording and have not expired."""
    return list(
        session.scalars(
            select(Upload)
            .where(
                Upload.owner_id == owner.id,
                Upload.recording_id.is_(None),
                Upload.expires_at > utcnow(),
            )
            .order_by(Upload.created_at.desc())
        )
    )


# --- one request at a time ----------------------------------------------------------------------


def _lock_key(upload_id: uuid.UUID) -> int:
    return int.from_bytes(upload_id.bytes[:8], "big", signed=True)


@contextlib.contextmanager
def upload_lock(rt: Runtime, upload_id: uuid.UUID) -> Iterator[None]:
    """Hold the upload for one request, or raise UploadLocked (409) if another holds it.

    PostgreSQL: a session advisory lock on a connection of its own, released when the
    request ends, and by the server when the process dies. SQLite (the embedded default, one
    machine): an flock on a file in the instance folder, which the kernel releases likewise.
    """
    busy = UploadLocked(
        _(
            "Another request is writing to this upload right now. Wait for it to end, then ask "
            "for the offset (HEAD) and resume."
        ),
    )
    if rt.db.engine.dialect.name == "postgresql":
        key = _lock_key(upload_id)
        with rt.db.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                raise busy
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except Exception:  # noqa: BLE001 - whatever failed, the connection goes
                    conn.invalidate()  # never hand a connection that may hold it back
        return
    folder = rt.settings.instance_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f"upload-{upload_id}", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)


# --- running hashes -----------------------------------------------------------------------------


class _AlignedHash:
    """SHA-256 of exactly the bytes that get sealed: input past the last whole chunk waits
    here and is hashed only if the next input completes it (or the upload ends)."""

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self._held = bytearray()

    def update(self, data: bytes | memoryview) -> None:
        if self._held:
            take = min(CHUNK - len(self._held), len(data))
            self._held += data[:take]
            data = data[take:]
            if len(self._held) < CHUNK:
                return
            self.hasher.update(self._held)
            self._held.clear()
        whole = len(data) - len(data) % CHUNK
        self.hasher.update(data[:whole])
        self._held += data[whole:]

    def finish(self) -> None:
        self.hasher.update(self._held)
        self._held.clear()


@dataclass
class _Hashes:
    offset: int  # plaintext bytes covered
    plain: Any
    stored: Any


class _HashCache:
    """Hash states between the requests of an upload, in this process (hashlib states cannot
    be stored). A request that lands in another process, or after a restart, goes on without;
    the finished upload is then hashed once from the store."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[uuid.UUID, _Hashes] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def take(self, upload_id: uuid.UUID, offset: int) -> _Hashes | None:
        with self._lock:
            hashes = self._items.pop(upload_id, None)
        if offset == 0:
            return _Hashes(0, hashlib.sha256(), hashlib.sha256())
        return hashes if hashes is not None and hashes.offset == offset else None

    def put(self, upload_id: uuid.UUID, hashes: _Hashes) -> None:
        with self._lock:
            self._items[upload_id] = hashes
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, upload_id: uuid.UUID) -> None:
        with self._lock:
            self._items.pop(upload_id, None)


_hashes = _HashCache()


# --- appending: PATCH ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


@dataclass
class _State:
    """What a PATCH needs of the upload row, read while it holds the upload's lock."""

    id: uuid.UUID
    key_id: uuid.UUID
    object_id: uuid.UUID
    offset: int
    length: int | None
    stored_size: int
    first_piece: str | None
    pieces: int
    container: str | None
    # S3 (``_PartsRun``): the open multipart upload and its acknowledged parts, the pieces
    # waiting to become the next part, the sealed head.
    store_name: str | None = None
    multipart_id: str | None = None
    parts: list[list[Any]] | None = None
    pending: list[tuple[str, int]] | None = None
    sealed_head: bytes | None = None


@dataclass
class _Run:
    """One request's bytes on their way into a new piece."""

    state: _State
    sealer: crypto.Sealer
    length: int | None
    limit: int
    checksum: Checksum | None
    hashes: _Hashes | None
    received: int = 0
    broken: bool = False
    final: bool = False
    head: bytes = b""
    stored_hash: Any = None
    plain: _AlignedHash | None = None
    body_hash: Any = None


def parse_checksum(header: str | None) -> Checksum | None:
    """tus ``Upload-Checksum``: ``<algorithm> <base64 digest>``."""
    if header is None:
        return None
    algorithm, _space, value = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise InvalidRequest(
            _(
                "Unsupported checksum algorithm %(algorithm)r; use sha256.",
                algorithm=algorithm[:20],
            ),
            code="unsupported_checksum",
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 32:
        raise InvalidRequest(
            _("Upload-Checksum must be 'sha256 <base64 of the 32-byte digest>'."),
            code="invalid_checksum",
        )
    return Checksum(algorithm.lower(), digest)


def append(
    rt: Runtime,
    owner: User,
    upload_id: str,
    *,
    offset: int,
    body: Iterable[bytes],
    body_length: int | None,
    upload_length: int | None,
    checksum: Checksum | None,
) -> Upload:
    """Seal one PATCH's bytes into a new piece; returns the upload as now stored.

    ``body`` raises UploadAborted if the client breaks off. Refusals change nothing stored:
    409 for another offset (or a request already writing), 413 past the declared length or
    the limit, 415 if the first bytes are not media, 460 for a wrong checksum.
    """
    with rt.db.session() as session:
        uid = get_open(session, owner, upload_id).id
    with upload_lock(rt, uid):
        with rt.db.session() as session:
            upload = get_open(session, owner, uid)
            state = _state(session, upload)
            limit = limit_bytes(session, rt)
            dek = keys.load_data_key(session, rt.kek, rt.key_cache, upload.key_id)
        length = _check_request(state, offset, body_length, upload_length, limit)
        if state.length is not None and state.offset == state.length:
            with rt.db.session() as session:  # finished already: nothing more to write
                return get_own(session, owner, uid)
        run = _Run(
            state=state,
            sealer=_sealer(rt, dek, state),
            length=length,
            limit=limit,
            checksum=checksum,
            hashes=_hashes.take(state.id, state.offset),
        )
        if _parts_store(rt) is not None:
            return _PartsRun(rt, owner, run, dek).run(body)
        piece = f"{PREFIX}{state.id}/{uuid.uuid4()}"
        stored = _store_run(rt, run, body, piece)
        return _commit(rt, owner, run, piece, stored, dek)


def _state(session: Session, upload: Upload) -> _State:
    first = session.scalar(
        select(UploadSegment.name)
        .where(UploadSegment.upload_id == upload.id)
        .order_by(UploadSegment.seq)
        .limit(1)
    )
    pieces = session.scalar(
        select(func.count()).select_from(UploadSegment).where(UploadSegment.upload_id == upload.id)
    )
    return _State(
        id=upload.id,
        key_id=upload.key_id,
        object_id=upload.object_id,
        offset=upload.offset,
        length=upload.length,
        stored_size=upload.stored_size,
        first_piece=first,
        pieces=pieces or 0,
        container=upload.container,
        store_name=upload.store_name,
        multipart_id=upload.multipart_id,
        parts=list(upload.parts or []),
        pending=[(p.name, p.stored_size) for p in _pieces(session, upload.id)],
        sealed_head=upload.sealed_head,
    )


def _check_request(
    state: _State, offset: int, body_length: int | None, upload_length: int | None, limit: int
) -> int | None:
    """The checks made before a byte is read; returns the upload's length (if known)."""
    if offset != state.offset:
        raise Conflict(
            _(
                "This upload is at byte %(offset)s, not %(sent)s: ask for the offset (HEAD) "
                "and resume from there.",
                offset=state.offset,
                sent=offset,
            ),
            code="offset_mismatch",
        )
    length = state.length
    if upload_length is not None:
        if length is not None and upload_length != length:
            raise InvalidRequest(
                _("The upload's length is %(length)s bytes and cannot change.", length=length),
                code="length_mismatch",
            )
        if upload_length < offset or upload_length == 0:
            raise InvalidRequest(
                _(
                    "Upload-Length %(length)s is shorter than what has arrived (%(offset)s).",
                    length=upload_length,
                    offset=offset,
                ),
                code="length_mismatch",
            )
        if upload_length > limit:
            raise too_large(limit, upload_length)
        length = upload_length
    if body_length is not None:
        if length is not None and offset + body_length > length:
            raise past_length(length)
        if offset + body_length > limit:
            raise too_large(limit)
    if length is not None and offset == length and body_length:
        raise past_length(length)
    return length


def past_length(length: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        _("This would go past the upload's declared length of %(length)s bytes.", length=length),
        code="past_upload_length",
    )


def _sealer(rt: Runtime, dek: bytes, state: _State) -> crypto.Sealer:
    key_id, object_id = str(state.key_id), str(state.object_id)
    if state.offset == 0:
        return crypto.Sealer(dek, key_id=key_id, object_id=object_id)
    head = state.sealed_head
    if head is None:
        assert state.first_piece is not None  # a piece is stored with the first whole chunk
        size = crypto.sealed_head_size(key_id, object_id)
        head = rt.store.read_range(state.first_piece, 0, size)
    return crypto.Sealer.resume(dek, head, key_id=key_id, object_id=object_id, offset=state.offset)


def _store_run(rt: Runtime, run: _Run, body: Iterable[bytes], piece: str) -> int | None:
    """Seal the request's bytes into the new piece; its stored size, or None if the request
    brought no whole chunk (nothing is stored then)."""
    run.stored_hash = run.hashes.stored if run.hashes else None
    run.plain = _AlignedHash(run.hashes.plain) if run.hashes else None
    run.body_hash = hashlib.sha256() if run.checksum else None
    blocks = _sealed_blocks(run, body)
    try:
        size = put_overlapped(rt.store, piece, blocks)
    except BaseException:
        _delete_quietly(rt, [piece])
        raise
    if run.checksum is not None and run.body_hash.digest() != run.checksum.digest:
        _delete_quietly(rt, [piece])
        raise ChecksumMismatch(
            _(
                "The bytes received do not match Upload-Checksum; nothing of this request was "
                "kept. Send them again from the same offset."
            ),
        )
    if run.sealer.offset == run.state.offset and not run.final:
        _delete_quietly(rt, [piece])  # header only, or nothing: no piece for this request
        return None
    return size


def _sealed_blocks(run: _Run, body: Iterable[bytes]) -> Iterator[bytes]:
    for block in _received(run, body):
        if run.plain is not None:
            run.plain.update(block)
        for sealed in run.sealer.iter_update(block):
            if run.stored_hash is not None:
                run.stored_hash.update(sealed)
            yield sealed
    if run.final:
        if run.plain is not None:
            run.plain.finish()
        tail = run.sealer.finalize()
    else:
        run.sealer.discard_pending()
        tail = b""
    if run.stored_hash is not None:
        run.stored_hash.update(tail)
    yield tail


def _received(run: _Run, body: Iterable[bytes]) -> Iterator[bytes]:
    """The request's body, checked as it comes: the length and limit, the media sniff."""
    start = run.state.offset
    try:
        for block in body:
            if not block:
                continue
            run.received += len(block)
            total = start + run.received
            if run.length is not None and total > run.length:
                raise past_length(run.length)
            if total > run.limit:
                raise too_large(run.limit)
            if run.body_hash is not None:
                run.body_hash.update(block)
            if start == 0 and len(run.head) < SNIFF_BYTES:
                run.head += block[: SNIFF_BYTES - len(run.head)]
                _sniff_when_ready(run, end=False)
            yield block
    except UploadAborted:
        if run.checksum is not None:
            raise  # a checksum covers the whole body: nothing of a cut request is kept
        run.broken = True
        log.info("upload %s: the client broke off; keeping its whole chunks", run.state.id)
        return
    run.final = run.length is not None and start + run.received == run.length
    if start == 0:
        _sniff_when_ready(run, end=True)


def _sniff_when_ready(run: _Run, *, end: bool) -> None:
    if run.state.container is not None or not (len(run.head) >= SNIFF_BYTES or end):
        return
    if not run.head and not run.final:
        return
    container = sniff_container(run.head)
    if container is None:
        raise UnsupportedMedia(
            _(
                "This file is not audio or video we accept (WebM, Matroska, MP4, M4A, WAV, "
                "Ogg/Opus, MP3); nothing of it was kept."
            ),
            code="not_media",
        )
    run.state.container = container


def _commit(
    rt: Runtime, owner: User, run: _Run, piece: str, stored: int | None, dek: bytes
) -> Upload:
    state = run.state
    new_offset = run.sealer.offset if not run.final else state.offset + run.received
    with rt.db.session() as session:
        upload = get_open(session, owner, state.id)
        session.refresh(upload, with_for_update=True)
        if upload.offset != state.offset:  # cannot happen while we hold the lock
            raise Conflict(_("The upload changed under this request."), code="offset_mismatch")
        if stored is not None:
            session.add(
                UploadSegment(
                    upload_id=upload.id,
                    seq=state.pieces,
                    name=piece,
                    stored_size=stored,
                    plaintext_end=new_offset,
                )
            )
            upload.stored_size += stored
        _advance(upload, run, new_offset)
        try:
            session.commit()
        except BaseException:
            if stored is not None:
                _delete_quietly(rt, [piece])
            raise
    _after_commit(rt, run, new_offset, dek)
    with rt.db.session() as session:
        return get_own(session, owner, state.id)


def _advance(upload: Upload, run: _Run, new_offset: int) -> None:
    """The row after a request: where the upload is now, and its hashes if it ended it."""
    upload.offset = new_offset
    upload.length = run.length
    upload.container = upload.container or run.state.container
    upload.updated_at = utcnow()
    if run.final:
        upload.completed_at = upload.updated_at
        if run.hashes is not None:
            upload.plaintext_sha256 = run.hashes.plain.hexdigest()
            upload.stored_sha256 = run.hashes.stored.hexdigest()


def _after_commit(
    rt: Runtime, run: _Run, new_offset: int, dek: bytes, *, merge: bool = True
) -> None:
    state = run.state
    if run.final:
        _hashes.drop(state.id)
        if run.hashes is None:
            _hash_from_store(rt, state, dek)
    elif run.hashes is not None:
        _hashes.put(state.id, _Hashes(new_offset, run.hashes.plain, run.hashes.stored))
    if not merge:
        return
    try:
        _merge_small_pieces(rt, state.id)
    except Exception:  # the pieces are whole either way; joining them is housekeeping
        log.warning("upload %s: could not join small pieces", state.id, exc_info=True)


# --- appending on S3: one multipart upload per tus upload -------------------------------------


def _parts_store(rt: Runtime) -> PartStore | None:
    """The store if it keeps a multipart upload open across requests (S3), else None."""
    return cast(PartStore, rt.store) if getattr(rt.store, "supports_parts", False) else None


def object_name(upload: Upload | _State) -> str:
    """Where an upload's parts go on S3: the object a recording made of it keeps, under the
    upload's id, which becomes the recording's id (``recording_id_for``)."""
    return f"recordings/{upload.id}/{upload.object_id}"


class _PartSender:
    """Uploads parts on a helper thread, one waiting at most: the next part is read and
    sealed while the previous one uploads (as ``put_overlapped`` does for a plain put)."""

    def __init__(self, store: PartStore, name: str, upload_id: str) -> None:
        self._store, self._name, self._upload_id = store, name, upload_id
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=1)
        self.etags: dict[int, str] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="upload-parts", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                number, data = item
                try:
                    self.etags[number] = self._store.put_part(
                        self._name, self._upload_id, number, data
                    )
                except BaseException as exc:  # noqa: BLE001 - raised on the request's thread
                    self.error = exc

    def send(self, number: int, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((number, data))

    def close(self) -> dict[int, str]:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self.etags


class _PartsRun:
    """One PATCH on S3. The sealed bytes go into the upload's multipart upload (opened by the
    first request, its id kept on the row) a part of at least ``PART_BYTES`` at a time, as
    they come. The sealed bytes past the last part (under ``PART_BYTES`` in all, whole chunks,
    ciphertext) wait as small pieces until a later request tops them up into a part; the last
    request sends the rest as the last part and completes the upload, so the object is whole
    without reading anything back. Parts sent by a request that then fails are not
    acknowledged: the next request sends the same part numbers again, which replaces them.

    A last request can complete the object and then fail to commit (the database went away in
    between): the object is whole at its name while the row still holds the multipart upload,
    which no longer exists. Sealing is deterministic from the row's state, so the retried
    request's sealed bytes are compared with the object's end instead of being sent: the same
    bytes finish the upload as the first attempt would have; other bytes are refused (409)."""

    def __init__(self, rt: Runtime, owner: User, job: _Run, dek: bytes) -> None:
        state = job.state
        self.rt, self.owner, self.job, self.dek = rt, owner, job, dek
        self.store = cast(PartStore, rt.store)
        self.name = state.store_name or object_name(state)
        self.multipart_id = state.multipart_id
        self.parts: list[list[Any]] = [list(p) for p in state.parts or []]  # [number, ETag, size]
        self.pending = list(state.pending or [])  # (piece, size): stored, not in a part yet
        self.consumed: list[str] = []  # pieces sent on in a part by this request
        self.buffer = bytearray()
        self.sealed = 0  # bytes sealed by this request
        self.head_size = (
            crypto.sealed_head_size(str(state.key_id), str(state.object_id))
            if state.offset == 0
            else 0
        )
        self.head = bytearray()
        self.sender: _PartSender | None = None
        self.new_piece: tuple[str, int] | None = None
        # Whether an earlier attempt completed the object (asked once, before the first part
        # this request would send), and the hash of what this request would have sent.
        self.completed_earlier: bool | None = None
        self.unsent = hashlib.sha256()
        self.unsent_size = 0

    def run(self, body: Iterable[bytes]) -> Upload:
        job = self.job
        job.stored_hash = job.hashes.stored if job.hashes else None
        job.plain = _AlignedHash(job.hashes.plain) if job.hashes else None
        job.body_hash = hashlib.sha256() if job.checksum else None
        try:
            for sealed in _sealed_blocks(job, body):
                self._take(sealed)
            if job.checksum is not None and job.body_hash.digest() != job.checksum.digest:
                raise ChecksumMismatch(
                    _(
                        "The bytes received do not match Upload-Checksum; nothing of this "
                        "request was kept. Send them again from the same offset."
                    ),
                )
            if job.sealer.offset == job.state.offset and not job.final:
                self._close_sender()  # nothing whole arrived: nothing changes
                with self.rt.db.session() as session:
                    return get_own(session, self.owner, job.state.id)
            if job.final:
                self._finish()
            elif self._is_completed_earlier():  # only the last bytes may follow
                raise _end_stored_already()
            else:
                self._keep_rest()
        except BaseException:
            with contextlib.suppress(BaseException):
                self._close_sender()
            if self.new_piece is not None:
                _delete_quietly(self.rt, [self.new_piece[0]])
            raise
        return self._commit()

    def _take(self, sealed: bytes) -> None:
        if len(self.head) < self.head_size:
            self.head += sealed[: self.head_size - len(self.head)]
        self.sealed += len(sealed)
        self.buffer += sealed
        if sum(size for _, size in self.pending) + len(self.buffer) >= PART_BYTES:
            self._send(self._gather())

    def _gather(self) -> bytes:
        """The waiting pieces and this request's bytes since: the next part."""
        data = b"".join(self.rt.store.read_range(n, 0, size) for n, size in self.pending)
        data += bytes(self.buffer)
        self.consumed += [n for n, _size in self.pending]
        self.pending.clear()
        self.buffer.clear()
        return data

    def _is_completed_earlier(self) -> bool:
        if self.completed_earlier is None:
            self.completed_earlier = self.multipart_id is not None and self.store.exists(self.name)
        return self.completed_earlier

    def _send(self, data: bytes) -> None:
        if self._is_completed_earlier():
            self.unsent.update(data)
            self.unsent_size += len(data)
            return
        if self.multipart_id is None:
            self.multipart_id = self.store.start_parts(self.name)
            # Kept at once, so that termination or expiry can abort it whatever happens next.
            with self.rt.db.session() as session:
                session.execute(
                    update(Upload)
                    .where(Upload.id == self.job.state.id)
                    .values(multipart_id=self.multipart_id, store_name=self.name)
                )
        if self.sender is None:
            self.sender = _PartSender(self.store, self.name, self.multipart_id)
        number = len(self.parts) + 1
        self.sender.send(number, data)
        self.parts.append([number, None, len(data)])

    def _close_sender(self) -> None:
        if self.sender is not None:
            etags = self.sender.close()
            for part in self.parts:
                part[1] = etags.get(part[0], part[1])

    def _finish(self) -> None:
        data = self._gather()
        if self.multipart_id is None:  # all of it smaller than a part: one plain put
            self.rt.store.put_stream(self.name, [data])
            return
        if data:
            self._send(data)
        if self._is_completed_earlier():
            self._check_completed_object()
        else:
            self._close_sender()
            parts = [(n, e) for n, e, _ in self.parts]
            self.store.finish_parts(self.name, self.multipart_id, parts)
        self.multipart_id = None

    def _check_completed_object(self) -> None:
        """The object an earlier attempt completed ends with exactly what this request would
        have sent after the parts acknowledged before it; else 409 and nothing changes."""
        start = sum(size for _number, _etag, size in self.parts)
        if self.store.size(self.name) != start + self.unsent_size:
            raise _end_stored_already()
        stored = hashlib.sha256()
        for offset in range(0, self.unsent_size, PART_BYTES):
            stored.update(
                self.store.read_range(
                    self.name, start + offset, min(PART_BYTES, self.unsent_size - offset)
                )
            )
        if stored.digest() != self.unsent.digest():
            raise _end_stored_already()

    def _keep_rest(self) -> None:
        if self.buffer:
            piece = f"{PREFIX}{self.job.state.id}/{uuid.uuid4()}"
            self.new_piece = (piece, len(self.buffer))
            self.rt.store.put_stream(piece, [bytes(self.buffer)])
        self._close_sender()

    def _commit(self) -> Upload:
        job, state = self.job, self.job.state
        new_offset = job.sealer.offset if not job.final else state.offset + job.received
        with self.rt.db.session() as session:
            upload = get_open(session, self.owner, state.id)
            session.refresh(upload, with_for_update=True)
            if upload.offset != state.offset:  # cannot happen while we hold the lock
                raise Conflict(_("The upload changed under this request."), code="offset_mismatch")
            if self.consumed:
                session.execute(delete(UploadSegment).where(UploadSegment.name.in_(self.consumed)))
            if self.new_piece is not None:
                last = session.scalar(
                    select(func.max(UploadSegment.seq)).where(UploadSegment.upload_id == state.id)
                )
                session.add(
                    UploadSegment(
                        upload_id=state.id,
                        seq=(last if last is not None else -1) + 1,
                        name=self.new_piece[0],
                        stored_size=self.new_piece[1],
                        plaintext_end=new_offset,
                    )
                )
            if self.head:
                upload.sealed_head = bytes(self.head)
            upload.store_name = self.name if (self.parts or job.final) else upload.store_name
            upload.multipart_id = self.multipart_id
            upload.parts = [list(p) for p in self.parts] if self.multipart_id else None
            upload.stored_size = state.stored_size + self.sealed
            _advance(upload, job, new_offset)
            try:
                session.commit()
            except BaseException:
                if self.new_piece is not None:
                    _delete_quietly(self.rt, [self.new_piece[0]])
                raise
        _delete_quietly(self.rt, self.consumed)
        _after_commit(self.rt, job, new_offset, self.dek, merge=False)  # at most a part waits
        with self.rt.db.session() as session:
            return get_own(session, self.owner, state.id)


def _end_stored_already() -> Conflict:
    return Conflict(
        _(
            "The end of this upload was already stored from an earlier request, with other "
            "bytes than these. Send the same bytes again, or cancel the upload and start over."
        ),
        code="upload_end_differs",
    )


def _pieces(session: Session, upload_id: uuid.UUID) -> list[UploadSegment]:
    return list(
        session.scalars(
            select(UploadSegment)
            .where(UploadSegment.upload_id == upload_id)
            .order_by(UploadSegment.seq)
        )
    )


def _hash_from_store(rt: Runtime, state: _State, dek: bytes) -> None:
    """Hash a finished upload whose requests went through several processes: decrypting it
    whole also proves every stored chunk."""
    with rt.db.session() as session:
        names = [p.name for p in _pieces(session, state.id)]
        whole = session.scalar(select(Upload.store_name).where(Upload.id == state.id))
    if whole is not None:  # on S3, once finished: one object
        names = [whole]
    plain, stored = hashlib.sha256(), hashlib.sha256()

    def blocks() -> Iterator[bytes]:
        for name in names:
            for block in rt.store.iter_object(name):
                stored.update(block)
                yield block

    for block in crypto.unseal(
        dek, blocks(), key_id=str(state.key_id), object_id=str(state.object_id)
    ):
        plain.update(block)
    with rt.db.session() as session:
        upload = session.get_one(Upload, state.id)
        upload.plaintext_sha256, upload.stored_sha256 = plain.hexdigest(), stored.hexdigest()


def _merge_small_pieces(rt: Runtime, upload_id: uuid.UUID) -> None:
    """Join the trailing run of small pieces into one once they add up to MERGE_BELOW.

    The upload's row stays locked meanwhile, so a recording being made of it waits and then
    sees either the old pieces or the joined one.
    """
    with rt.db.session() as session:
        session.scalar(select(Upload.id).where(Upload.id == upload_id).with_for_update())
        run: list[UploadSegment] = []
        for piece in reversed(_pieces(session, upload_id)):
            if piece.stored_size >= MERGE_BELOW:
                break
            run.insert(0, piece)
        if len(run) < 2 or sum(p.stored_size for p in run) < MERGE_BELOW:
            return
        names = [p.name for p in run]
        merged = f"{PREFIX}{upload_id}/{uuid.uuid4()}"
        size = rt.store.compose(merged, names)
        try:
            session.execute(delete(UploadSegment).where(UploadSegment.name.in_(names)))
            session.add(
                UploadSegment(
                    upload_id=upload_id,
                    seq=run[0].seq,
                    name=merged,
                    stored_size=size,
                    plaintext_end=run[-1].plaintext_end,
                )
            )
            session.commit()
        except BaseException:
            _delete_quietly(rt, [merged])
            raise
    _delete_quietly(rt, names)


def _delete_quietly(rt: Runtime, names: list[str]) -> None:
    if not names:
        return
    try:
        rt.store.delete_many(names)
    except Exception:
        # An object with no row is removed by the reconciler later.
        log.warning("could not delete %d upload piece(s)", len(names), exc_info=True)


# --- ending: termination, expiry, becoming a recording ------------------------------------------


def terminate(rt: Runtime, owner: User, upload_id: str) -> None:
    """tus termination: the pieces are deleted and the upload's key is shredded."""
    with rt.db.session() as session:
        uid = get_open(session, owner, upload_id).id
    with upload_lock(rt, uid):
        _discard(rt, uid, owner=owner)


def _discard(rt: Runtime, upload_id: uuid.UUID, *, owner: User | None = None) -> bool:
    """Delete an upload that has not become a recording: key first, then the pieces."""
    with rt.db.session() as session:
        query = select(Upload).where(Upload.id == upload_id).with_for_update()
        if owner is not None:
            query = query.where(Upload.owner_id == owner.id)
        upload = session.scalar(query)
        if upload is None:
            return False
        multipart = None
        if upload.recording_id is None:
            names = [p.name for p in _pieces(session, upload_id)]
            if upload.store_name is not None:
                names.append(upload.store_name)
                if upload.multipart_id is not None:
                    multipart = (upload.store_name, upload.multipart_id)
            keys.shred_data_key(session, rt.key_cache, upload.key_id)
        else:
            names = []  # its key and object belong to the recording now
        session.delete(upload)
    _hashes.drop(upload_id)
    if multipart is not None:
        try:
            cast(PartStore, rt.store).abort_parts(*multipart)
        except Exception:
            # Sealed under a shredded key, so unreadable; a bucket lifecycle rule ends it.
            log.warning("could not abort the multipart upload of %s", upload_id, exc_info=True)
    _delete_quietly(rt, names)
    return True


def delete_expired(rt: Runtime, *, limit: int = 500) -> int:
    """The scheduler's clean-up: uploads past their lifetime are deleted (shredded if they
    never became a recording). One being written to right now is left for the next run."""
    with rt.db.session() as session:
        due = list(
            session.scalars(select(Upload.id).where(Upload.expires_at <= utcnow()).limit(limit))
        )
    deleted = 0
    for upload_id in due:
        try:
            with upload_lock(rt, upload_id):
                deleted += _discard(rt, upload_id)
        except UploadLocked:
            continue
    return deleted


@dataclass(frozen=True)
class Taken:
    """A finished upload, joined into its recording's object."""

    field: str
    upload_id: uuid.UUID
    key_id: uuid.UUID
    object_id: uuid.UUID
    name: str
    container: str
    plaintext_size: int
    stored_size: int
    plaintext_sha256: str
    stored_sha256: str
    in_place: bool = False  # the upload's own object (S3): not deleted if the draft fails


def recording_id_for(session: Session, owner: User, upload_ids: dict[str, str]) -> uuid.UUID:
    """The id of the recording made of these uploads: the id of one whose object already has
    its final name (S3, ``object_name``), so that nothing is copied; else a new one."""
    for uid in upload_ids.values():
        upload = get_own(session, owner, uid)
        if upload.recording_id is None and upload.store_name == object_name(upload):
            return upload.id
    return uuid.uuid4()


def take_for_recording(
    session: Session,
    rt: Runtime,
    owner: User,
    upload_ids: dict[str, str],
    recording_id: uuid.UUID,
) -> list[Taken]:
    """Join each finished upload into ``recordings/<recording_id>/<object-id>``, in the
    caller's transaction: the uploads are marked used and their pieces go after the commit.
    The caller deletes the joined objects if its transaction fails."""
    if len(set(upload_ids.values())) != len(upload_ids):
        raise InvalidRequest(
            _("The screen and the audio must be two different uploads."), code="duplicate_upload"
        )
    rows = {
        field: get_own(session, owner, uid, for_update=True) for field, uid in upload_ids.items()
    }
    for upload in rows.values():
        _check_finished(upload)
    taken: list[Taken] = []
    obsolete: list[str] = []
    try:
        for field, upload in rows.items():
            pieces = _pieces(session, upload.id)
            name = f"recordings/{recording_id}/{upload.object_id}"
            if upload.store_name == name:  # on S3, already where it belongs
                taken.append(_taken(field, upload, name, rt.store.size(name), in_place=True))
            elif upload.store_name is not None:  # on S3, another upload's recording id
                size = rt.store.compose(name, [upload.store_name])
                taken.append(_taken(field, upload, name, size))
                obsolete.append(upload.store_name)
            else:
                size = rt.store.compose(name, [p.name for p in pieces])
                taken.append(_taken(field, upload, name, size))
            obsolete += [p.name for p in pieces]
            upload.recording_id = recording_id
            # The recording keeps the file's hash sealed under its own key (shredded with it);
            # the upload row, which outlives it until it expires, keeps no copy in the clear.
            upload.plaintext_sha256 = None
            upload.updated_at = utcnow()
            session.execute(delete(UploadSegment).where(UploadSegment.upload_id == upload.id))
    except BaseException:
        _delete_quietly(rt, [t.name for t in taken if not t.in_place])
        raise
    after_commit(session, lambda: _delete_quietly(rt, obsolete))
    return taken


def _check_finished(upload: Upload) -> None:
    if upload.recording_id is not None:
        raise Conflict(
            _(
                "The upload %(upload)s has already become a recording; an upload is used once.",
                upload=upload.id,
            ),
            code="upload_used",
        )
    if not upload.complete:
        have = f"{upload.offset} of {upload.length}" if upload.length else f"{upload.offset}"
        raise Conflict(
            _(
                "The upload %(upload)s is not finished (%(have)s bytes have arrived). Finish it "
                "first.",
                upload=upload.id,
                have=have,
            ),
            code="upload_incomplete",
        )
    if upload.plaintext_sha256 is None or upload.container is None:
        raise Conflict(
            _(
                "The upload %(upload)s is still being checked. Try again in a moment.",
                upload=upload.id,
            ),
            code="upload_incomplete",
        )


def _taken(field: str, upload: Upload, name: str, size: int, *, in_place: bool = False) -> Taken:
    assert upload.length is not None and upload.container is not None
    assert upload.plaintext_sha256 is not None and upload.stored_sha256 is not None
    return Taken(
        field=field,
        upload_id=upload.id,
        key_id=upload.key_id,
        object_id=upload.object_id,
        name=name,
        container=upload.container,
        plaintext_size=upload.length,
        stored_size=size,
        plaintext_sha256=upload.plaintext_sha256,
        stored_sha256=upload.stored_sha256,
        in_place=in_place,
    )


def open_multipart_ids(session: Session) -> set[str]:
    """The S3 multipart uploads that live uploads hold open (for the reconciler)."""
    return set(session.scalars(select(Upload.multipart_id).where(Upload.multipart_id.is_not(None))))


def known_piece_names(session: Session) -> set[str]:
    """Every stored piece of every upload, and the object of each finished upload on S3 not
    yet a recording's (for the reconciler)."""
    names = set(session.scalars(select(UploadSegment.name)))
    names |= set(
        session.scalars(
            select(Upload.store_name).where(
                Upload.store_name.is_not(None),
                Upload.recording_id.is_(None),
                Upload.multipart_id.is_(None),
                Upload.completed_at.is_not(None),
            )
        )
    )
    return names
