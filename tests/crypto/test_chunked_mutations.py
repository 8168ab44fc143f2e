"""Tampering with sealed objects, after Tink's streaming-AEAD tests.

Every mutation must make both the streaming reader and a whole read through the random-access
reader raise DecryptionError, and the streaming reader must never release a byte that is not
part of the original plaintext's authenticated prefix.
"""

from __future__ import annotations

import io
import random

import pytest

import crypto

CHUNK = 16384
CT_CHUNK = CHUNK + 16
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 100]
KEY_ID = "key-7f3a"
OBJECT_ID = "obj-0001"
DEK = bytes(range(32))


def make_plaintext(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def seal(plaintext: bytes, *, object_id: str = OBJECT_ID, dek: bytes = DEK) -> bytes:
    return b"".join(crypto.seal(dek, plaintext, key_id=KEY_ID, object_id=object_id))


HEADER_SIZE = len(crypto.encode_header(KEY_ID, OBJECT_ID))
BODY = HEADER_SIZE + 56  # where chunk 0 starts


def chunk_bounds(sealed: bytes, index: int) -> tuple[int, int]:
    start = BODY + index * CT_CHUNK
    return start, min(start + CT_CHUNK, len(sealed))


def chunks_of(sealed: bytes) -> list[bytes]:
    return [sealed[i : i + CT_CHUNK] for i in range(BODY, len(sealed), CT_CHUNK)]


def assemble(sealed: bytes, chunks: list[bytes]) -> bytes:
    return sealed[:BODY] + b"".join(chunks)


def assert_rejected(
    mutated: bytes,
    plaintext: bytes,
    *,
    key_id: str = KEY_ID,
    object_id: str = OBJECT_ID,
    dek: bytes = DEK,
) -> None:
    """Both readers refuse; streaming released nothing but a genuine prefix."""
    for feed in (
        mutated,
        io.BytesIO(mutated),
        [mutated[i : i + 5000] for i in range(0, len(mutated), 5000)],
    ):
        released = bytearray()
        stream = crypto.unseal(dek, feed, key_id=key_id, object_id=object_id)
        with pytest.raises(crypto.DecryptionError):
            for block in stream:
                released += block
        assert plaintext.startswith(released)
        with pytest.raises(crypto.DecryptionError):
            next(stream)

    source = crypto.BytesRangeSource(mutated)
    with pytest.raises(crypto.DecryptionError):
        reader = crypto.RandomAccessReader(dek, source, key_id=key_id, object_id=object_id)
        reader.read(0, reader.size)


@pytest.fixture(scope="module", params=SIZES, ids=[f"size{s}" for s in SIZES])
def sealed_object(request: pytest.FixtureRequest) -> tuple[bytes, bytes]:
    plaintext = make_plaintext(request.param)
    return plaintext, seal(plaintext)


def test_unmutated_objects_open(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    assert b"".join(crypto.unseal(DEK, sealed, key_id=KEY_ID, object_id=OBJECT_ID)) == plaintext
    reader = crypto.RandomAccessReader(
        DEK, crypto.BytesRangeSource(sealed), key_id=KEY_ID, object_id=OBJECT_ID
    )
    assert reader.read(0, reader.size) == plaintext


def test_truncation_at_every_8_bytes(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    for length in range(0, len(sealed), 8):
        assert_truncated_rejected(sealed[:length], plaintext)
    assert_truncated_rejected(sealed[:-1], plaintext)


def assert_truncated_rejected(truncated: bytes, plaintext: bytes) -> None:
    # Leaner than assert_rejected (thousands of cases): one streaming feed, one whole read.
    released = bytearray()
    stream = crypto.unseal(DEK, truncated, key_id=KEY_ID, object_id=OBJECT_ID)
    with pytest.raises(crypto.DecryptionError):
        for block in stream:
            released += block
    assert plaintext.startswith(released)
    with pytest.raises(crypto.DecryptionError):
        reader = crypto.RandomAccessReader(
            DEK, crypto.BytesRangeSource(truncated), key_id=KEY_ID, object_id=OBJECT_ID
        )
        reader.read(0, reader.size)


def test_appended_data(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    first_chunk = chunks_of(sealed)[0]
    assert_rejected(sealed + b"\x00", plaintext)
    assert_rejected(sealed + b"\x5a" * 100, plaintext)
    assert_rejected(sealed + first_chunk, plaintext)
    assert_rejected(sealed + sealed[BODY:], plaintext)


def test_every_byte_flipped_in_small_objects() -> None:
    for size in (0, 1, 40):
        plaintext = make_plaintext(size)
        sealed = seal(plaintext)
        for position in range(len(sealed)):
            for mask in (0x01, 0x80, 0xFF):
                mutated = bytearray(sealed)
                mutated[position] ^= mask
                assert_truncated_rejected(bytes(mutated), plaintext)


def test_flipped_bytes_across_chunks(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    positions = set(range(0, len(sealed), 997))
    for index in range(len(chunks_of(sealed))):
        start, end = chunk_bounds(sealed, index)
        positions |= {start, end - 17, end - 16, end - 1}  # first byte, last body byte, tag
    for position in sorted(positions):
        mutated = bytearray(sealed)
        mutated[position] ^= 0x01
        assert_rejected(bytes(mutated), plaintext)


def test_tampered_chunk_fails_only_the_ranges_that_cover_it() -> None:
    plaintext = make_plaintext(3 * CHUNK + 100)
    mutated = bytearray(seal(plaintext))
    start, _ = chunk_bounds(mutated, 1)
    mutated[start + 5] ^= 0x01
    reader = crypto.RandomAccessReader(
        DEK, crypto.BytesRangeSource(bytes(mutated)), key_id=KEY_ID, object_id=OBJECT_ID
    )
    assert reader.read(0, CHUNK) == plaintext[:CHUNK]
    assert reader.read(2 * CHUNK, CHUNK) == plaintext[2 * CHUNK : 3 * CHUNK]
    assert reader.verify_length() == len(plaintext)
    for start, stop in ((CHUNK, CHUNK + 1), (CHUNK - 1, CHUNK + 1), (0, len(plaintext))):
        blocks = reader.iter_range(start, stop, batch_chunks=1)
        with pytest.raises(crypto.DecryptionError):
            list(blocks)
        with pytest.raises(crypto.DecryptionError):
            next(blocks)


def test_reordered_duplicated_and_dropped_chunks() -> None:
    plaintext = make_plaintext(3 * CHUNK + 100)
    sealed = seal(plaintext)
    chunks = chunks_of(sealed)
    assert len(chunks) == 4
    c0, c1, c2, c3 = chunks
    for arrangement in (
        [c1, c0, c2, c3],  # swapped
        [c0, c2, c1, c3],
        [c0, c1, c3, c2],  # final chunk moved
        [c0, c0, c2, c3],  # duplicated
        [c0, c1, c1, c3],
        [c0, c2, c3],  # dropped
        [c0, c1, c2],  # final chunk dropped: truncation at a chunk boundary
        [c1, c2, c3],
        [c0, c1, c2, c2, c3],  # inserted
    ):
        assert_rejected(assemble(sealed, arrangement), plaintext)


def test_chunk_spliced_from_another_object_under_the_same_key() -> None:
    plaintext = make_plaintext(3 * CHUNK + 100)
    sealed = seal(plaintext)
    # Same key, same key id: another object, and the same object sealed again (new salt).
    others = [seal(plaintext, object_id="obj-0002"), seal(plaintext)]
    for other in others:
        assert other[BODY:] != sealed[BODY:]
        for index in range(4):
            chunks = chunks_of(sealed)
            chunks[index] = chunks_of(other)[index]
            assert_rejected(assemble(sealed, chunks), plaintext)
        # Another object's salt and commitment in front of our chunks, and vice versa.
        assert_rejected(sealed[:HEADER_SIZE] + other[HEADER_SIZE:BODY] + sealed[BODY:], plaintext)


def test_wrong_context(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    assert_rejected(sealed, plaintext, key_id="key-other")
    assert_rejected(sealed, plaintext, object_id="obj-0002")
    assert_rejected(sealed, plaintext, key_id=OBJECT_ID, object_id=KEY_ID)
    # The object renamed: header rewritten to the new id, commitment no longer matches.
    renamed = crypto.encode_header(KEY_ID, "obj-0002") + sealed[HEADER_SIZE:]
    assert_rejected(renamed, plaintext, object_id="obj-0002")


def test_wrong_key(sealed_object: tuple[bytes, bytes]) -> None:
    plaintext, sealed = sealed_object
    assert_rejected(sealed, plaintext, dek=bytes(32))
    assert_rejected(sealed, plaintext, dek=DEK[:-1] + bytes([DEK[-1] ^ 1]))
