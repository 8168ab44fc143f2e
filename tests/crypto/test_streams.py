"""Files, pipes and the helper threads: read-ahead, write-behind, range sources."""

from __future__ import annotations

import array
import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import crypto

DEK = bytes(range(7, 39))
IDS = {"key_id": "key-s", "object_id": "obj-s"}
# Larger than one 4 MiB read-ahead block, not a multiple of anything.
BIG = 9 * 1024 * 1024 + 12345


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("crypto-")]


@pytest.fixture(scope="module")
def big_plaintext() -> bytes:
    return random.Random(5).randbytes(BIG)


def test_file_to_file_with_read_ahead_and_write_behind(
    tmp_path: Path, big_plaintext: bytes
) -> None:
    plain, sealed, opened = tmp_path / "plain", tmp_path / "sealed", tmp_path / "opened"
    plain.write_bytes(big_plaintext)
    with plain.open("rb") as src, sealed.open("wb") as dst:
        written = crypto.seal_to(DEK, src, dst, **IDS)
    assert written == sealed.stat().st_size == crypto.sealed_size(BIG, **IDS)
    with sealed.open("rb") as src:
        assert b"".join(crypto.unseal(DEK, src, **IDS)) == big_plaintext
    with sealed.open("rb") as src, opened.open("wb") as dst:
        assert crypto.open_to(DEK, src, dst, **IDS) == BIG
    assert opened.read_bytes() == big_plaintext
    with plain.open("rb") as src:
        assert b"".join(crypto.seal(DEK, src, **IDS, salt=bytes(24))) == b"".join(
            crypto.seal(DEK, big_plaintext, **IDS, salt=bytes(24))
        )
    assert helper_threads() == []


def test_generator_blocks_stay_small(tmp_path: Path, big_plaintext: bytes) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(big_plaintext)
    with plain.open("rb") as src:
        sizes = [len(block) for block in crypto.seal(DEK, src, **IDS)]
    assert max(sizes) <= 2 * 1024 * 1024
    assert sum(sizes) == crypto.sealed_size(BIG, **IDS)


def test_open_to_leaves_only_authenticated_plaintext(tmp_path: Path, big_plaintext: bytes) -> None:
    sealed = bytearray(b"".join(crypto.seal(DEK, big_plaintext, **IDS)))
    sealed[len(sealed) // 2] ^= 1
    path = tmp_path / "sealed"
    path.write_bytes(sealed)
    out = io.BytesIO()
    with path.open("rb") as src, pytest.raises(crypto.DecryptionError):
        crypto.open_to(DEK, src, out, **IDS)
    assert 0 < len(out.getvalue()) < BIG // 2
    assert big_plaintext.startswith(out.getvalue())
    assert helper_threads() == []


class FailingFile(io.FileIO):
    """A regular file whose reads start failing, as a disk might."""

    def __init__(self, path: Path, good_reads: int) -> None:
        super().__init__(path, "r")
        self.good_reads = good_reads

    def readinto(self, buffer: bytearray) -> int | None:  # type: ignore[override]
        if self.good_reads == 0:
            raise OSError(5, "Input/output error")
        self.good_reads -= 1
        return super().readinto(buffer)


def test_read_errors_reach_the_caller(tmp_path: Path, big_plaintext: bytes) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(big_plaintext)
    with FailingFile(plain, good_reads=1) as src, pytest.raises(OSError, match="Input/output"):
        for _ in crypto.seal(DEK, src, **IDS):
            pass
    assert helper_threads() == []


def test_write_errors_reach_the_caller(big_plaintext: bytes) -> None:
    class FullDisk(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        crypto.seal_to(DEK, big_plaintext, FullDisk(), **IDS)
    assert helper_threads() == []


def test_abandoning_a_stream_stops_its_helper(tmp_path: Path, big_plaintext: bytes) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(big_plaintext)
    with plain.open("rb") as src:
        blocks = crypto.seal(DEK, src, **IDS)
        next(blocks)
        next(blocks)
        assert helper_threads() == ["crypto-read-ahead"]
        blocks.close()
    assert helper_threads() == []


def test_pipe_input(big_plaintext: bytes) -> None:
    data = big_plaintext[: 3 * 1024 * 1024 + 7]
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            for i in range(0, len(data), 10_000):
                pipe.write(data[i : i + 10_000])

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb") as pipe:
        sealed = b"".join(crypto.seal(DEK, pipe, **IDS))
    feeder.join()
    assert b"".join(crypto.unseal(DEK, sealed, **IDS)) == data


def test_blocks_of_any_buffer_type() -> None:
    words = array.array("I", range(10_000))
    blocks = [words, bytearray(b"x" * 5000), memoryview(b"y" * 20_000), b""]
    expected = b"".join(bytes(memoryview(b).cast("B")) for b in blocks)
    sealed = b"".join(crypto.seal(DEK, blocks, **IDS))
    assert b"".join(crypto.unseal(DEK, sealed, **IDS)) == expected


def test_one_huge_update_equals_streaming(big_plaintext: bytes) -> None:
    salt = bytes(range(24))
    sealer = crypto.Sealer(DEK, **IDS, salt=salt)
    whole = sealer.update(big_plaintext) + sealer.finalize()
    assert whole == b"".join(crypto.seal(DEK, io.BytesIO(big_plaintext), **IDS, salt=salt))


def test_file_range_sources(tmp_path: Path, big_plaintext: bytes) -> None:
    path = tmp_path / "sealed"
    path.write_bytes(b"".join(crypto.seal(DEK, big_plaintext, **IDS)))
    start, stop = 5_000_000, 5_100_000
    with crypto.FileRangeSource(path) as by_path:
        assert by_path.size == path.stat().st_size
        assert (
            b"".join(crypto.open_range(DEK, by_path, start, stop, **IDS))
            == big_plaintext[start:stop]
        )
    with path.open("rb") as file:
        by_file = crypto.FileRangeSource(file)
        reader = crypto.RandomAccessReader(DEK, by_file, **IDS)
        assert reader.verify_length() == BIG
        assert reader.read(BIG - 10, 100) == big_plaintext[-10:]
        by_file.close()  # does not close a file it was given
        assert not file.closed
    in_memory = crypto.FileRangeSource(io.BytesIO(path.read_bytes()))
    assert crypto.RandomAccessReader(DEK, in_memory, **IDS).read(0, 10) == big_plaintext[:10]


def test_a_source_shorter_than_it_claims_is_truncated_ciphertext(big_plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, big_plaintext[:50_000], **IDS))

    class ShrinkingSource:
        size = len(sealed)

        def read(self, offset: int, length: int) -> bytes:
            return sealed[offset : offset + length][: max(0, length - 1) if offset else length]

    reader = crypto.RandomAccessReader(DEK, ShrinkingSource(), **IDS)
    with pytest.raises(crypto.DecryptionError):
        reader.read(0, 10)


def test_ranges_outside_the_message_are_refused() -> None:
    sealed = b"".join(crypto.seal(DEK, b"abc", **IDS))
    reader = crypto.RandomAccessReader(DEK, crypto.BytesRangeSource(sealed), **IDS)
    for start, stop in ((-1, 2), (2, 1), (0, 4)):
        with pytest.raises(ValueError, match="outside"):
            reader.iter_range(start, stop)
    assert reader.read(1, 100) == b"bc"
    assert reader.read(3, 5) == b""
    assert list(reader.iter_range(1, 1)) == []


def test_a_stream_that_failed_on_io_keeps_failing(big_plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, big_plaintext[:200_000], **IDS))

    class FlakySource:
        size = len(sealed)
        reads = 0

        def read(self, offset: int, length: int) -> bytes:
            self.reads += 1
            if self.reads > 2:
                raise ConnectionError("storage went away")
            return sealed[offset : offset + length]

    reader = crypto.RandomAccessReader(DEK, FlakySource(), **IDS)
    blocks = reader.iter_range(0, reader.size, batch_chunks=2)
    assert next(blocks) == big_plaintext[: 2 * 16384]
    with pytest.raises(ConnectionError):
        next(blocks)
    for _ in range(2):
        with pytest.raises(crypto.DecryptionError):
            next(blocks)

    def feed() -> Iterator[bytes]:
        yield sealed[:50_000]
        raise ConnectionError("upload cut")

    stream = crypto.unseal(DEK, feed(), **IDS)
    assert big_plaintext.startswith(next(stream))
    with pytest.raises(ConnectionError):
        next(stream)
    with pytest.raises(crypto.DecryptionError):
        next(stream)


def test_range_views_are_the_range_without_a_copy(big_plaintext: bytes) -> None:
    sealed = b"".join(crypto.seal(DEK, big_plaintext, **IDS))

    class Source:
        size = len(sealed)

        def read(self, offset: int, length: int) -> bytes:
            return sealed[offset : offset + length]

    reader = crypto.RandomAccessReader(DEK, Source(), **IDS)
    start, stop = 12345, BIG - 777
    views = reader.iter_range_views(start, stop, batch_chunks=64)
    got, buffers = bytearray(), set()
    for view in views:
        assert isinstance(view, memoryview)
        buffers.add(id(view.obj))
        got += view
    assert bytes(got) == big_plaintext[start:stop] == b"".join(reader.iter_range(start, stop))
    assert len(buffers) == 1  # one plaintext buffer, reused batch after batch
