"""Ingest: a multipart upload streamed, encrypted as it arrives, into the object store.

Werkzeug's form parser would spool large files to plaintext temporary files; this module reads
the request body itself with werkzeug's sans-IO ``MultipartDecoder`` and pulls each file part
through the sealer straight into ``ObjectStore.put_stream``. The only plaintext is the block in
hand. If anything fails — a client that breaks off, a size limit, a non-media file — the
objects already stored for this upload are deleted and no row is written.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

import crypto
from app.errors import AppError, InvalidRequest, PayloadTooLarge, UnsupportedMedia
from app.storage import ObjectStore

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
# Sealed blocks waiting for the uploading thread (each at most ~256 KiB): enough to fill the
# next 16 MiB S3 part while the previous one uploads.
OVERLAP_BLOCKS = 64
FILE_FIELDS = ("screen", "audio")
TEXT_FIELDS = {"title": 200, "agent_channel": 8, "customer_informed": 8}
MAX_FIELD_BYTES = 4096


class UploadAborted(AppError):
    status = 400
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


@dataclass
class IngestResult:
    recording_id: uuid.UUID
    key_id: uuid.UUID
    dek: bytes
    parts: list[StoredPart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def total_size(self) -> int:
        return sum(p.plaintext_size for p in self.parts)


class _BodyReader:
    """Drives the multipart decoder from the request stream, one event at a time."""

    def __init__(self, stream: BinaryIO, boundary: bytes, limit: int) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary, max_parts=16)
        self._limit = limit
        self.received = 0

    def next_event(self):
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError:
                raise InvalidRequest(
                    "The multipart body is malformed or was cut short.", code="malformed_upload"
                ) from None
            if not isinstance(event, NeedData):
                return event
            try:
                block = self._stream.read(READ_SIZE)
            except (ClientDisconnected, OSError):
                raise UploadAborted("The upload broke off before it was complete.") from None
            if block:
                self.received += len(block)
                if self.received > self._limit:
                    raise PayloadTooLarge(
                        f"The upload is larger than the limit of {self._limit // (1 << 20)} MiB.",
                        code="upload_too_large",
                    )
                self._decoder.receive_data(block)
            else:
                self._decoder.receive_data(None)

    def part_data(self) -> Iterator[bytes]:
        """The current part's bytes, until its closing boundary."""
        while True:
            event = self.next_event()
            if not isinstance(event, Data):
                raise InvalidRequest("The multipart body is malformed.", code="malformed_upload")
            if event.data:
                yield event.data
            if not event.more_data:
                return


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


def ingest_upload(
    stream: BinaryIO,
    content_type: str | None,
    content_length: int | None,
    *,
    store: ObjectStore,
    max_bytes: int,
    on_bytes: Callable[[int], None] | None = None,
) -> IngestResult:
    """Stream a multipart upload into the store, encrypted under a fresh recording key."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise UnsupportedMedia(
            "Send multipart/form-data with a 'screen' and/or an 'audio' file.",
            code="expected_multipart",
        )
    if len(boundary) > 200:
        raise InvalidRequest("The multipart boundary is too long.", code="malformed_upload")
    # Framing (boundaries, part headers, text fields) on top of the media itself.
    limit = max_bytes + 64 * 1024
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(
            f"The upload is larger than the limit of {max_bytes // (1 << 20)} MiB.",
            code="upload_too_large",
        )

    result = IngestResult(recording_id=uuid.uuid4(), key_id=uuid.uuid4(), dek=crypto.new_data_key())
    body = _BodyReader(stream, boundary.encode("latin-1"), limit)
    try:
        while True:
            event = body.next_event()
            if isinstance(event, Epilogue):
                break
            if isinstance(event, File):
                if event.name not in FILE_FIELDS:
                    raise InvalidRequest(
                        f"Unexpected file field {event.name!r}; send 'screen' and/or 'audio'.",
                        code="unknown_field",
                    )
                store_part(event.name, body.part_data(), result, store, on_bytes)
            elif isinstance(event, Field):
                _read_field(event, body, result)
    except BaseException:
        for part in result.parts:
            try:
                store.delete(part.name)
            except Exception:
                # The reconciler removes objects without a row; log and go on.
                log.warning("could not remove object of an aborted upload", exc_info=True)
        raise
    if not result.parts:
        raise InvalidRequest(
            "Attach at least one file: 'screen' (video) or 'audio'.", code="no_media"
        )
    return result


def _read_field(event: Field, body: _BodyReader, result: IngestResult) -> None:
    value = b""
    for chunk in body.part_data():
        value += chunk
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"The field {event.name!r} is too long.", code="field_too_long")
    if event.name not in TEXT_FIELDS:
        raise InvalidRequest(
            f"Unknown field {event.name!r}; expected screen, audio, title, agent_channel "
            "or customer_informed.",
            code="unknown_field",
        )
    if event.name in result.fields:
        raise InvalidRequest(f"The field {event.name!r} was sent twice.", code="duplicate_field")
    try:
        result.fields[event.name] = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"The field {event.name!r} is not UTF-8 text.", code="invalid_field"
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
        raise InvalidRequest(f"The file {field_name!r} was sent twice.", code="duplicate_field")
    head, chunks = _peek(iter(data), 64)
    container = sniff_container(head)
    if container is None:
        if not head:
            raise InvalidRequest(f"The {field_name} file is empty.", code="empty_file")
        raise UnsupportedMedia(
            f"The {field_name} file is not audio or video we accept "
            "(WebM, Matroska, MP4, M4A, WAV, Ogg/Opus, MP3).",
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
        stored_size = _put_overlapped(store, name, sealed())
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


def _put_overlapped(store: ObjectStore, name: str, blocks: Iterator[bytes]) -> int:
    """``store.put_stream(name, blocks)``, with the put on a helper thread.

    The store uploads a part at a time and reads nothing meanwhile; on this thread the
    request body is read, parsed and sealed. A bounded queue between the two lets the next
    part be read and sealed while the previous one uploads, instead of after it. If the
    request side fails (client gone, size limit, bad framing), the put is abandoned, so no
    object appears; if the store fails, reading stops and the store's error is raised.
    """
    handoff: queue.Queue = queue.Queue(maxsize=OVERLAP_BLOCKS)
    outcome: dict[str, object] = {}

    def from_request() -> Iterator[bytes]:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Abort):
                raise UploadAborted("The upload did not complete.") from item.error
            yield item

    def upload() -> None:
        try:
            outcome["size"] = store.put_stream(name, from_request())
        except BaseException as exc:  # noqa: BLE001 - handed to the request thread below
            outcome["error"] = exc

    uploader = threading.Thread(target=upload, name="ingest-put", daemon=True)
    uploader.start()

    def hand_over(item: object) -> bool:
        """Queue ``item``; False if the uploader has stopped (its error says why)."""
        while uploader.is_alive():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        for block in blocks:
            if not hand_over(bytes(block)):
                break
        else:
            hand_over(_END)
    except BaseException as exc:
        while True:  # make room, then tell the uploader to abandon the put
            try:
                handoff.get_nowait()
            except queue.Empty:
                break
        hand_over(_Abort(exc))
        uploader.join()
        raise
    uploader.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["size"]  # type: ignore[return-value]


def store_cleanup(store: ObjectStore, name: str) -> None:
    try:
        store.delete(name)
    except Exception:
        log.warning("could not remove a partial object", exc_info=True)
