"""Stored media objects: object header + c2sp chunked encryption (layout in crypto._core).

Every object is encrypted under the data key (DEK) of its recording or share.  The header names
the key id and the object id and is the c2sp context, so each reader must say which key id and
object id it expects: an object copied, renamed or spliced from elsewhere does not open.
"""

from __future__ import annotations

import hmac
import io
import os
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from . import _core
from ._core import (
    AEAD_AES_256_GCM,
    CHUNK_CIPHERTEXT_SIZE,
    CHUNK_SIZE,
    HEADER_MAGIC,
    HEADER_VERSION,
    DecryptionError,
    ObjectHeader,
    RangeSource,
    encode_header,
    parse_header,
)
from ._io import FailClosed, read_blocks, write_behind

DATA_KEY_SIZE = 32

__all__ = [
    "HEADER_MAGIC",
    "HEADER_VERSION",
    "BytesRangeSource",
    "FileRangeSource",
    "ObjectHeader",
    "RandomAccessReader",
    "RangeSource",
    "Sealer",
    "encode_header",
    "new_data_key",
    "open_range",
    "open_to",
    "parse_header",
    "plaintext_size",
    "seal",
    "seal_to",
    "sealed_head_size",
    "sealed_size",
    "unseal",
]


def new_data_key() -> bytes:
    """A fresh 256-bit data key."""
    return _core.random_bytes(DATA_KEY_SIZE)


def _check_data_key(dek: bytes) -> None:
    if not isinstance(dek, bytes | bytearray) or len(dek) != DATA_KEY_SIZE:
        raise ValueError("a data key is 32 bytes")


def sealed_head_size(key_id: str, object_id: str) -> int:
    """Stored bytes before the first chunk: header, salt and commitment (what resuming reads)."""
    return len(encode_header(key_id, object_id)) + _core.PREAMBLE_SIZE


def sealed_size(plaintext_size: int, key_id: str, object_id: str) -> int:
    """Stored size of an object holding plaintext_size bytes."""
    return len(encode_header(key_id, object_id)) + _core.ciphertext_size(plaintext_size)


def plaintext_size(sealed_size: int, key_id: str, object_id: str) -> int:
    """Plaintext size of a stored object of sealed_size bytes; DecryptionError if impossible.

    Not authenticated: only decrypting the final chunk proves the length.
    """
    return _core.message_size(sealed_size - len(encode_header(key_id, object_id)))


# --------------------------------------------------------------------------------------------
# Sealing


class Sealer:
    """Push-style encryption of one object, for upload streams.

    update() returns the stored bytes that are ready (often b"" until a 16 KiB chunk is
    complete); finalize() returns the rest.  The concatenation of all outputs is the object.
    """

    def __init__(
        self,
        dek: bytes,
        *,
        key_id: str,
        object_id: str,
        salt: bytes | None = None,
        threads: int = _core.SEAL_THREADS,
    ) -> None:
        _check_data_key(dek)
        header = encode_header(key_id, object_id)
        self._encryptor = _core.ChunkedEncryptor(
            dek, header, aead=AEAD_AES_256_GCM, salt=salt, threads=threads
        )
        self._header: bytes | None = header
        self._finished = False

    @classmethod
    def resume(
        cls,
        dek: bytes,
        head: bytes,
        *,
        key_id: str,
        object_id: str,
        offset: int,
        threads: int = _core.SEAL_THREADS,
    ) -> Sealer:
        """Continue sealing an object whose first ``offset`` plaintext bytes are stored.

        ``head`` is the stored object's first ``sealed_head_size(key_id, object_id)`` bytes
        (header, salt and commitment); ``offset`` must be a whole number of chunks. The header
        is compared with the one expected for these ids and the commitment is recomputed from
        the data key, so a head from another object or key raises DecryptionError. What the
        resumed Sealer outputs continues the stored bytes exactly: sealing a stream in resumed
        pieces gives the same object as sealing it at once with the same salt.
        """
        _check_data_key(dek)
        header = encode_header(key_id, object_id)
        if offset < 0 or offset % CHUNK_SIZE:
            raise ValueError("a sealed object resumes only at a whole number of chunks")
        if len(head) != len(header) + _core.PREAMBLE_SIZE:
            raise ValueError("head must be the header, salt and commitment of the object")
        prefix_ok = hmac.compare_digest(bytes(head[: len(header)]), header)
        sealer = cls.__new__(cls)
        try:
            sealer._encryptor = _core.ChunkedEncryptor.resume(
                dek, header, bytes(head[len(header) :]), offset // CHUNK_SIZE, threads=threads
            )
        except DecryptionError:
            prefix_ok = False
        if not prefix_ok:
            raise DecryptionError()
        sealer._header = None
        sealer._finished = False
        return sealer

    @property
    def offset(self) -> int:
        """Plaintext bytes sealed in whole chunks so far, counting those before a resume."""
        return self._encryptor.chunks_sealed * CHUNK_SIZE

    @property
    def pending(self) -> int:
        """Plaintext bytes held back in the incomplete chunk (not yet in any output)."""
        return self._encryptor.pending

    def discard_pending(self) -> int:
        """Drop (and wipe) the incomplete chunk; returns its size. The next resumed piece
        starts at ``offset`` and must carry those bytes again."""
        return self._encryptor.discard_pending()

    def _take_header(self) -> Iterator[bytes]:
        if self._header is not None:
            header, self._header = self._header, None
            yield header

    def iter_update(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        """Like update(), but yields the output in blocks of at most ~256 KiB."""
        if self._finished:
            raise RuntimeError("this Sealer is finalized")
        yield from self._take_header()
        yield from self._encryptor.iter_update(data)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        return b"".join(self.iter_update(data))

    def finalize(self) -> bytes:
        if self._finished:
            raise RuntimeError("this Sealer is finalized")
        self._finished = True
        return b"".join(self._take_header()) + self._encryptor.finalize()


def seal(
    dek: bytes,
    plaintext: BinaryIO | Iterable[bytes] | bytes,
    *,
    key_id: str,
    object_id: str,
    salt: bytes | None = None,
) -> Iterator[bytes]:
    """Encrypt plaintext (a binary file or an iterable of byte blocks) into a stored object.

    Yields the object in blocks of at most ~256 KiB, in bounded memory (at most two blocks
    per sealing thread in flight, :data:`crypto._core.SEAL_THREADS` threads by default).  ``salt``
    exists for test vectors; leave it None.
    """
    sealer = Sealer(dek, key_id=key_id, object_id=object_id, salt=salt)
    return _seal_blocks(sealer, plaintext)


def _seal_blocks(sealer: Sealer, plaintext: BinaryIO | Iterable[bytes] | bytes) -> Iterator[bytes]:
    if isinstance(plaintext, bytes | bytearray | memoryview):
        yield from sealer.iter_update(plaintext)
    elif hasattr(plaintext, "readinto") or hasattr(plaintext, "read"):
        for view in read_blocks(plaintext, CHUNK_SIZE):  # type: ignore[arg-type]
            yield from sealer.iter_update(view)
    else:
        for block in plaintext:
            yield from sealer.iter_update(block)
    yield sealer.finalize()


# --------------------------------------------------------------------------------------------
# Opening


# crypto.open shadows the builtin on purpose: callers write crypto.unseal(...).
def unseal(
    dek: bytes,
    ciphertext: BinaryIO | Iterable[bytes] | bytes,
    *,
    key_id: str,
    object_id: str,
) -> Iterator[bytes]:
    """Decrypt a stored object, yielding only authenticated plaintext.

    Any failure (wrong key, other object, tampering, truncation, trailing data) raises
    DecryptionError, possibly after yielding the authenticated chunks before the failure;
    after that every next() raises DecryptionError again.
    """
    _check_data_key(dek)
    header = encode_header(key_id, object_id)
    decryptor = _core.ChunkedDecryptor(dek, header, aead=AEAD_AES_256_GCM, expected_prefix=header)
    return FailClosed(_open_blocks(decryptor, ciphertext))


def _open_blocks(
    decryptor: _core.ChunkedDecryptor, ciphertext: BinaryIO | Iterable[bytes] | bytes
) -> Iterator[bytes]:
    if isinstance(ciphertext, bytes | bytearray | memoryview):
        blocks: Iterable[bytes | memoryview] = [ciphertext]
    elif hasattr(ciphertext, "readinto") or hasattr(ciphertext, "read"):
        blocks = read_blocks(ciphertext, _core.CHUNK_CIPHERTEXT_SIZE)  # type: ignore[arg-type]
    else:
        blocks = ciphertext
    for block in blocks:
        for plaintext in decryptor.iter_update(block):
            if plaintext:
                yield plaintext
    final = decryptor.finalize()
    if final:
        yield final


def seal_to(
    dek: bytes,
    plaintext: BinaryIO | Iterable[bytes] | bytes,
    sink: BinaryIO,
    *,
    key_id: str,
    object_id: str,
) -> int:
    """seal() straight into a writable binary file; returns the bytes written.

    Writing happens on a helper thread, overlapping with encryption: the fast way to seal a
    file to a file.  The caller closes (and fsyncs) the sink.
    """
    return write_behind(sink, seal(dek, plaintext, key_id=key_id, object_id=object_id))


def open_to(
    dek: bytes,
    ciphertext: BinaryIO | Iterable[bytes] | bytes,
    sink: BinaryIO,
    *,
    key_id: str,
    object_id: str,
) -> int:
    """unseal() straight into a writable binary file; returns the plaintext bytes written.

    On DecryptionError the sink may already hold an authenticated prefix of the plaintext:
    the caller must discard it.
    """
    return write_behind(sink, unseal(dek, ciphertext, key_id=key_id, object_id=object_id))


# --------------------------------------------------------------------------------------------
# Random access


class FileRangeSource:
    """A RangeSource over a local file (a path, or a binary file object it does not own)."""

    def __init__(self, path_or_fileobj: str | os.PathLike[str] | BinaryIO) -> None:
        if isinstance(path_or_fileobj, str | os.PathLike):
            self._file: BinaryIO = io.open(path_or_fileobj, "rb")  # noqa: UP020, SIM115
            self._owned = True
        else:
            self._file = path_or_fileobj
            self._owned = False
        self._lock = threading.Lock()
        try:
            self._fd: int | None = self._file.fileno()
            self.size = os.fstat(self._fd).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None
            with self._lock:
                self.size = self._file.seek(0, io.SEEK_END)

    def read(self, offset: int, length: int) -> bytes:
        if self._fd is not None:
            chunks = []
            while length > 0:
                data = os.pread(self._fd, length, offset)
                if not data:
                    break
                chunks.append(data)
                offset += len(data)
                length -= len(data)
            return b"".join(chunks)
        with self._lock:
            self._file.seek(offset)
            return self._file.read(length)

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> FileRangeSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BytesRangeSource:
    """A RangeSource over bytes in memory."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(bytes(data))
        self.size = len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])


class RandomAccessReader:
    """Reads plaintext byte ranges of a stored object, fetching only the chunks they need.

    Construction reads header, salt and commitment with one small read and checks them.
    ``size`` (the plaintext size) comes from the source size and is authenticated only by
    verify_length() or by reading a range that reaches the end.
    """

    def __init__(self, dek: bytes, source: RangeSource, *, key_id: str, object_id: str) -> None:
        _check_data_key(dek)
        header = encode_header(key_id, object_id)
        self._reader = _core.ChunkedRandomAccess(
            dek, source, context=header, aead=AEAD_AES_256_GCM, expected_prefix=header
        )
        self.size: int = self._reader.size
        self._body_offset = len(header) + _core.PREAMBLE_SIZE
        self._stored_size: int = source.size

    def ciphertext_span(self, start: int, stop: int) -> tuple[int, int]:
        """The stored bytes ``[first, last)`` holding the chunks that cover plaintext
        ``[start, stop)``: what a reader of that range will ask its source for."""
        first = self._body_offset + (start // CHUNK_SIZE) * CHUNK_CIPHERTEXT_SIZE
        if stop >= self.size:  # the final chunk is read to the end of the object
            return first, self._stored_size
        last = self._body_offset + ((stop - 1) // CHUNK_SIZE + 1) * CHUNK_CIPHERTEXT_SIZE
        return first, min(last, self._stored_size)

    def verify_length(self) -> int:
        """Decrypt the final chunk, proving ``size``; DecryptionError if it does not hold."""
        return self._reader.verify_length()

    def iter_range(self, start: int, stop: int, batch_chunks: int = 64) -> Iterator[bytes]:
        """Yield plaintext [start, stop) batch by batch, one source read per batch.

        Nothing is read before the first next(), and each batch is read only when asked for,
        so a caller can re-check authorisation between batches and stop.
        """
        return FailClosed(self._reader.iter_range(start, stop, batch_chunks))

    def iter_range_views(
        self, start: int, stop: int, batch_chunks: int = 64
    ) -> Iterator[memoryview]:
        """iter_range without a copy per batch: each view is valid only until the next one is
        asked for (the plaintext goes into one buffer reused for every batch)."""
        return FailClosed(self._reader.iter_range_views(start, stop, batch_chunks))

    def read(self, start: int, length: int) -> bytes:
        """Up to ``length`` plaintext bytes from ``start`` (fewer at the end)."""
        return self._reader.read(start, length)


def open_range(
    dek: bytes, source: RangeSource, start: int, stop: int, *, key_id: str, object_id: str
) -> Iterator[bytes]:
    """Plaintext [start, stop) of a stored object (see RandomAccessReader)."""
    reader = RandomAccessReader(dek, source, key_id=key_id, object_id=object_id)
    return reader.iter_range(start, stop)
