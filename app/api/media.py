"""``/media/shares/{id}/…``: decrypted media, one HTTP Range per request.

Every request is authorised afresh (share ready and not ended, caller its owner or a grantee).
Only the chunks the range covers are fetched from the store (one streaming GET, the next
batch of ciphertext read ahead) and decrypted, a batch at a time, and before each batch after
the first is decrypted the share's state is read again from the database: once a revoke has
committed, no further batch is decrypted or sent, in any web process, whatever any process
has cached. A chunk that fails authentication ends the response; it is never served as data.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Response, request
from sqlalchemy import select
from werkzeug.http import is_byte_range_valid

import crypto
from app.api import ErrorSchema
from app.api.blueprint import Blueprint
from app.auth import current_user, db_session, require
from app.errors import AppError, Gone, NotFound, ServiceUnavailable
from app.metrics import MEDIA_BYTES
from app.models import MediaObject, Recording, RecordingStatus, Role, Share, ShareStatus, utcnow
from app.runtime import Runtime, runtime
from app.services import keys, recordings, shares, views
from app.storage import StorageError

log = logging.getLogger(__name__)

blp = Blueprint(
    "media",
    __name__,
    url_prefix="/media",
    description="Decrypted media of a share, streamed with HTTP Range",
)

CHUNK = crypto.chunked.CHUNK_SIZE  # 16 KiB of plaintext per encrypted chunk
FIRST_BATCH_CHUNKS = 16  # 256 KiB: a quick first byte for the player
BATCH_CHUNKS = 128  # 2 MiB per fetch, decrypt and state check afterwards
KINDS = {
    "video": "rendition",
    "poster.jpg": "poster",
    "thumbnails.jpg": "thumbnails",
    "waveform.json": "waveform",
}


class IntegrityFailure(AppError):
    status = 502
    code = "integrity_check_failed"


class StoreRangeSource:
    """crypto.RangeSource over an object in the store, with as few store requests as it can.

    - The header and preamble that every reader reads first come from a small per-process
      cache once a reader has verified them against the object's key (``remember_head``).
      They are no secret, and the chunks are still each authenticated with the key.
    - The chunks one response needs are planned (``plan``) and fetched with one GET of the
      whole span, read off that stream batch by batch, instead of a ranged GET per batch (S3
      servers such as moto read the whole object for each ranged GET; every server adds a
      round trip). While a batch is checked, decrypted and sent, the next batch of
      *ciphertext* is read ahead on a helper thread: at most two batches in memory, and
      nothing is decrypted before its state check. Any other read, or a stream that breaks,
      falls back to a ranged GET.
    """

    def __init__(self, store, name: str, size: int) -> None:
        self._store = store
        self._name = name
        self.size = size
        self._head: bytes | None = None
        self._span: tuple[int, int] | None = None
        self._stream = None
        self._position = 0
        self._surplus = b""
        self._ahead: Future[bytes] | None = None

    def read(self, offset: int, length: int) -> bytes:
        if offset == 0:
            cached = _HEAD_CACHE.get((self._name, self.size))
            if cached is not None and len(cached) == length:
                return cached
        if self._span is not None and offset == self._position:
            span_start, span_stop = self._span
            if span_start <= offset and offset + length <= span_stop:
                return self._read_span(offset, length)
        data = self._store.read_range(self._name, offset, length)
        if offset == 0:
            self._head = data
        return data

    def remember_head(self) -> None:
        """Cache what the reader read at offset 0; call once the reader has verified it."""
        if self._head is not None:
            _HEAD_CACHE.put((self._name, self.size), self._head)

    def plan(self, start: int, stop: int) -> None:
        """The reads of [start, stop) that follow will be sequential: stream them."""
        self._span = (start, stop)
        self._position = start

    def _read_span(self, offset: int, length: int) -> bytes:
        span_stop = self._span[1]  # type: ignore[index]
        if self._stream is None and self._ahead is None and not self._surplus:
            self._stream = _open_stream(self._store, self._name, offset, span_stop - offset)
        data, self._surplus = self._surplus, b""
        try:
            if self._ahead is not None:
                ahead, self._ahead = self._ahead, None
                data += ahead.result()
            if len(data) < length and self._stream is not None:
                data += self._pull(length - len(data))
        except Exception:  # noqa: BLE001 - any broken stream: ranged GETs below answer
            log.warning("media stream of %s broke; reading on with ranged GETs", self._name)
        if len(data) < length:  # no stream (not S3, or it would not open) or a broken one
            self.close()
            self._span = None
            data += self._store.read_range(self._name, offset + len(data), length - len(data))
        elif len(data) > length:
            data, self._surplus = data[:length], data[length:]
        self._position = offset + len(data)
        ahead_from = self._position + len(self._surplus)
        if self._stream is not None and ahead_from < span_stop:
            self._ahead = _READ_AHEAD.submit(self._pull, min(READ_AHEAD, span_stop - ahead_from))
        return data

    def _pull(self, length: int) -> bytes:
        """Up to ``length`` bytes off the stream (fewer only where it ends)."""
        stream, parts, needed = self._stream, [], length
        while stream is not None and needed > 0:
            block = stream.read(needed)
            if not block:
                break
            parts.append(block)
            needed -= len(block)
        return b"".join(parts)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        ahead, self._ahead = self._ahead, None
        self._surplus = b""
        if stream is None:
            return
        if ahead is not None and not ahead.cancel():
            # A read-ahead is on the stream now: close it once that read is over.
            ahead.add_done_callback(lambda _: _close_stream(stream))
        else:
            _close_stream(stream)


def _close_stream(stream) -> None:
    with contextlib.suppress(Exception):
        stream.close()
        stream.release_conn()


def _open_stream(store, name: str, offset: int, length: int):
    """A streaming GET of [offset, offset + length) on an S3 store, or None (other stores, or
    an error: the caller's ranged GET then answers, with the store's own error mapping)."""
    client = getattr(store, "client", None)
    if getattr(store, "kind", None) != "s3" or client is None or length <= 0:
        return None
    try:
        return client.get_object(store.bucket, name, offset=offset, length=length)
    except Exception:  # noqa: BLE001 - the ranged GET that follows reports it properly
        return None


class _HeadCache:
    """A small LRU of object headers and preambles (no secrets: ids, salt, commitment)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple[str, int], value: bytes) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_HEAD_CACHE = _HeadCache()
# Read-ahead of the next batch of ciphertext, one task per streaming response at a time.
READ_AHEAD = BATCH_CHUNKS * crypto.chunked.CHUNK_CIPHERTEXT_SIZE
_READ_AHEAD = ThreadPoolExecutor(max_workers=64, thread_name_prefix="media-read-ahead")


class _ShareState:
    """The per-batch state check of one streaming response, on one database connection held
    for the response (a fresh session per batch cost a pool checkout, its pre-ping, BEGIN and
    COMMIT each time: a third of the time of a long stream). The connection is in autocommit:
    each check is one SELECT that sees every commit before it, the revoke's included."""

    def __init__(self, rt: Runtime, share_id: uuid.UUID) -> None:
        self._rt = rt
        self._query = select(Share.status, Share.expires_at).where(Share.id == share_id)
        self._connection = None

    def __call__(self) -> bool:
        if self._connection is None:
            self._connection = self._rt.db.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        row = self._connection.execute(self._query).first()
        return row is not None and row.status is ShareStatus.READY and row.expires_at > utcnow()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _range_for(size: int, etag: str) -> tuple[int, int, bool]:
    """(start, stop, partial) from the Range and If-Range headers, via werkzeug's parsers."""
    byte_range = request.range
    # A range unit other than bytes is ignored (RFC 9110 §14.2), as is a malformed header.
    if byte_range is None or byte_range.units != "bytes":
        return 0, size, False
    if_range = request.if_range
    # A date or a different entity tag in If-Range means "send the whole thing" (RFC 9110
    # §13.1.5): our objects carry strong entity tags only, and If-Range compares strongly, so
    # a weak tag never matches (werkzeug's parser drops the W/ prefix: look at the header).
    weak = request.headers.get("If-Range", "").lstrip().startswith("W/")
    if if_range.date is not None or weak or (if_range.etag and if_range.etag != etag.strip('"')):
        return 0, size, False
    if len(byte_range.ranges) > 1:
        return 0, size, False
    start, stop = byte_range.ranges[0]
    if start < 0:
        # A suffix range: the last -start bytes, or the whole object when it is shorter
        # (RFC 9110 §14.1.2; werkzeug's range_for_length answers None there, i.e. 416).
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if not is_byte_range_valid(start, stop, size):
        raise AppError(
            "The requested range is outside the media.",
            code="range_not_satisfiable",
            status=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, stop, True


# The OpenAPI description of a media response: the bytes, by kind, and errors in the one shape.
_RANGED_CONTENT = {
    "video/mp4": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
}
# The waveform is always sent whole: a Range on it is ignored.
_MEDIA_CONTENT = {
    **_RANGED_CONTENT,
    "application/json": {"schema": {"type": "object", "description": "waveform peaks"}},
}
_ERROR_CONTENT = {"application/json": {"schema": ErrorSchema}}


@blp.route("/shares/<string:share_id>/<string:kind>")
@require(Role.EMPLOYEE, Role.COACH)
@blp.doc(
    parameters=[
        {
            "in": "path",
            "name": "kind",
            "required": True,
            "schema": {"type": "string", "enum": list(KINDS)},
        },
        {
            "in": "header",
            "name": "Range",
            "schema": {"type": "string"},
            "required": False,
            "example": "bytes=0-65535",
        },
        {
            "in": "header",
            "name": "If-Range",
            "schema": {"type": "string"},
            "required": False,
            "description": "the ETag of an earlier response: the range only if it still holds",
        },
    ],
    responses={
        200: {"description": "The whole decrypted object", "content": _MEDIA_CONTENT},
        206: {"description": "The requested byte range", "content": _RANGED_CONTENT},
        401: {"description": "Not signed in", "content": _ERROR_CONTENT},
        404: {"description": "No such share for you", "content": _ERROR_CONTENT},
        410: {"description": "Consent ended: revoked or expired", "content": _ERROR_CONTENT},
        416: {"description": "Range not satisfiable", "content": _ERROR_CONTENT},
        422: {"description": "The share is not ready yet", "content": _ERROR_CONTENT},
        502: {
            "description": "The stored media failed its integrity check",
            "content": _ERROR_CONTENT,
        },
        503: {"description": "The media store is unreachable", "content": _ERROR_CONTENT},
    },
)
def media(share_id: str, kind: str):
    """The decrypted rendition (``video``), ``poster.jpg``, ``thumbnails.jpg`` or
    ``waveform.json`` of a share; each but the waveform honours one HTTP Range per request."""
    if kind not in KINDS:
        raise NotFound("media")
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    shares.require_viewable(share)
    obj = session.scalar(
        select(MediaObject).where(MediaObject.share_id == share.id, MediaObject.kind == KINDS[kind])
    )
    if obj is None:
        raise NotFound("media")
    dek = shares.share_dek(session, rt, share)
    view = views.for_media_request(session, share, user, request.args.get("view"))
    view_id, sid = view.id, share.id

    def record(start: int, stop: int) -> None:
        views.record_range(session, view, start, stop)
        session.commit()

    state = _ShareState(rt, sid)

    def done(sent: int) -> None:
        state.close()
        views.add_bytes(rt.db, view_id, sent)

    return stream_object(
        rt,
        obj,
        dek,
        share.key_id,
        still_allowed=state,
        on_range=record,
        on_done=done,
    )


def stream_object(
    rt: Runtime,
    obj: MediaObject,
    dek: bytes,
    key_id: uuid.UUID,
    *,
    still_allowed: Callable[[], bool],
    on_range: Callable[[int, int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
    content_type: str | None = None,
) -> Response:
    """Serve one stored object decrypted, honouring one Range, re-checking access per batch.

    A JSON object (the waveform) ignores Range (RFC 9110 allows it) and is sent whole: a slice
    of a JSON document is not JSON, and such objects are small.
    """
    content_type = content_type or obj.content_type
    ranges = content_type != "application/json"
    source = StoreRangeSource(rt.store, obj.name, obj.stored_size)
    try:
        reader = crypto.RandomAccessReader(dek, source, key_id=str(key_id), object_id=str(obj.id))
    except crypto.DecryptionError:
        log.error("integrity check failed on the header of %s", obj.id)
        raise IntegrityFailure("The stored media failed its integrity check.") from None
    except StorageError as exc:
        raise _store_failed(obj, exc, still_allowed) from None
    source.remember_head()
    size = reader.size
    etag = f'"{obj.id}"'
    if request.if_none_match and request.if_none_match.contains(etag.strip('"')):
        return Response(status=304, headers={"ETag": etag})
    start, stop, partial = _range_for(size, etag) if ranges else (0, size, False)
    if on_range is not None:
        on_range(start, stop)

    # The first batch is read before the headers go out, so a damaged chunk there gives a
    # clean error response instead of a truncated 206.
    # It ends on a chunk boundary, so the batches after it neither fetch nor decrypt its last
    # chunk again; when it covers the whole range there are no more batches at all (not even
    # an empty one, which would cost a state check and, at the end of the object, a fetch).
    first_stop = min(stop, (start // CHUNK + FIRST_BATCH_CHUNKS) * CHUNK)
    if stop > start:
        source.plan(*_ciphertext_span(reader, obj, key_id, start, stop))
    try:
        first = reader.read(start, first_stop - start) if stop > start else b""
    except crypto.DecryptionError:
        source.close()
        log.error("integrity check failed in %s at %d", obj.id, start)
        raise IntegrityFailure("The stored media failed its integrity check.") from None
    except StorageError as exc:
        source.close()
        raise _store_failed(obj, exc, still_allowed) from None
    except BaseException:
        source.close()
        raise
    batches = reader.iter_range(first_stop, stop, batch_chunks=BATCH_CHUNKS)  # lazy
    more = first_stop < stop

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            if first:
                sent += len(first)
                MEDIA_BYTES.inc(len(first))
                yield first
            for batch in _checked(still_allowed, batches) if more else ():
                sent += len(batch)
                MEDIA_BYTES.inc(len(batch))
                yield batch
        except crypto.DecryptionError:
            log.error("integrity check failed in %s; response cut short", obj.id)
        except StorageError as exc:
            log.warning("media object %s unreadable mid-response (%s); cut short", obj.id, exc)
        finally:
            source.close()
            if on_done is not None:
                try:
                    on_done(sent)
                except Exception:
                    log.warning("could not record bytes served", exc_info=True)

    headers = {
        "Accept-Ranges": "bytes" if ranges else "none",
        "ETag": etag,
        "Cache-Control": "no-store, private",
        "Content-Disposition": "inline",
        "Content-Length": str(stop - start),
        "X-Content-Type-Options": "nosniff",
    }
    if partial:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response = Response(
        body(),
        status=206 if partial else 200,
        headers=headers,
        mimetype=content_type,
        direct_passthrough=True,
    )
    # Also when the body is never iterated (HEAD, a client gone before the first byte).
    response.call_on_close(source.close)
    return response


def _store_failed(
    obj: MediaObject, exc: StorageError, still_allowed: Callable[[], bool]
) -> AppError:
    """The store could not give the object: it is gone because consent ended after this
    request was authorised (410, as for a request made after), or the store is down (503)."""
    try:
        allowed = still_allowed()
    except Exception:  # noqa: BLE001 - the database may be down too: report the store
        allowed = True
    if not allowed:
        return Gone(
            "This share has ended: the employee withdrew it or it expired.", code="share_ended"
        )
    log.warning("media object %s could not be read: %s", obj.id, exc)
    return ServiceUnavailable(
        "The media could not be read from storage. Try again shortly.", code="storage_unavailable"
    )


def _ciphertext_span(
    reader: crypto.RandomAccessReader, obj: MediaObject, key_id: uuid.UUID, start: int, stop: int
) -> tuple[int, int]:
    """The stored bytes holding the chunks that cover plaintext [start, stop)."""
    offset = len(crypto.encode_header(str(key_id), str(obj.id))) + crypto.chunked.PREAMBLE_SIZE
    first = offset + (start // CHUNK) * crypto.chunked.CHUNK_CIPHERTEXT_SIZE
    if stop >= reader.size:  # the reader reads the final chunk, to the end of the object
        return first, obj.stored_size
    last = offset + ((stop - 1) // CHUNK + 1) * crypto.chunked.CHUNK_CIPHERTEXT_SIZE
    return first, min(last, obj.stored_size)


def _checked(still_allowed: Callable[[], bool], batches: Iterator[bytes]) -> Iterator[bytes]:
    """Re-read the state before each batch; stop the moment consent has ended."""
    while True:
        if not still_allowed():
            log.info("access ended mid-stream; stopping")
            return
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch


RECORDING_TYPES = {
    ("screen", "matroska"): "video/webm",
    ("screen", "mp4"): "video/mp4",
    ("audio", "matroska"): "audio/webm",
    ("audio", "mp4"): "audio/mp4",
    ("audio", "wav"): "audio/wav",
    ("audio", "ogg"): "audio/ogg",
    ("audio", "mp3"): "audio/mpeg",
    ("audio", "aac"): "audio/aac",
}


def _recording_is_draft(rt: Runtime, recording_id: uuid.UUID) -> bool:
    with rt.db.session() as session:
        status = session.scalar(select(Recording.status).where(Recording.id == recording_id))
    return status is RecordingStatus.DRAFT


@blp.route("/recordings/<string:recording_id>/<string:part>")
@require(Role.EMPLOYEE)
@blp.doc(
    responses={
        200: {"description": "The uploaded file, decrypted"},
        206: {"description": "The requested byte range"},
        404: {"description": "No such recording of yours"},
    },
)
def recording_media(recording_id: str, part: str):
    """My own upload (``screen`` or ``audio``), decrypted, for the preview and trim player."""
    if part not in ("screen", "audio"):
        raise NotFound("media")
    rt, session, user = runtime(), db_session(), current_user()
    recording = recordings.get_own(session, user, recording_id)
    if recording.status is not RecordingStatus.DRAFT:
        raise NotFound("recording")
    obj = next((o for o in recording.objects if o.kind == part), None)
    if obj is None:
        raise NotFound("media")
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, recording.key_id)
    except keys.KeyDestroyed:
        raise NotFound("recording") from None
    rid = recording.id
    content_type = RECORDING_TYPES.get((part, obj.container or ""), "application/octet-stream")
    return stream_object(
        rt,
        obj,
        dek,
        recording.key_id,
        still_allowed=lambda: _recording_is_draft(rt, rid),
        content_type=content_type,
    )


blueprints = [blp]
