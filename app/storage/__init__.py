"""The object store: a small interface with a local-directory and an S3 (MinIO) implementation.

Everything written here is already ciphertext; names hold only opaque ids (SPEC §9). Callers
see two errors: :class:`ObjectNotFound` (the object is not there: a bug or a shredded object)
and :class:`StorageUnavailable` (the store could not be reached: retry later).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.config import Settings


class StorageError(Exception):
    """Base class of object-store errors."""


class ObjectNotFound(StorageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"object not found: {name}")
        self.name = name


class StorageUnavailable(StorageError):
    """The store did not answer or answered with a server error; the operation may be retried."""


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime


class RangeStream(Protocol):
    """A streaming read of part of an object (one request to the store)."""

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" at the end of the range."""

    def close(self) -> None: ...


class ObjectStore(Protocol):
    """What consent-replay needs from an object store."""

    kind: str

    def put_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenation of ``chunks`` (length unknown up front); return its size.

        Nothing is visible under ``name`` unless the whole stream was stored: an exception
        from ``chunks`` aborts the put and leaves no object behind.
        """

    def compose(self, name: str, sources: list[str]) -> int:
        """Make ``name`` the concatenation of the objects ``sources`` (which stay); its size.

        For resumable uploads, whose pieces are stored as they arrive: the store joins them
        without the bytes passing through this process where it can (a hard link for one
        local piece, server-side part copies on S3). ObjectNotFound if a source is missing;
        nothing appears under ``name`` unless the whole concatenation was stored.
        """

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset`` (fewer only at the end of the object)."""

    def open_range(self, name: str, offset: int, length: int) -> RangeStream:
        """Stream ``length`` bytes from ``offset``: one request, read as the caller goes."""

    def iter_object(self, name: str, block_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the whole object in blocks."""

    def size(self, name: str) -> int:
        """The object's size in bytes; ObjectNotFound if it is not there."""

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None:
        """Remove the object; removing an absent object is not an error."""

    def delete_many(self, names: list[str]) -> None:
        """Remove several objects, in one request where the store allows it."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names of the objects under ``prefix``."""

    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Name, size and modification time of each object under ``prefix``."""

    def check(self) -> None:
        """Raise StorageUnavailable unless the store is reachable and the bucket usable."""


class PartStore(ObjectStore, Protocol):
    """A store that keeps a multipart upload open across requests (S3, ``supports_parts``):
    a resumable upload's bytes go into their object part by part, nothing read back."""

    supports_parts: bool

    def start_parts(self, name: str) -> str:
        """Open a multipart upload of ``name``; its upload id."""

    def put_part(self, name: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part ``number`` (each but the last at least 5 MiB); its ETag."""

    def finish_parts(self, name: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        """Complete the upload from ``parts`` (number, ETag); the object's size."""

    def abort_parts(self, name: str, upload_id: str) -> None:
        """Abort the upload and drop its parts (an unknown upload is no error)."""

    def open_parts(
        self, prefix: str = "", *, started_before: datetime | None = None
    ) -> list[tuple[str, str]]:
        """The multipart uploads still open under ``prefix`` (only those started before
        ``started_before``, if given): (name, upload id)."""


def create_store(settings: Settings) -> ObjectStore:
    if settings.store_kind == "s3":
        from app.storage.s3 import S3Store

        return S3Store(
            endpoint=settings.s3_endpoint or "",
            access_key=settings.s3_access_key or "",
            secret_key=settings.s3_secret_key or "",
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    from app.storage.local import LocalStore

    return LocalStore(settings.store_dir)


__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PartStore",
    "RangeStream",
    "StorageError",
    "StorageUnavailable",
    "create_store",
]
