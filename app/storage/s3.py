"""MinIO, or any S3-compatible store, through the ``minio`` SDK."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from app.storage import ObjectInfo, ObjectNotFound, StorageUnavailable

# The S3 minimum: each part is held in memory (and copied by the SDK) while it uploads, so the
# smallest part keeps workers and web processes lean; 10,000 parts still allow 48 GiB.
PART_SIZE = 5 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


# S3 copies at most 5 GiB into one part.
MAX_COPY_PART = 5 * 1024**3


@dataclass(frozen=True)
class PlannedPart:
    """One part of a composed object: a server-side copy of one range of one source, or
    bytes read from ranges of sources (small pieces, which S3 does not take as parts)."""

    copy: bool
    pieces: list[tuple[str, int, int]]  # (source, start, stop)


def plan_parts(sources: list[tuple[str, int]], minimum: int = PART_SIZE) -> list[PlannedPart]:
    """The parts of the concatenation of ``sources`` (name, size): every part but the last
    at least ``minimum`` bytes, as S3 requires. Ranges of ``minimum`` bytes or more are
    copied on the server; smaller pieces are gathered and sent, topped up from the start of
    the next source if needed, so at most a few MiB per small piece pass through here."""
    parts: list[PlannedPart] = []
    gathered: list[tuple[str, int, int]] = []
    gathered_size = 0

    def flush() -> None:
        nonlocal gathered, gathered_size
        parts.append(PlannedPart(False, gathered))
        gathered, gathered_size = [], 0

    for index, (source, size) in enumerate(sources):
        start = 0
        if gathered_size:
            take = min(minimum - gathered_size, size)
            gathered.append((source, 0, take))
            gathered_size += take
            start = take
            if gathered_size >= minimum:
                flush()
        rest = size - start
        if rest <= 0:
            continue
        if rest >= minimum or (index == len(sources) - 1 and not gathered_size):
            count = -(-rest // MAX_COPY_PART)
            step = -(-rest // count)
            for begin in range(start, size, step):
                parts.append(PlannedPart(True, [(source, begin, min(begin + step, size))]))
        else:
            gathered.append((source, start, size))
            gathered_size += rest
            if gathered_size >= minimum:
                flush()
    if gathered:
        flush()
    return parts


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks, for a put of unknown length."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self.error: BaseException | None = None  # what the chunks raised, if they did

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
            except BaseException as exc:
                self.error = exc
                raise
        if size < 0:
            size = len(self._buffer)
        out = bytes(memoryview(self._buffer)[:size])
        del self._buffer[:size]
        return out


class _ResponseRange:
    """A streaming GET's body (S3Store.open_range); errors map as every store call's do."""

    def __init__(self, store: S3Store, response, name: str) -> None:
        self._store, self._response, self._name = store, response, name

    def read(self, size: int) -> bytes:
        # Objects are stored as they are (no Content-Encoding): no decoder, and no copy
        # through urllib3's decoded-data buffer.
        return self._store._call(self._response.read, size, decode_content=False, name=self._name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()
            self._response.release_conn()


class S3Store:
    kind = "s3"

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        # Few, quick retries here: the worker's task retries (with backoff) handle long outages,
        # and a web request should fail fast rather than hang.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=32,
            retries=urllib3.Retry(
                total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http_client,
        )
        self._bucket_ready = False

    def _call(self, fn, *args, name: str | None = None, **kwargs):
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING and name is not None:
                raise ObjectNotFound(name) from None
            raise StorageUnavailable(f"object store error: {exc.code}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"object store unreachable: {type(exc).__name__}") from exc

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        if not self._call(self.client.bucket_exists, self.bucket):
            try:
                self._call(self.client.make_bucket, self.bucket)
            except StorageUnavailable:
                # Another process may have created it in between.
                if not self._call(self.client.bucket_exists, self.bucket):
                    raise
        self._bucket_ready = True

    def put_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        self.ensure_bucket()
        reader = _ChunkReader(chunks)
        # An exception raised by the chunks propagates out of put_object; the SDK then aborts
        # the multipart upload, so no partial object becomes visible.
        try:
            self._call(
                self.client.put_object,
                self.bucket,
                name,
                reader,
                length=-1,
                part_size=PART_SIZE,
                content_type="application/octet-stream",
                name=name,
            )
        except StorageUnavailable:
            if reader.error is not None:
                # The source failed (e.g. an OSError reading a file), not the store: say so,
                # rather than calling it an outage to be retried.
                raise reader.error from None
            raise
        return self.size(name)

    def compose(self, name: str, sources: list[str]) -> int:
        self.ensure_bucket()
        sizes = [self.size(source) for source in sources]
        if len(sources) == 1:
            # One piece: a server-side copy (S3 has no rename, and the piece stays).
            self._call(
                self.client.copy_object, self.bucket, name, CopySource(self.bucket, sources[0])
            )
            return self.size(name)
        plan = plan_parts(list(zip(sources, sizes, strict=True)))
        client = self.client
        upload_id = self._call(
            client._create_multipart_upload,
            self.bucket,
            name,
            {"Content-Type": "application/octet-stream"},
        )
        try:
            parts = [self._compose_part(name, upload_id, n, part) for n, part in enumerate(plan, 1)]
            self._call(client._complete_multipart_upload, self.bucket, name, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                client._abort_multipart_upload(self.bucket, name, upload_id)
            raise
        return self.size(name)

    def _compose_part(self, name: str, upload_id: str, number: int, part: PlannedPart) -> Part:
        if part.copy:
            source, start, stop = part.pieces[0]
            headers = CopySource(self.bucket, source).gen_copy_headers()
            headers["x-amz-copy-source-range"] = f"bytes={start}-{stop - 1}"
            etag, _ = self._call(
                self.client._upload_part_copy, self.bucket, name, upload_id, number, headers
            )
            return Part(number, etag)
        data = b"".join(
            self.read_range(source, start, stop - start) for source, start, stop in part.pieces
        )
        etag = self._call(
            self.client._upload_part, self.bucket, name, data, None, upload_id, number
        )
        return Part(number, etag)

    # A multipart upload kept open across requests (resumable uploads, SPEC §16): the parts
    # arrive one request at a time and nothing is read back to join them.
    supports_parts = True

    def start_parts(self, name: str) -> str:
        """Open a multipart upload of ``name``; its upload id."""
        self.ensure_bucket()
        return str(
            self._call(
                self.client._create_multipart_upload,
                self.bucket,
                name,
                {"Content-Type": "application/octet-stream"},
            )
        )

    def put_part(self, name: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part ``number`` (1-based; at least PART_SIZE bytes unless it is the last);
        its ETag. Sending a number again replaces that part."""
        return str(
            self._call(self.client._upload_part, self.bucket, name, data, None, upload_id, number)
        )

    def finish_parts(self, name: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        """Complete the multipart upload from ``parts`` (number, ETag): ``name`` appears."""
        self._call(
            self.client._complete_multipart_upload,
            self.bucket,
            name,
            upload_id,
            [Part(number, etag) for number, etag in parts],
        )
        return self.size(name)

    def abort_parts(self, name: str, upload_id: str) -> None:
        """Abort the multipart upload: its parts are gone. An unknown one is no error."""
        try:
            self._call(self.client._abort_multipart_upload, self.bucket, name, upload_id)
        except StorageUnavailable as exc:
            cause = exc.__cause__
            if not (isinstance(cause, S3Error) and cause.code == "NoSuchUpload"):
                raise

    def open_parts(
        self, prefix: str = "", *, started_before: datetime | None = None
    ) -> list[tuple[str, str]]:
        """The multipart uploads not completed or aborted under ``prefix`` (started before
        ``started_before``, if given; one whose start the store does not say counts as
        recent): (name, upload id)."""
        self.ensure_bucket()
        result = self._call(self.client._list_multipart_uploads, self.bucket, prefix=prefix or None)
        return [
            (u.object_name, str(u.upload_id))
            for u in result.uploads
            if started_before is None
            or (u.initiated_time is not None and u.initiated_time < started_before)
        ]

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            response = self._call(
                self.client.get_object, self.bucket, name, offset=offset, length=length, name=name
            )
        except StorageUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "InvalidRange":
                # The offset is at or past the end of an object that exists (a missing one is
                # NoSuchKey): nothing to read, as with a local file.
                return b""
            raise
        try:
            return self._call(response.read, name=name)
        finally:
            response.close()
            response.release_conn()

    def open_range(self, name: str, offset: int, length: int) -> _ResponseRange:
        response = self._call(
            self.client.get_object, self.bucket, name, offset=offset, length=length, name=name
        )
        return _ResponseRange(self, response, name)

    def iter_object(self, name: str, block_size: int = 1 << 20) -> Iterator[bytes]:
        response = self._call(self.client.get_object, self.bucket, name, name=name)
        try:
            while True:
                block = self._call(response.read, block_size, name=name)
                if not block:
                    break
                yield block
        finally:
            response.close()
            response.release_conn()

    def size(self, name: str) -> int:
        stat = self._call(self.client.stat_object, self.bucket, name, name=name)
        return int(stat.size or 0)

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except ObjectNotFound:
            return False
        return True

    def delete(self, name: str) -> None:
        self._call(self.client.remove_object, self.bucket, name, name=name)

    def delete_many(self, names: list[str]) -> None:
        # One multi-object DELETE per 1000 names (the S3 limit) instead of a request per name.
        for start in range(0, len(names), 1000):
            batch = [DeleteObject(name) for name in names[start : start + 1000]]
            errors = self._call(lambda b=batch: list(self.client.remove_objects(self.bucket, b)))
            failed = [e for e in errors if e.code not in _MISSING]
            if failed:
                raise StorageUnavailable(f"object store error: {failed[0].code}")

    def list(self, prefix: str = "") -> Iterator[str]:
        for info in self.scan(prefix):
            yield info.name

    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.ensure_bucket()
        objects = self._call(
            self.client.list_objects, self.bucket, prefix=prefix or None, recursive=True
        )
        try:
            for obj in objects:
                if obj.object_name and not obj.is_dir:
                    yield ObjectInfo(obj.object_name, int(obj.size or 0), obj.last_modified)
        except (S3Error, MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"object store unreachable: {type(exc).__name__}") from exc

    def check(self) -> None:
        self._bucket_ready = False
        self.ensure_bucket()
