"""The only module that touches ``cryptography.hazmat``; everything else builds on it.

It implements c2sp.org/chunked-encryption ("Cobblestone"), the object header that puts it into
a stored object, AES-256-GCM key wrapping, Ed25519 signing keys and secure random bytes.

Wire format
===========

All integers are unsigned big-endian. ``||`` is concatenation.

Stored object
-------------
Every media object in storage is ``object header || c2sp ciphertext``::

    offset      size  field
    0           4     magic b"CRPL" (43 52 50 4c)
    4           1     format version, 0x01
    5           1     K: length of key_id in UTF-8 bytes, 1..255
    6           K     key_id, UTF-8 (the id of the data key, i.e. of the wrapped-key row)
    6+K         1     O: length of object_id in UTF-8 bytes, 1..255
    7+K         O     object_id, UTF-8 (the object's own id, as in its storage name)
    H = 7+K+O         end of the header

The header bytes ``[0, H)`` are used verbatim as the c2sp *context*, so the commitment binds
the ciphertext to this key id and object id: a ciphertext copied under another object's name,
or a header edited to point at another key, fails the commitment check.  Readers never parse
their way into trusting a header: they rebuild the header they expect from the ids they were
given and compare it byte for byte (magic, version, key_id and object_id at once).

c2sp.org/chunked-encryption v1 (starts at offset H; offsets below are relative to H)
-------------------------------------------------------------------------------------
::

    0       24      salt, fresh random per object
    24      32      commitment
    56      ...     chunk 0, chunk 1, ..., chunk n-1

Key schedule (HKDF-Expand only; the input key is already uniformly random)::

    info = b"c2sp.org/chunked-encryption@v1+" || aead_name || 0x00 || salt || context
    aead_key || base_nonce || commitment = HKDF-Expand(SHA-512, prk=key, info,
                                                       L = key_size + 12 + 32)

``aead_name`` is b"AEAD_AES_256_GCM" (32-byte key; what objects use) or b"AEAD_AES_128_GCM"
(16-byte key; only for the published test vectors).  Decryption recomputes the commitment and
compares it in constant time before it touches any chunk.

The plaintext is cut into 16384-byte chunks.  The final chunk is always shorter than 16384 bytes
and may be empty: an empty message is one empty chunk, a 16384-byte message is one full chunk
plus one empty chunk.  That is what makes truncation at a chunk boundary detectable: a stream
that ends after a full chunk has lost its final chunk.  Chunk k (0-based) is::

    AES-GCM(aead_key, nonce = base_nonce XOR k as a 12-byte integer, aad = empty)
    = ciphertext (same length as the plaintext chunk) || 16-byte tag

so a full chunk is 16400 bytes and chunk k starts at ``56 + k * 16400``.  k must stay below
2**38.  A c2sp ciphertext length L is valid exactly when L >= 56 + 16 and
``(L - 56) mod 16400 >= 16``; this rules out a missing final chunk (remainder 0) and a final
piece too short to hold a tag.  The plaintext length is then
``(L - 56) // 16400 * 16384 + (L - 56) % 16400 - 16``.

Random access reads chunk k at its offset and decrypts it with its own nonce, so reordered,
duplicated or spliced chunks fail.  Only decrypting the final chunk authenticates the length.

Sealing in resumed pieces (resumable uploads): between two chunks the encryptor's whole state
is (aead_key, base_nonce, next chunk index k), and the first two follow from the data key, the
context and the stored salt.  So a message can be written in pieces, by different processes,
each ending on a chunk boundary: ``ChunkedEncryptor.resume(key, context, salt || commitment,
k)`` recomputes the commitment (refusing a preamble made under another key or context) and
continues at chunk k.  The concatenation of the pieces is byte for byte the one-shot
ciphertext with that salt.  Nothing partial is carried over: bytes past the last whole chunk of
a piece are dropped (``discard_pending``) and must be fed again to the next piece.

Wrapped data key (the ``blob`` of a wrapped key; the KEK version is stored next to it)
---------------------------------------------------------------------------------------
::

    0       12      nonce, fresh random per wrap
    12      32      AES-256-GCM ciphertext of the 32-byte data key under the KEK version
    44      16      GCM tag

Associated data of a wrap (every field length-prefixed, so no two inputs share an encoding)::

    u16 len(domain)   || domain   = b"consent-replay/dek-wrap/v1"
    u16 len(key_id)   || key_id   (UTF-8)
    u16 len(owner_id) || owner_id (UTF-8)
    u32 kek_version

A blob therefore unwraps only under its own KEK version, for its own key id and owner id.
"""

from __future__ import annotations

import hmac
import os
import secrets
import struct
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA512
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

CHUNK_SIZE = 16384
TAG_SIZE = 16
CHUNK_CIPHERTEXT_SIZE = CHUNK_SIZE + TAG_SIZE
SALT_SIZE = 24
COMMITMENT_SIZE = 32
NONCE_SIZE = 12
PREAMBLE_SIZE = SALT_SIZE + COMMITMENT_SIZE
MAX_CHUNKS = 1 << 38
# 16 chunks (256 KiB of plaintext) per batch keeps the input and output buffers of one batch
# inside the L2 cache, which measured faster than 1 MiB batches; see bench/crypto.py.
BATCH_CHUNKS = 16
# Sealing threads per encryptor by default: one. Chunks are independent (each depends only on
# the derived keys and its index), so batches *can* be encrypted side by side (threads=N), but
# every 16 KiB chunk is one library call that takes the GIL again, and two threads handing it
# over per chunk seal at less than half the speed of one (bench/crypto.py on 2 CPUs: 2.1 GB/s
# with two threads, 5.2 GB/s with one; a bare 16 KiB AES-GCM loop: 6.0 vs 7.8 GB/s).
SEAL_THREADS = 1
# Output buffers of an encryptor kept for reuse beyond those its threads fill.
OUTPUT_RING_QUEUED = 64

_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+"
_GENERIC_MESSAGE = "ciphertext is invalid or the key is wrong"


class DecryptionError(Exception):
    """The one error for any failure to decrypt, unwrap or authenticate.

    Its message never says which check failed: telling a truncated object from a wrong key
    would help whoever is probing.
    """

    def __init__(self, message: str = _GENERIC_MESSAGE) -> None:
        super().__init__(message)


def random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)


# --------------------------------------------------------------------------------------------
# c2sp.org/chunked-encryption


@dataclass(frozen=True)
class ChunkedAead:
    """One AEAD instantiation of c2sp.org/chunked-encryption."""

    name: bytes
    key_size: int


AEAD_AES_256_GCM = ChunkedAead(b"AEAD_AES_256_GCM", 32)
AEAD_AES_128_GCM = ChunkedAead(b"AEAD_AES_128_GCM", 16)


def hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(algorithm=SHA512(), length=length, info=info).derive(prk)


@dataclass(frozen=True, repr=False)
class DerivedKeys:
    aead_key: bytes
    base_nonce: bytes
    commitment: bytes


def check_key_size(key: bytes, aead: ChunkedAead) -> None:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError("the key must be bytes")
    if len(key) != aead.key_size:
        raise ValueError(f"{aead.name.decode()} needs a {aead.key_size}-byte key")


def derive_keys(key: bytes, salt: bytes, context: bytes, aead: ChunkedAead) -> DerivedKeys:
    check_key_size(key, aead)
    if len(salt) != SALT_SIZE:
        raise ValueError(f"the salt must be {SALT_SIZE} bytes")
    info = _INFO_PREFIX + aead.name + b"\x00" + bytes(salt) + bytes(context)
    okm = hkdf_expand_sha512(bytes(key), info, aead.key_size + NONCE_SIZE + COMMITMENT_SIZE)
    k = aead.key_size
    return DerivedKeys(okm[:k], okm[k : k + NONCE_SIZE], okm[k + NONCE_SIZE :])


def ciphertext_size(plaintext_size: int) -> int:
    """Size of the c2sp ciphertext (preamble included) of a message of this size."""
    if plaintext_size < 0:
        raise ValueError("a size cannot be negative")
    chunks = plaintext_size // CHUNK_SIZE + 1
    if chunks > MAX_CHUNKS:
        raise ValueError("message too long for chunked encryption")
    return PREAMBLE_SIZE + plaintext_size + chunks * TAG_SIZE


def message_size(ciphertext_size: int) -> int:
    """Plaintext size of a c2sp ciphertext of this size; DecryptionError if impossible."""
    body = ciphertext_size - PREAMBLE_SIZE
    if body < TAG_SIZE:
        raise DecryptionError()
    full_chunks, final_piece = divmod(body, CHUNK_CIPHERTEXT_SIZE)
    if final_piece < TAG_SIZE or full_chunks + 1 > MAX_CHUNKS:
        raise DecryptionError()
    return full_chunks * CHUNK_SIZE + final_piece - TAG_SIZE


class _ChunkCipher:
    """AES-GCM over the chunks of one message; the nonce arithmetic is done on ints."""

    __slots__ = ("_aesgcm", "_base_nonce")

    def __init__(self, keys: DerivedKeys) -> None:
        self._aesgcm = AESGCM(keys.aead_key)
        self._base_nonce = int.from_bytes(keys.base_nonce, "big")

    def nonce(self, index: int) -> bytes:
        if not 0 <= index < MAX_CHUNKS:
            raise OverflowError("chunk counter exhausted")
        return (self._base_nonce ^ index).to_bytes(NONCE_SIZE, "big")

    def seal_full_chunks(
        self, src: memoryview, dst_views: list[memoryview], first_index: int
    ) -> None:
        """Encrypt len(src) // CHUNK_SIZE full chunks from src, chunk i into dst_views[i].

        The destination views are sliced once by the caller and reused for every batch:
        at 16 KiB per call, slicing costs as much as a tenth of the encryption.
        """
        count = len(src) // CHUNK_SIZE
        if count > len(dst_views) or first_index + count > MAX_CHUNKS:
            raise OverflowError("chunk counter exhausted or batch too large")
        encrypt_into = self._aesgcm.encrypt_into
        base = self._base_nonce
        p = 0
        for index, dst in zip(range(first_index, first_index + count), dst_views, strict=False):
            encrypt_into(
                (base ^ index).to_bytes(NONCE_SIZE, "big"), src[p : p + CHUNK_SIZE], None, dst
            )
            p += CHUNK_SIZE

    def seal_final_chunk(self, src: memoryview, dst: memoryview, index: int) -> int:
        size = len(src) + TAG_SIZE
        self._aesgcm.encrypt_into(self.nonce(index), src, None, dst[:size])
        return size

    def open_chunks(
        self,
        src: memoryview,
        dst: memoryview,
        dst_views: list[memoryview],
        first_index: int,
        final_size: int = 0,
    ) -> int:
        """Decrypt full chunks, then a final chunk of final_size bytes if final_size > 0.

        dst_views[i] is dst's i-th 16 KiB slice.  Returns the number of plaintext bytes
        written.  On a bad tag it raises _ChunkAuthFailure carrying how many plaintext bytes
        before it were authenticated, and wipes the failed chunk's output, which GCM has
        already filled with unauthenticated plaintext.
        """
        full = (len(src) - final_size) // CHUNK_CIPHERTEXT_SIZE
        if full + (1 if final_size else 0) > len(dst_views) or (
            first_index + full + (1 if final_size else 0) > MAX_CHUNKS
        ):
            raise _ChunkAuthFailure(0)
        decrypt_into = self._aesgcm.decrypt_into
        base = self._base_nonce
        p = 0
        index = first_index
        try:
            for index, view in zip(range(first_index, first_index + full), dst_views, strict=False):
                decrypt_into(
                    (base ^ index).to_bytes(NONCE_SIZE, "big"),
                    src[p : p + CHUNK_CIPHERTEXT_SIZE],
                    None,
                    view,
                )
                p += CHUNK_CIPHERTEXT_SIZE
            q = full * CHUNK_SIZE
            if final_size:
                index = first_index + full
                size = final_size - TAG_SIZE
                nonce = self.nonce(index)
                decrypt_into(nonce, src[p : p + final_size], None, dst[q : q + size])
                q += size
        except InvalidTag:
            q = (index - first_index) * CHUNK_SIZE
            dst[q : q + CHUNK_SIZE] = bytes(min(CHUNK_SIZE, len(dst) - q))
            raise _ChunkAuthFailure(q) from None
        return q


def _done(task: tuple[Future[None], bytes]) -> bytes:
    future, out = task
    future.result()
    return out


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _seal_pool() -> ThreadPoolExecutor:
    """The process's sealing threads, made on first use (and again in a forked child)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=SEAL_THREADS, thread_name_prefix="seal")
        return _pool


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def chunk_views(buffer: bytearray, span: int) -> list[memoryview]:
    """The consecutive span-sized slices of buffer."""
    whole = memoryview(buffer)
    return [whole[i : i + span] for i in range(0, len(buffer) - span + 1, span)]


class _ChunkAuthFailure(Exception):
    def __init__(self, authenticated: int) -> None:
        super().__init__(_GENERIC_MESSAGE)
        self.authenticated = authenticated


class _OutputRing:
    """Output buffers of whole batches, handed on without a copy and reused once nobody holds
    them any more.

    A fresh buffer per batch costs an allocation of zeroed pages and, freed, an unmap that
    stalls every other thread of the process (measured: parallel sealing slower than one
    thread). Whether a consumer still holds a buffer (in a list, a queue, a memoryview) is
    read from its reference count: CPython's, exact, and only ever this encryptor's thread
    takes buffers. At most ``capacity`` buffers are kept; beyond that a batch gets its own.
    """

    def __init__(self, size: int, capacity: int) -> None:
        self._size = size
        self._capacity = capacity
        self._entries: list[_Output] = []

    def take(self) -> tuple[bytearray, list[memoryview]]:
        for out in self._entries:
            if sys.getrefcount(out.buffer) == out.idle:
                return out.buffer, out.views
        out = _Output(self._size)
        if len(self._entries) < self._capacity:
            self._entries.append(out)
        return out.buffer, out.views


class _Output:
    __slots__ = ("buffer", "idle", "views")

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.views = chunk_views(self.buffer, CHUNK_CIPHERTEXT_SIZE)
        # Held by this object and its views only, counted exactly as take() counts.
        self.idle = sys.getrefcount(self.buffer)


class ChunkedEncryptor:
    """Push-style c2sp encryptor: update() any number of times, then finalize() once.

    Full chunks are encrypted as soon as they are complete (a full chunk is never the final
    one), so at most one partial chunk is buffered whatever the input sizes.  The first
    output starts with salt || commitment.
    """

    def __init__(
        self,
        key: bytes,
        context: bytes = b"",
        *,
        aead: ChunkedAead = AEAD_AES_256_GCM,
        salt: bytes | None = None,
        batch_chunks: int = BATCH_CHUNKS,
        threads: int = 1,
    ) -> None:
        check_key_size(key, aead)
        if salt is None:
            salt = random_bytes(SALT_SIZE)
        keys = derive_keys(key, salt, context, aead)
        self._cipher = _ChunkCipher(keys)
        self._preamble: bytes | None = bytes(salt) + keys.commitment
        self._commitment = keys.commitment
        self._next_index = 0
        self._tail = bytearray(CHUNK_SIZE)
        self._tail_length = 0
        self._batch_chunks = max(1, batch_chunks)
        self._out = bytearray(self._batch_chunks * CHUNK_CIPHERTEXT_SIZE)
        self._out_views = chunk_views(self._out, CHUNK_CIPHERTEXT_SIZE)
        self._threads = max(1, threads)
        # Two batches per thread in flight, and what a consumer queues (crypto._io's
        # write-behind holds up to ~16 MiB); made as needed, so small messages keep none.
        self._ring = _OutputRing(len(self._out), 2 * self._threads + OUTPUT_RING_QUEUED)
        self._finished = False

    @classmethod
    def resume(
        cls,
        key: bytes,
        context: bytes,
        preamble: bytes,
        next_index: int,
        *,
        aead: ChunkedAead = AEAD_AES_256_GCM,
        batch_chunks: int = BATCH_CHUNKS,
        threads: int = 1,
    ) -> ChunkedEncryptor:
        """Continue a message of which ``preamble`` (salt || commitment) and the first
        ``next_index`` full chunks were written earlier, by this or another process.

        The state of an encryptor between chunks is only the derived keys and the chunk
        counter, so it is rebuilt from the stored preamble and the key: the commitment is
        recomputed and compared, and a preamble made with another key or context raises
        DecryptionError. The resumed encryptor does not emit the preamble again; its output
        continues the ciphertext at chunk ``next_index`` byte for byte as if it had never
        stopped.
        """
        if len(preamble) != PREAMBLE_SIZE:
            raise ValueError(f"the preamble must be {PREAMBLE_SIZE} bytes")
        if not 0 <= next_index < MAX_CHUNKS:
            raise ValueError("chunk index out of range")
        encryptor = cls(
            key,
            context,
            aead=aead,
            salt=preamble[:SALT_SIZE],
            batch_chunks=batch_chunks,
            threads=threads,
        )
        if not hmac.compare_digest(encryptor._commitment, preamble[SALT_SIZE:]):
            raise DecryptionError()
        encryptor._preamble = None
        encryptor._next_index = next_index
        return encryptor

    @property
    def chunks_sealed(self) -> int:
        """How many full chunks of the message have been encrypted (resumed ones included)."""
        return self._next_index

    @property
    def pending(self) -> int:
        """Plaintext bytes held back: the start of a chunk that is not complete yet."""
        return self._tail_length

    def discard_pending(self) -> int:
        """Wipe and drop the incomplete chunk held back; returns how many bytes it had.

        For a message written in pieces: a piece ends on a chunk boundary, and the bytes past
        it are sent again with the next piece (nothing partial is kept between pieces).
        """
        dropped = self._tail_length
        self._tail[:dropped] = bytes(dropped)
        self._tail_length = 0
        return dropped

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("this encryptor is finalized")

    def iter_update(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        """Encrypt data, yielding ciphertext blocks of at most one batch each.

        The caller must exhaust the iterator before reusing data's buffer.
        """
        self._check_open()
        if self._preamble is not None:
            preamble, self._preamble = self._preamble, None
            yield preamble
        with memoryview(data) as whole:
            view = whole.cast("B") if whole.format != "B" or whole.ndim != 1 else whole
            if self._tail_length:
                take = min(CHUNK_SIZE - self._tail_length, len(view))
                self._tail[self._tail_length : self._tail_length + take] = view[:take]
                self._tail_length += take
                view = view[take:]
                if self._tail_length < CHUNK_SIZE:
                    return
                self._tail_length = 0
                yield self._seal_full(memoryview(self._tail))
            batch = self._batch_chunks * CHUNK_SIZE
            if self._threads > 1 and len(view) >= 2 * batch:
                batches = len(view) - len(view) % batch
                yield from self._seal_parallel(view[:batches], batch)
                view = view[batches:]
            while len(view) >= CHUNK_SIZE:
                take = min(len(view) - len(view) % CHUNK_SIZE, batch)
                yield self._seal_full(view[:take])
                view = view[take:]
            self._tail[: len(view)] = view
            self._tail_length = len(view)

    def _seal_parallel(self, view: memoryview, batch: int) -> Iterator[bytes]:
        """Whole batches, one per task on the sealing threads, yielded in order; at most two
        batches per thread in flight. The same bytes as one thread makes: a chunk's
        ciphertext depends only on the keys and its index."""
        pool = _seal_pool()
        seal = self._cipher.seal_full_chunks
        # The buffers are handed on without a copy; consumers use them as bytes (join, write,
        # len), so they are typed as such.
        in_flight: deque[tuple[Future[None], bytes]] = deque()
        try:
            for offset in range(0, len(view), batch):
                buffer, views = self._ring.take()
                task = pool.submit(seal, view[offset : offset + batch], views, self._next_index)
                in_flight.append((task, cast(bytes, buffer)))
                self._next_index += self._batch_chunks
                if len(in_flight) >= 2 * self._threads:
                    yield _done(in_flight.popleft())
            while in_flight:
                yield _done(in_flight.popleft())
        finally:
            # Abandoned midway: no task may still read the caller's buffer once we return.
            for future, _ in in_flight:
                future.cancel()
            wait([future for future, _ in in_flight])

    def _seal_full(self, src: memoryview) -> bytes:
        count = len(src) // CHUNK_SIZE
        if count < self._batch_chunks:  # a small piece: a copy of it is cheap
            self._cipher.seal_full_chunks(src, self._out_views, self._next_index)
            self._next_index += count
            return bytes(memoryview(self._out)[: count * CHUNK_CIPHERTEXT_SIZE])
        buffer, views = self._ring.take()
        self._cipher.seal_full_chunks(src, views, self._next_index)
        self._next_index += count
        return cast(bytes, buffer)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        return b"".join(self.iter_update(data))

    def finalize(self) -> bytes:
        """Encrypt the final (short, possibly empty) chunk and close the encryptor."""
        self._check_open()
        self._finished = True
        out = memoryview(self._out)
        size = self._cipher.seal_final_chunk(
            memoryview(self._tail)[: self._tail_length], out, self._next_index
        )
        self._tail[: self._tail_length] = bytes(self._tail_length)
        final = bytes(out[:size])
        if self._preamble is not None:
            final = self._preamble + final
            self._preamble = None
        return final


class ChunkedDecryptor:
    """Push-style c2sp decryptor that releases only authenticated plaintext.

    The commitment is checked as soon as the 56-byte preamble has arrived, before any chunk.
    A full 16400-byte chunk is decrypted and released as soon as it is complete; the final
    chunk is known only at finalize().  A stream cut after full chunks therefore releases
    those chunks and then fails.  Once a check has failed, every later call fails too.
    """

    def __init__(
        self,
        key: bytes,
        context: bytes = b"",
        *,
        aead: ChunkedAead = AEAD_AES_256_GCM,
        batch_chunks: int = BATCH_CHUNKS,
        expected_prefix: bytes = b"",
    ) -> None:
        check_key_size(key, aead)
        self._key = bytes(key)
        self._context = bytes(context)
        self._aead = aead
        self._head = bytearray()
        self._head_size = len(expected_prefix) + PREAMBLE_SIZE
        self._expected_prefix = bytes(expected_prefix)
        self._cipher: _ChunkCipher | None = None
        self._next_index = 0
        self._pending = bytearray(CHUNK_CIPHERTEXT_SIZE)
        self._pending_length = 0
        self._batch_chunks = max(1, batch_chunks)
        self._out = bytearray(self._batch_chunks * CHUNK_SIZE)
        self._out_views = chunk_views(self._out, CHUNK_SIZE)
        self._failed = False
        self._finished = False

    def _fail(self) -> DecryptionError:
        self._failed = True
        self._key = b""
        self._cipher = None
        return DecryptionError()

    def _check_usable(self) -> None:
        if self._failed:
            raise DecryptionError()
        if self._finished:
            raise RuntimeError("this decryptor is finalized")

    def _open_head(self) -> None:
        head = bytes(self._head)
        prefix_size = len(self._expected_prefix)
        salt = head[prefix_size : prefix_size + SALT_SIZE]
        keys = derive_keys(self._key, salt, self._context, self._aead)
        self._key = b""
        # Both comparisons always run, so timing does not say which one failed.
        prefix_ok = hmac.compare_digest(head[:prefix_size], self._expected_prefix)
        commitment_ok = hmac.compare_digest(head[prefix_size + SALT_SIZE :], keys.commitment)
        if not (prefix_ok and commitment_ok):
            raise self._fail()
        self._cipher = _ChunkCipher(keys)

    def iter_update(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        """Decrypt what data completes, yielding authenticated plaintext blocks."""
        self._check_usable()
        with memoryview(data) as whole:
            view = whole.cast("B") if whole.format != "B" or whole.ndim != 1 else whole
            if self._cipher is None:
                take = min(self._head_size - len(self._head), len(view))
                self._head += view[:take]
                view = view[take:]
                if len(self._head) < self._head_size:
                    return
                self._open_head()
            if self._pending_length:
                take = min(CHUNK_CIPHERTEXT_SIZE - self._pending_length, len(view))
                end = self._pending_length + take
                self._pending[self._pending_length : end] = view[:take]
                self._pending_length = end
                view = view[take:]
                if end < CHUNK_CIPHERTEXT_SIZE:
                    return
                self._pending_length = 0
                yield from self._open_full(memoryview(self._pending))
            batch = self._batch_chunks * CHUNK_CIPHERTEXT_SIZE
            while len(view) >= CHUNK_CIPHERTEXT_SIZE:
                take = min(len(view) - len(view) % CHUNK_CIPHERTEXT_SIZE, batch)
                yield from self._open_full(view[:take])
                view = view[take:]
            self._pending[: len(view)] = view
            self._pending_length = len(view)

    def _open_full(self, src: memoryview) -> Iterator[bytes]:
        assert self._cipher is not None
        out = memoryview(self._out)
        try:
            size = self._cipher.open_chunks(src, out, self._out_views, self._next_index)
        except _ChunkAuthFailure as failure:
            error = self._fail()
            if failure.authenticated:
                yield bytes(out[: failure.authenticated])
            raise error from None
        self._next_index += len(src) // CHUNK_CIPHERTEXT_SIZE
        yield bytes(out[:size])

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        return b"".join(self.iter_update(data))

    def finalize(self) -> bytes:
        """Decrypt the final chunk; fails if the stream ended anywhere but after one."""
        self._check_usable()
        if self._cipher is None or self._pending_length < TAG_SIZE:
            raise self._fail()
        out = memoryview(self._out)
        try:
            size = self._cipher.open_chunks(
                memoryview(self._pending)[: self._pending_length],
                out,
                self._out_views,
                self._next_index,
                final_size=self._pending_length,
            )
        except _ChunkAuthFailure:
            raise self._fail() from None
        self._finished = True
        return bytes(out[:size])


class RangeSource(Protocol):
    """Where a stored object can be read at any offset: a local file, or an S3 object fetched
    with ranged GETs.  ``size`` is the whole stored object's size, header included."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes at ``offset`` (fewer only past the end)."""
        ...


class ChunkedRandomAccess:
    """Decrypts byte ranges of a c2sp ciphertext held by a range source.

    The ciphertext may be preceded by a fixed prefix (the object header) that must match
    expected_prefix exactly.  Construction reads prefix, salt and commitment with one read and
    checks them; nothing else is trusted until a chunk is decrypted at its own index.
    """

    def __init__(
        self,
        key: bytes,
        source: RangeSource,
        *,
        context: bytes = b"",
        aead: ChunkedAead = AEAD_AES_256_GCM,
        expected_prefix: bytes = b"",
    ) -> None:
        check_key_size(key, aead)
        self._source = source
        self._offset = len(expected_prefix) + PREAMBLE_SIZE
        source_size = source.size
        self.size = message_size(source_size - len(expected_prefix))
        head = _read_exact(source, 0, self._offset)
        prefix_size = len(expected_prefix)
        keys = derive_keys(key, head[prefix_size : prefix_size + SALT_SIZE], context, aead)
        prefix_ok = hmac.compare_digest(head[:prefix_size], expected_prefix)
        commitment_ok = hmac.compare_digest(head[prefix_size + SALT_SIZE :], keys.commitment)
        if not (prefix_ok and commitment_ok):
            raise DecryptionError()
        self._cipher = _ChunkCipher(keys)
        body = source_size - self._offset
        self._full_chunks, self._final_piece = divmod(body, CHUNK_CIPHERTEXT_SIZE)
        self._chunk_count = self._full_chunks + 1
        self._length_verified = False

    def verify_length(self) -> int:
        """Authenticate the size by decrypting the final chunk; returns the size."""
        if not self._length_verified:
            for _ in self._iter_chunks(self._chunk_count - 1, self._chunk_count, 1):
                pass
            self._length_verified = True
        return self.size

    def _iter_chunks(self, first: int, stop: int, batch_chunks: int) -> Iterator[memoryview]:
        """Decrypt chunks [first, stop) with one source read per batch; yields plaintext views.

        Each yielded view is valid only until the next iteration.
        """
        batch_chunks = max(1, batch_chunks)
        out_buffer = bytearray(min(batch_chunks, stop - first) * CHUNK_SIZE)
        out = memoryview(out_buffer)
        out_views = chunk_views(out_buffer, CHUNK_SIZE)
        index = first
        while index < stop:
            end = min(index + batch_chunks, stop)
            offset = self._offset + index * CHUNK_CIPHERTEXT_SIZE
            final_size = self._final_piece if end == self._chunk_count else 0
            length = (end - index - (1 if final_size else 0)) * CHUNK_CIPHERTEXT_SIZE + final_size
            data = memoryview(_read_exact(self._source, offset, length))
            try:
                size = self._cipher.open_chunks(data, out, out_views, index, final_size)
            except _ChunkAuthFailure:
                raise DecryptionError() from None
            if final_size:
                self._length_verified = True
            yield out[:size]
            index = end

    def iter_range(self, start: int, stop: int, batch_chunks: int = 64) -> Iterator[bytes]:
        """Yield plaintext [start, stop), decrypting only the chunks that cover it.

        A range that reaches the end of the message also decrypts the final chunk, so reading
        through to the end authenticates the length.  One source read per batch of chunks.
        """
        if not 0 <= start <= stop <= self.size:
            raise ValueError(f"range [{start}, {stop}) is outside the message (0..{self.size})")
        return self._iter_range(start, stop, batch_chunks)

    def iter_range_views(
        self, start: int, stop: int, batch_chunks: int = 64
    ) -> Iterator[memoryview]:
        """iter_range without its copy: each view of plaintext [start, stop) is into one
        buffer reused for every batch, valid only until the next one is asked for (a streaming
        response makes its one copy when it cuts the view into writes)."""
        if not 0 <= start <= stop <= self.size:
            raise ValueError(f"range [{start}, {stop}) is outside the message (0..{self.size})")
        return self._iter_range_views(start, stop, batch_chunks)

    def _iter_range(self, start: int, stop: int, batch_chunks: int) -> Iterator[bytes]:
        for view in self._iter_range_views(start, stop, batch_chunks):
            yield bytes(view)

    def _iter_range_views(self, start: int, stop: int, batch_chunks: int) -> Iterator[memoryview]:
        first = start // CHUNK_SIZE
        if stop == self.size:
            last = self._chunk_count
        elif start == stop:
            return
        else:
            last = (stop - 1) // CHUNK_SIZE + 1
        position = first * CHUNK_SIZE
        for plaintext in self._iter_chunks(first, last, batch_chunks):
            lo = max(start - position, 0)
            hi = min(stop - position, len(plaintext))
            position += len(plaintext)
            if hi > lo:
                yield plaintext[lo:hi]

    def read(self, start: int, length: int) -> bytes:
        if length < 0:
            raise ValueError("length cannot be negative")
        return b"".join(self.iter_range(start, min(start + length, self.size)))


def _read_exact(source: RangeSource, offset: int, length: int) -> bytes:
    data = source.read(offset, length)
    if len(data) != length:
        # The object is shorter than it said it was: treat it as truncated ciphertext.
        raise DecryptionError()
    return data


# --------------------------------------------------------------------------------------------
# Object header

HEADER_MAGIC = b"CRPL"
HEADER_VERSION = 1


@dataclass(frozen=True)
class ObjectHeader:
    version: int
    key_id: str
    object_id: str
    size: int  # bytes the header takes on the wire


def _encode_id(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"{what} must be 1 to 255 bytes of UTF-8")
    return bytes([len(raw)]) + raw


def encode_header(key_id: str, object_id: str) -> bytes:
    """The object header (and c2sp context) for this key id and object id."""
    return (
        HEADER_MAGIC
        + bytes([HEADER_VERSION])
        + _encode_id(key_id, "key_id")
        + _encode_id(object_id, "object_id")
    )


def parse_header(data: bytes) -> ObjectHeader:
    """Read the header at the start of data (for inspection and tooling).

    Decrypting never relies on this: readers compare against the header they expect.
    DecryptionError if data does not start with a well-formed header of a known version.
    """
    try:
        if data[:4] != HEADER_MAGIC or data[4] != HEADER_VERSION:
            raise DecryptionError()
        position = 5
        ids = []
        for _ in range(2):
            length = data[position]
            raw = bytes(data[position + 1 : position + 1 + length])
            if length == 0 or len(raw) != length:
                raise DecryptionError()
            ids.append(raw.decode("utf-8"))
            position += 1 + length
    except (IndexError, UnicodeDecodeError):
        raise DecryptionError() from None
    return ObjectHeader(HEADER_VERSION, ids[0], ids[1], position)


# --------------------------------------------------------------------------------------------
# Key wrapping


WRAP_DOMAIN = b"consent-replay/dek-wrap/v1"
KEK_SIZE = 32
WRAPPED_KEY_BLOB_SIZE = NONCE_SIZE + 32 + TAG_SIZE


def wrap_aad(key_id: str, owner_id: str, kek_version: int) -> bytes:
    fields = [WRAP_DOMAIN, key_id.encode("utf-8"), owner_id.encode("utf-8")]
    out = bytearray()
    for field in fields:
        if len(field) > 0xFFFF:
            raise ValueError("identifier too long")
        out += struct.pack(">H", len(field)) + field
    if not 0 <= kek_version <= 0xFFFFFFFF:
        raise ValueError("KEK version out of range")
    out += struct.pack(">I", kek_version)
    return bytes(out)


def new_kek() -> bytes:
    return random_bytes(KEK_SIZE)


def aead_wrap(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a fresh random nonce; returns nonce || ciphertext || tag."""
    if len(kek) != KEK_SIZE:
        raise ValueError("a KEK must be 32 bytes")
    nonce = random_bytes(NONCE_SIZE)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, aad)


def aead_unwrap(kek: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(kek) != KEK_SIZE or len(blob) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError()
    try:
        return AESGCM(kek).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError() from None


# --------------------------------------------------------------------------------------------
# Ed25519 signing keys


class Ed25519Signer:
    """An Ed25519 private key.  Its repr never shows key material."""

    __slots__ = ("_private_key",)

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The raw 32-byte seed, for the keyring file only."""
        return self._private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_bytes(self) -> bytes:
        return self._private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    @property
    def jwt_key(self) -> Ed25519PrivateKey:
        """The key object PyJWT signs with."""
        return self._private_key

    def __repr__(self) -> str:
        return "<Ed25519Signer>"
