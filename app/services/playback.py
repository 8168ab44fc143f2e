"""Playback: a stored object decrypted for one response, re-checking access as it goes.

Only the chunks a range covers are fetched from the store (one streaming read of the whole
span, the next batch of ciphertext read ahead) and decrypted, a batch at a time; before each
batch after the first, ``still_allowed`` is asked again: once consent has ended, no further
batch is decrypted or sent, whatever any process has cached. The batches go out in writes of
at most :data:`WRITE_SIZE`, each after ``may_write`` (an in-process set of ended shares, see
``app.services.revocations``) allowed it. A chunk that fails authentication ends the stream;
it is never served as data.

The web edge (``app.api.streaming``) turns a :class:`MediaStream` into an HTTP response: it
parses Range and If-Range, and sends the headers.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app.models import MediaObject, Share
from app.runtime import Runtime
from app.services.errors import DomainError, Gone, NotFound, ServiceUnavailable
from app.services.i18n import _
from app.storage import ObjectStore, RangeStream, StorageError

log = logging.getLogger(__name__)

CHUNK = crypto.chunked.CHUNK_SIZE  # 16 KiB of plaintext per encrypted chunk
FIRST_BATCH_CHUNKS = 16  # 256 KiB: a quick first byte for the player
BATCH_CHUNKS = 128  # 2 MiB per fetch, decrypt and state check afterwards
# The most one write to the client carries. Before each write the stream asks whether it may
# still send (an in-process set lookup): after a revoke has committed, at most the write
# already handed to the socket goes out.
WRITE_SIZE = 64 * 1024
# Read-ahead of the next batch of ciphertext, one task per streaming response at a time.
READ_AHEAD = BATCH_CHUNKS * crypto.chunked.CHUNK_CIPHERTEXT_SIZE
SHARE_KINDS = {
    "video": "rendition",
    "poster.jpg": "poster",
    "thumbnails.jpg": "thumbnails",
    "waveform.json": "waveform",
}
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


class IntegrityFailure(DomainError):
    """The stored ciphertext failed authentication: damaged or tampered with."""

    code = "integrity_check_failed"


def share_object(session: Session, share: Share, kind: str) -> MediaObject:
    """The stored object of a share for a media kind of the URL (``video``, ``poster.jpg``…)."""
    obj = None
    if kind in SHARE_KINDS:
        obj = session.scalar(
            select(MediaObject).where(
                MediaObject.share_id == share.id, MediaObject.kind == SHARE_KINDS[kind]
            )
        )
    if obj is None:
        raise NotFound("media")
    return obj


def recording_content_type(obj: MediaObject) -> str:
    return RECORDING_TYPES.get((obj.kind, obj.container or ""), "application/octet-stream")


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


HEAD_CACHE = _HeadCache()
_READ_AHEAD = ThreadPoolExecutor(max_workers=64, thread_name_prefix="media-read-ahead")


class StoreRangeSource:
    """crypto.RangeSource over an object in the store, with as few store requests as it can.

    - The header and preamble that every reader reads first come from a small per-process
      cache once a reader has verified them against the object's key (``remember_head``).
      They are no secret, and the chunks are still each authenticated with the key.
    - The chunks one response needs are planned (``plan``) and fetched with one streaming
      read of the whole span (``ObjectStore.open_range``), taken off that stream batch by
      batch, instead of a ranged GET per batch (S3 servers such as moto read the whole object
      for each ranged GET; every server adds a round trip). While a batch is checked,
      decrypted and sent, the next batch of *ciphertext* is read ahead on a helper thread: at
      most two batches in memory, and nothing is decrypted before its state check. Any other
      read, or a stream that breaks, falls back to a ranged read.
    """

    def __init__(self, store: ObjectStore, name: str, size: int) -> None:
        self._store = store
        self._name = name
        self.size = size
        self._head: bytes | None = None
        self._span: tuple[int, int] | None = None
        self._stream: RangeStream | None = None
        self._position = 0
        self._surplus = b""
        self._ahead: Future[bytes] | None = None

    def read(self, offset: int, length: int) -> bytes:
        if offset == 0:
            cached = HEAD_CACHE.get((self._name, self.size))
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
            HEAD_CACHE.put((self._name, self.size), self._head)

    def plan(self, start: int, stop: int) -> None:
        """The reads of [start, stop) that follow will be sequential: stream them."""
        self._span = (start, stop)
        self._position = start

    def _read_span(self, offset: int, length: int) -> bytes:
        span_stop = self._span[1]  # type: ignore[index]
        if self._stream is None and self._ahead is None and not self._surplus:
            self._stream = self._open_stream(offset, span_stop - offset)
        data, self._surplus = self._take_buffered(length)
        if len(data) < length:  # no stream (it would not open) or a broken one
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

    def _take_buffered(self, length: int) -> tuple[bytes, bytes]:
        """What the surplus, the read-ahead and the stream hold, up to ``length`` more."""
        data = self._surplus
        try:
            if self._ahead is not None:
                ahead, self._ahead = self._ahead, None
                data += ahead.result()
            if len(data) < length and self._stream is not None:
                data += self._pull(length - len(data))
        except Exception:  # noqa: BLE001 - any broken stream: ranged reads answer instead
            log.warning("media stream of %s broke; reading on with ranged reads", self._name)
        return data, b""

    def _open_stream(self, offset: int, length: int) -> RangeStream | None:
        if length <= 0:
            return None
        try:
            return self._store.open_range(self._name, offset, length)
        except StorageError:  # the ranged read that follows reports it properly
            return None

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
            ahead.add_done_callback(lambda _: stream.close())
        else:
            stream.close()


def store_failed(
    obj: MediaObject, exc: StorageError, still_allowed: Callable[[], bool]
) -> DomainError:
    """The store could not give the object: it is gone because consent ended after this
    request was authorised (Gone, as for a request made after), or the store is down."""
    try:
        allowed = still_allowed()
    except Exception:  # noqa: BLE001 - the database may be down too: report the store
        allowed = True
    if not allowed:
        return Gone(
            _("This share has ended: the employee withdrew it or it expired."), code="share_ended"
        )
    log.warning("media object %s could not be read: %s", obj.id, exc)
    return ServiceUnavailable(
        _("The media could not be read from storage. Try again shortly."),
        code="storage_unavailable",
    )


class MediaStream:
    """One stored object, opened for one response: its plaintext size, then a range of it."""

    def __init__(
        self,
        rt: Runtime,
        obj: MediaObject,
        dek: bytes,
        key_id: uuid.UUID,
        still_allowed: Callable[[], bool],
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        self.obj = obj
        self._still_allowed = still_allowed
        self._may_write = may_write or (lambda: True)
        self._source = StoreRangeSource(rt.store, obj.name, obj.stored_size)
        try:
            self._reader = crypto.RandomAccessReader(
                dek, self._source, key_id=str(key_id), object_id=str(obj.id)
            )
        except crypto.DecryptionError:
            log.error("integrity check failed on the header of %s", obj.id)
            raise IntegrityFailure(_("The stored media failed its integrity check.")) from None
        except StorageError as exc:
            raise store_failed(obj, exc, still_allowed) from None
        self._source.remember_head()
        self.size = self._reader.size

    @property
    def etag(self) -> str:
        return f'"{self.obj.id}"'

    def body(
        self, start: int, stop: int, on_done: Callable[[int], None] | None = None
    ) -> Iterator[bytes]:
        """Plaintext [start, stop): the first batch is read now, so a damaged chunk there is
        a clean error before any header is sent; the rest batch by batch, each after a check
        of ``still_allowed``."""
        # The first batch ends on a chunk boundary, so the batches after it neither fetch nor
        # decrypt its last chunk again; when it covers the whole range there are no more
        # batches at all (not even an empty one: a state check, and a fetch at the end).
        first_stop = min(stop, (start // CHUNK + FIRST_BATCH_CHUNKS) * CHUNK)
        first = self._first_batch(start, stop, first_stop)
        # Views into one reused plaintext buffer: each batch is cut into writes (the one copy
        # a write needs: the WSGI server takes bytes) before the next batch is decrypted.
        batches = self._reader.iter_range_views(first_stop, stop, batch_chunks=BATCH_CHUNKS)
        rest = _checked(self._still_allowed, batches) if first_stop < stop else iter(())
        return self._send(first, rest, on_done)

    def _first_batch(self, start: int, stop: int, first_stop: int) -> bytes:
        if stop <= start:
            return b""
        self._source.plan(*self._reader.ciphertext_span(start, stop))
        try:
            return self._reader.read(start, first_stop - start)
        except crypto.DecryptionError:
            self.close()
            log.error("integrity check failed in %s at %d", self.obj.id, start)
            raise IntegrityFailure(_("The stored media failed its integrity check.")) from None
        except StorageError as exc:
            self.close()
            raise store_failed(self.obj, exc, self._still_allowed) from None
        except BaseException:
            self.close()
            raise

    def _send(
        self,
        first: bytes,
        rest: Iterator[bytes | memoryview],
        on_done: Callable[[int], None] | None,
    ) -> Iterator[bytes]:
        sent = 0
        may_write = self._may_write
        try:
            for batch in itertools.chain((first,), rest):
                view = memoryview(batch)
                for offset in range(0, len(view), WRITE_SIZE):
                    if not may_write():
                        log.info("access ended mid-stream; stopping before the next write")
                        return
                    piece = bytes(view[offset : offset + WRITE_SIZE])
                    sent += len(piece)
                    yield piece
        except crypto.DecryptionError:
            log.error("integrity check failed in %s; response cut short", self.obj.id)
        except StorageError as exc:
            log.warning("media object %s unreadable mid-response (%s); cut short", self.obj.id, exc)
        finally:
            self.close()
            if on_done is not None:
                try:
                    on_done(sent)
                except Exception:
                    log.warning("could not record bytes served", exc_info=True)

    def close(self) -> None:
        self._source.close()


def _checked(
    still_allowed: Callable[[], bool], batches: Iterator[memoryview]
) -> Iterator[memoryview]:
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
