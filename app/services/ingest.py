"""Ingest: a recording's files, encrypted as they arrive, into the object store.

The web edge parses the request (``app.api.multipart``) and hands each file part here as an
iterator of blocks; :func:`store_part` sniffs, hashes and seals it straight into
``ObjectStore.put_stream``. The only plaintext is the block in hand. If anything fails — a
client that breaks off, a size limit, a non-media file — the caller deletes the objects
already stored for the upload, and no row is written.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import crypto
from app.services.errors import InvalidRequest, UnsupportedMedia
from app.services.i18n import _
from app.storage import ObjectStore

log = logging.getLogger(__name__)

# Sealed blocks waiting for the uploading thread (each at most ~256 KiB): enough to fill the
# next 16 MiB S3 part while the previous one uploads.
OVERLAP_BLOCKS = 64
FILE_FIELDS = ("screen", "audio")
TEXT_FIELDS = {"title": 200, "agent_channel": 8, "customer_informed": 8}
MAX_FIELD_BYTES = 4096


class UploadAborted(InvalidRequest):
    code = "upload_incomplete"


def sniff_container(head: bytes) -> str | None:
    """Name the container from its first bytes, or None if it is not audio or video we take."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # WebM and Matroska share the EBML magic
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        # An MPEG audio frame sync: MP3 (layer bits 01) or ADTS AAC (layer bits 00).
        return "aac" if (head[1] & 0x06) == 0 else "mp3"
    return None


@dataclass
class StoredPart:
    field: str
    object_id: uuid.UUID
    name: str
    container: str
    plaintext_size: int
    stored_size: int
    plaintext_sha256: str
    stored_sha256: str
    # The part's own data key when it is not the recording's (a resumable upload's key).
    key_id: uuid.UUID | None = None
    # A resumable upload's object already under its final name (S3): it stays with its upload
    # if the draft is not made.
    in_place: bool = False


@dataclass
class IngestResult:
    recording_id: uuid.UUID
    key_id: uuid.UUID
    dek: bytes
    parts: list[StoredPart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    # True when the data key is already in the database (it came with a resumable upload).
    key_stored: bool = False

    @property
    def total_size(self) -> int:
        return sum(p.plaintext_size for p in self.parts)


def _peek(chunks: Iterator[bytes], want: int) -> tuple[bytes, Iterator[bytes]]:
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= want:
            break

    def rest() -> Iterator[bytes]:
        if head:
            yield head
        yield from chunks

    return head, rest()


def new_upload() -> IngestResult:
    """An empty upload: a fresh recording id and a fresh data key for its files."""
    return IngestResult(recording_id=uuid.uuid4(), key_id=uuid.uuid4(), dek=crypto.new_data_key())


def discard(store: ObjectStore, result: IngestResult) -> None:
    """Remove what an upload that did not complete has stored (the reconciler catches misses)."""
    for part in result.parts:
        if not part.in_place:
            store_cleanup(store, part.name)


def set_field(result: IngestResult, name: str, value: bytes) -> None:
    """Record one text field of the upload form."""
    if len(value) > MAX_FIELD_BYTES:
        raise InvalidRequest(_("The field %(name)r is too long.", name=name), code="field_too_long")
    if name not in TEXT_FIELDS:
        raise InvalidRequest(
            _(
                "Unknown field %(name)r; expected screen, audio, title, agent_channel "
                "or customer_informed.",
                name=name,
            ),
            code="unknown_field",
        )
    if name in result.fields:
        raise InvalidRequest(
            _("The field %(name)r was sent twice.", name=name), code="duplicate_field"
        )
    try:
        result.fields[name] = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            _("The field %(name)r is not UTF-8 text.", name=name), code="invalid_field"
        ) from None


def store_part(
    field_name: str,
    data: Iterator[bytes],
    result: IngestResult,
    store: ObjectStore,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Sniff, hash, seal and store one file part of a recording."""
    if any(p.field == field_name for p in result.parts):
        raise InvalidRequest(
            _("The file %(name)r was sent twice.", name=field_name), code="duplicate_field"
        )
    head, chunks = _peek(iter(data), 64)
    container = sniff_container(head)
    if container is None:
        if not head:
            raise InvalidRequest(
                _("The %(field)s file is empty.", field=field_name), code="empty_file"
            )
        raise UnsupportedMedia(
            _(
                "The %(field)s file is not audio or video we accept (WebM, Matroska, MP4, M4A, "
                "WAV, Ogg/Opus, MP3).",
                field=field_name,
            ),
            code="not_media",
        )
    object_id = uuid.uuid4()
    name = f"recordings/{result.recording_id}/{object_id}"
    plain_hash, stored_hash = hashlib.sha256(), hashlib.sha256()
    counts = {"plain": 0}

    def plaintext() -> Iterator[bytes]:
        for chunk in chunks:
            plain_hash.update(chunk)
            counts["plain"] += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
            yield chunk

    def sealed() -> Iterator[bytes]:
        for block in crypto.seal(
            result.dek, plaintext(), key_id=str(result.key_id), object_id=str(object_id)
        ):
            stored_hash.update(block)
            yield block

    try:
        stored_size = put_overlapped(store, name, sealed())
    except BaseException:
        store_cleanup(store, name)
        raise
    result.parts.append(
        StoredPart(
            field=field_name,
            object_id=object_id,
            name=name,
            container=container,
            plaintext_size=counts["plain"],
            stored_size=stored_size,
            plaintext_sha256=plain_hash.hexdigest(),
            stored_sha256=stored_hash.hexdigest(),
        )
    )


class _Abort:
    """Queued to the uploading thread when the request side fails: ends its put unfinished."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _OverlappedPut:
    """``store.put_stream(name, blocks)``, with the put on a helper thread.

    The store uploads a part at a time and reads nothing meanwhile; on the request's thread
    the body is read, parsed and sealed. A bounded queue between the two lets the next part be
    read and sealed while the previous one uploads, instead of after it. If the request side
    fails (client gone, size limit, bad framing), the put is abandoned, so no object appears;
    if the store fails, reading stops and the store's error is raised.
    """

    def __init__(self, store: ObjectStore, name: str) -> None:
        self._handoff: queue.Queue[object] = queue.Queue(maxsize=OVERLAP_BLOCKS)
        self._size: int | None = None
        self._error: BaseException | None = None
        self._uploader = threading.Thread(
            target=self._upload, args=(store, name), name="ingest-put", daemon=True
        )

    def _from_request(self) -> Iterator[bytes]:
        while True:
            item = self._handoff.get()
            if item is _END:
                return
            if isinstance(item, _Abort):
                raise UploadAborted(_("The upload did not complete.")) from item.error
            yield cast(bytes, item)

    def _upload(self, store: ObjectStore, name: str) -> None:
        try:
            self._size = store.put_stream(name, self._from_request())
        except BaseException as exc:  # noqa: BLE001 - handed to the request thread in run()
            self._error = exc

    def _hand_over(self, item: object) -> bool:
        """Queue ``item``; False if the uploader has stopped (its error says why)."""
        while self._uploader.is_alive():
            try:
                self._handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _abandon(self, error: BaseException) -> None:
        while True:  # make room, then tell the uploader to abandon the put
            try:
                self._handoff.get_nowait()
            except queue.Empty:
                break
        self._hand_over(_Abort(error))
        self._uploader.join()

    def run(self, blocks: Iterator[bytes]) -> int:
        self._uploader.start()
        try:
            if all(self._hand_over(bytes(block)) for block in blocks):
                self._hand_over(_END)
        except BaseException as exc:
            self._abandon(exc)
            raise
        self._uploader.join()
        if self._error is not None:
            raise self._error
        assert self._size is not None
        return self._size


def put_overlapped(store: ObjectStore, name: str, blocks: Iterator[bytes]) -> int:
    """``store.put_stream(name, blocks)`` with the store's requests on a helper thread, so
    reading and sealing the next blocks overlaps with uploading the previous ones."""
    return _OverlappedPut(store, name).run(blocks)


def store_cleanup(store: ObjectStore, name: str) -> None:
    try:
        store.delete(name)
    except Exception:
        log.warning("could not remove a partial object", exc_info=True)
