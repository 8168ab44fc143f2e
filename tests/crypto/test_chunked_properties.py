"""Property tests: round trips, ranges and arbitrary write splits agree with the plaintext."""

from __future__ import annotations

import io
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

import crypto
from crypto import chunked

CHUNK = 16384
EDGES = [0, 1, 15, 16, 17, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, 6 * CHUNK]
DEK = bytes(range(100, 132))
KEY_ID = "key-prop"
OBJECT_ID = "obj-prop"

sizes = st.one_of(st.sampled_from(EDGES), st.integers(0, 100 * 1024))
PROPERTY = settings(max_examples=60, deadline=None)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@st.composite
def plaintexts(draw: st.DrawFn) -> bytes:
    return random_bytes(draw(sizes), draw(st.integers(0, 2**32)))


@st.composite
def splits(draw: st.DrawFn, total: int) -> list[int]:
    """Cut points, biased to chunk-sized pieces and tiny ones."""
    cuts = draw(
        st.lists(
            st.one_of(st.integers(0, total), st.sampled_from([CHUNK * k for k in range(1, 7)])),
            max_size=12,
        )
    )
    return sorted({c for c in cuts if 0 < c < total})


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(plaintext=plaintexts())
def test_seal_open_round_trip(plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, io.BytesIO(plaintext), key_id=KEY_ID, object_id=OBJECT_ID))
    assert len(sealed) == crypto.sealed_size(len(plaintext), KEY_ID, OBJECT_ID)
    assert crypto.plaintext_size(len(sealed), KEY_ID, OBJECT_ID) == len(plaintext)
    opened = crypto.unseal(DEK, io.BytesIO(sealed), key_id=KEY_ID, object_id=OBJECT_ID)
    assert b"".join(opened) == plaintext


@PROPERTY
@given(data=st.data(), plaintext=plaintexts())
def test_random_access_range_equals_slice(data: st.DataObject, plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, plaintext, key_id=KEY_ID, object_id=OBJECT_ID))
    reader = crypto.RandomAccessReader(
        DEK, crypto.BytesRangeSource(sealed), key_id=KEY_ID, object_id=OBJECT_ID
    )
    assert reader.size == len(plaintext)
    for _ in range(3):
        start = data.draw(st.integers(0, len(plaintext)), label="start")
        stop = data.draw(st.integers(start, len(plaintext)), label="stop")
        batch = data.draw(st.integers(1, 5), label="batch_chunks")
        blocks = list(reader.iter_range(start, stop, batch_chunks=batch))
        assert b"".join(blocks) == plaintext[start:stop]
        assert all(blocks)
        assert reader.read(start, stop - start) == plaintext[start:stop]
        ranged = crypto.open_range(
            DEK, crypto.BytesRangeSource(sealed), start, stop, key_id=KEY_ID, object_id=OBJECT_ID
        )
        assert b"".join(ranged) == plaintext[start:stop]


@PROPERTY
@given(data=st.data(), plaintext=plaintexts())
def test_sealer_with_arbitrary_write_splits(data: st.DataObject, plaintext: bytes) -> None:
    salt = random_bytes(24, len(plaintext))
    expected = b"".join(crypto.seal(DEK, plaintext, key_id=KEY_ID, object_id=OBJECT_ID, salt=salt))
    sealer = crypto.Sealer(DEK, key_id=KEY_ID, object_id=OBJECT_ID, salt=salt)
    output = bytearray()
    for piece in pieces(plaintext, data.draw(splits(len(plaintext)), label="cuts")):
        output += sealer.update(piece)
    output += sealer.finalize()
    assert output == expected
    assert (
        b"".join(crypto.unseal(DEK, bytes(output), key_id=KEY_ID, object_id=OBJECT_ID)) == plaintext
    )


@PROPERTY
@given(data=st.data(), plaintext=plaintexts())
def test_decryption_with_arbitrary_read_splits(data: st.DataObject, plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, plaintext, key_id=KEY_ID, object_id=OBJECT_ID))
    feed = pieces(sealed, data.draw(splits(len(sealed)), label="cuts"))
    assert b"".join(crypto.unseal(DEK, feed, key_id=KEY_ID, object_id=OBJECT_ID)) == plaintext


@PROPERTY
@given(plaintext=plaintexts(), context=st.binary(max_size=64))
def test_raw_chunked_round_trip(plaintext: bytes, context: bytes) -> None:
    key = random_bytes(32, len(plaintext) + 7)
    ciphertext = b"".join(chunked.encrypt(key, [plaintext], context=context))
    assert len(ciphertext) == chunked.ciphertext_size(len(plaintext))
    assert b"".join(chunked.decrypt(key, ciphertext, context=context)) == plaintext
