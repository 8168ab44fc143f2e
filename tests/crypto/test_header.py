"""The object header: layout, validation, binding to the expected ids, and size arithmetic."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from crypto_testlib import RecordingSource

import crypto

DEK = bytes(range(32))
GENERIC = "ciphertext is invalid or the key is wrong"


def seal(plaintext: bytes, key_id: str = "k1", object_id: str = "o1") -> bytes:
    return b"".join(crypto.seal(DEK, plaintext, key_id=key_id, object_id=object_id))


def test_header_layout_byte_by_byte() -> None:
    header = crypto.encode_header("key-42", "obj-é")
    assert header == (
        b"CRPL"
        + b"\x01"
        + bytes([6])
        + b"key-42"
        + bytes([len("obj-é".encode())])
        + "obj-é".encode()
    )
    parsed = crypto.parse_header(header + b"trailing")
    assert (parsed.version, parsed.key_id, parsed.object_id, parsed.size) == (
        1,
        "key-42",
        "obj-é",
        len(header),
    )


def test_sealed_object_starts_with_its_header() -> None:
    sealed = seal(b"hello", key_id="key-a", object_id="obj-b")
    header = crypto.encode_header("key-a", "obj-b")
    assert sealed.startswith(header)
    parsed = crypto.parse_header(sealed)
    assert (parsed.key_id, parsed.object_id) == ("key-a", "obj-b")
    assert len(sealed) == len(header) + 24 + 32 + 5 + 16


@pytest.mark.parametrize(
    ("key_id", "object_id"),
    [("", "o"), ("k", ""), ("k" * 256, "o"), ("k", "é" * 128), ("k", "\ud800")],
)
def test_ids_must_be_1_to_255_bytes_of_utf8(key_id: str, object_id: str) -> None:
    with pytest.raises(ValueError):
        crypto.encode_header(key_id, object_id)
    with pytest.raises(ValueError):
        crypto.Sealer(DEK, key_id=key_id, object_id=object_id)


def test_ids_must_be_str() -> None:
    with pytest.raises(TypeError):
        crypto.encode_header(b"k", "o")  # type: ignore[arg-type]
    assert len(crypto.encode_header("k" * 255, "é" * 127)) == 4 + 1 + 1 + 255 + 1 + 254


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: b"CRPX" + h[4:],  # magic
        lambda h: h[:4] + b"\x02" + h[5:],  # unknown version
        lambda h: h[:4] + b"\x00" + h[5:],
        lambda h: h[:5] + bytes([h[5] + 1]) + h[6:],  # key_id length
        lambda h: h[:6] + b"K" + h[7:],  # key_id content
        lambda h: h[:-1] + b"X",  # object_id content
    ],
)
def test_any_header_change_is_refused(mutate: Callable[[bytes], bytes]) -> None:
    plaintext = b"x" * 20000
    sealed = seal(plaintext)
    header = crypto.encode_header("k1", "o1")
    mutated = mutate(header) + sealed[len(header) :]
    with pytest.raises(crypto.DecryptionError, match=GENERIC):
        b"".join(crypto.unseal(DEK, mutated, key_id="k1", object_id="o1"))
    with pytest.raises(crypto.DecryptionError, match=GENERIC):
        crypto.RandomAccessReader(
            DEK, crypto.BytesRangeSource(mutated), key_id="k1", object_id="o1"
        ).read(0, 1)


def test_parse_header_rejects_malformed_input() -> None:
    for bad in (
        b"",
        b"CRPL",
        b"CRPL\x01",
        b"CRPL\x01\x00\x01o",
        b"CRPL\x01\x05kk",
        b"CRPL\x02\x01k\x01o",
    ):
        with pytest.raises(crypto.DecryptionError):
            crypto.parse_header(bad)
    with pytest.raises(crypto.DecryptionError):
        crypto.parse_header(b"CRPL\x01\x01\xff\x01o")  # not UTF-8


def test_expected_ids_are_what_binds_the_object() -> None:
    plaintext = b"consent" * 5000
    sealed = seal(plaintext, key_id="k1", object_id="o1")
    for key_id, object_id in (("k2", "o1"), ("k1", "o2"), ("o1", "k1")):
        stream = crypto.unseal(DEK, sealed, key_id=key_id, object_id=object_id)
        with pytest.raises(crypto.DecryptionError):
            next(stream)
        with pytest.raises(crypto.DecryptionError):
            next(stream)
        with pytest.raises(crypto.DecryptionError):
            crypto.RandomAccessReader(
                DEK, crypto.BytesRangeSource(sealed), key_id=key_id, object_id=object_id
            )


def test_random_access_checks_everything_with_one_small_read() -> None:
    sealed = seal(b"a" * 100_000)
    source = RecordingSource(sealed)
    reader = crypto.RandomAccessReader(DEK, source, key_id="k1", object_id="o1")
    header_size = len(crypto.encode_header("k1", "o1"))
    assert source.reads == [(0, header_size + 56)]
    assert reader.size == 100_000

    source.reads.clear()
    blocks = reader.iter_range(20_000, 90_000, batch_chunks=2)
    assert source.reads == []  # nothing fetched until asked
    first = next(blocks)
    assert len(source.reads) == 1
    offset, length = source.reads[0]
    assert offset == header_size + 56 + 1 * 16400 and length == 2 * 16400
    assert first == b"a" * (2 * 16384 - (20_000 - 16384))
    rest = b"".join(blocks)
    assert len(first) + len(rest) == 70_000
    # Chunks 1..5 cover [20000, 90000): three reads of at most two chunks each.
    assert len(source.reads) == 3


def test_size_arithmetic() -> None:
    key_id, object_id = "k1", "o1"
    header = len(crypto.encode_header(key_id, object_id))
    for size in (0, 1, 16383, 16384, 16385, 32768, 10**9):
        sealed_size = crypto.sealed_size(size, key_id, object_id)
        chunks = size // 16384 + 1
        assert sealed_size == header + 56 + size + 16 * chunks
        assert crypto.plaintext_size(sealed_size, key_id, object_id) == size
    impossible = [
        0,
        header,
        header + 55,
        header + 56,  # no final chunk at all
        header + 56 + 15,  # final chunk shorter than a tag
        header + 56 + 16400,  # ends after a full chunk: final chunk missing
        header + 56 + 2 * 16400 + 15,
    ]
    for sealed_size in impossible:
        with pytest.raises(crypto.DecryptionError):
            crypto.plaintext_size(sealed_size, key_id, object_id)
    with pytest.raises(crypto.DecryptionError):
        crypto.plaintext_size(header + 56 + (1 << 38) * 16400 + 16, key_id, object_id)
    with pytest.raises(ValueError, match="negative"):
        crypto.sealed_size(-1, key_id, object_id)


def test_one_opaque_error_for_every_failure() -> None:
    sealed = seal(b"z" * 40_000)
    failures = [
        sealed[:-1],  # truncated
        sealed + b"\x00",  # trailing data
        sealed[:30] + bytes([sealed[30] ^ 1]) + sealed[31:],  # commitment
        sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:],  # final tag
    ]
    messages = set()
    for bad in failures:
        with pytest.raises(crypto.DecryptionError) as caught:
            b"".join(crypto.unseal(DEK, io.BytesIO(bad), key_id="k1", object_id="o1"))
        messages.add(str(caught.value))
    with pytest.raises(crypto.DecryptionError) as caught:
        b"".join(crypto.unseal(bytes(32), sealed, key_id="k1", object_id="o1"))
    messages.add(str(caught.value))
    assert messages == {GENERIC}


def test_data_key_must_be_32_bytes() -> None:
    for bad in (b"", bytes(16), bytes(33)):
        with pytest.raises(ValueError, match="32 bytes"):
            crypto.Sealer(bad, key_id="k", object_id="o")
        with pytest.raises(ValueError, match="32 bytes"):
            crypto.unseal(bad, b"", key_id="k", object_id="o")
        with pytest.raises(ValueError, match="32 bytes"):
            crypto.RandomAccessReader(bad, crypto.BytesRangeSource(b""), key_id="k", object_id="o")
    assert len(crypto.new_data_key()) == 32
    assert crypto.new_data_key() != crypto.new_data_key()


def test_sealer_refuses_use_after_finalize() -> None:
    sealer = crypto.Sealer(DEK, key_id="k", object_id="o")
    out = sealer.update(b"abc") + sealer.finalize()
    assert b"".join(crypto.unseal(DEK, out, key_id="k", object_id="o")) == b"abc"
    with pytest.raises(RuntimeError):
        sealer.update(b"more")
    with pytest.raises(RuntimeError):
        sealer.finalize()


def test_sealer_returns_nothing_until_a_chunk_is_complete() -> None:
    sealer = crypto.Sealer(DEK, key_id="k", object_id="o")
    header = crypto.encode_header("k", "o")
    first = sealer.update(b"x" * 100)
    assert first == header + first[len(header) :] and len(first) == len(header) + 56
    assert sealer.update(b"x" * 16000) == b""
    assert len(sealer.update(b"x" * 300)) == 16400
    assert len(sealer.finalize()) == 16 + 16


def test_the_chunk_counter_is_bounded() -> None:
    from crypto import _core, chunked

    keys = chunked.derive_keys(DEK, bytes(24), b"", chunked.AEAD_AES_256_GCM)
    cipher = _core._ChunkCipher(keys)
    last = cipher.nonce(chunked.MAX_CHUNKS - 1)
    assert int.from_bytes(last, "big") == int.from_bytes(keys.base_nonce, "big") ^ (2**38 - 1)
    with pytest.raises(OverflowError):
        cipher.nonce(chunked.MAX_CHUNKS)
    with pytest.raises(ValueError, match="too long"):
        chunked.ciphertext_size(chunked.MAX_CHUNKS * 16384)
    assert chunked.ciphertext_size(chunked.MAX_CHUNKS * 16384 - 1) > 0
