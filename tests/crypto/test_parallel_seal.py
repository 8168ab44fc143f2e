"""Sealing on several threads (issue 19) gives byte for byte what one thread gives: chunks are
independent (each depends only on the derived keys and its index), batches are sealed side by
side into reused buffers and handed on in order. A buffer a consumer still holds is never
reused, and an abandoned seal leaves no thread touching the caller's memory."""

from __future__ import annotations

import io
import os

import pytest

import crypto
from crypto import _core

CHUNK = _core.CHUNK_SIZE
BATCH = _core.BATCH_CHUNKS * CHUNK
DEK = bytes(range(32))
SALT = bytes(range(100, 124))
IDS = {"key_id": "key-1", "object_id": "object-1"}
SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * BATCH,
    2 * BATCH + CHUNK,
    7 * BATCH + 5,
    (3 << 20) + 123,
]


def sealed(data: bytes, threads: int, piece: int | None = None) -> bytes:
    sealer = crypto.Sealer(DEK, salt=SALT, threads=threads, **IDS)
    pieces = [data] if piece is None else [data[i : i + piece] for i in range(0, len(data), piece)]
    out = [block for p in pieces for block in sealer.iter_update(p)]  # every block held
    return b"".join(out) + sealer.finalize()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_parallel_sealing_is_byte_identical_to_one_thread(size: int, threads: int) -> None:
    data = os.urandom(size)
    one = sealed(data, threads=1)
    assert sealed(data, threads=threads) == one
    # Fed in pieces that straddle chunks and batches, the same again.
    assert sealed(data, threads=threads, piece=3 * BATCH + 777) == one
    assert b"".join(crypto.unseal(DEK, one, **IDS)) == data


def test_seal_of_a_file_uses_the_threads_and_matches(tmp_path) -> None:
    data = os.urandom(9 << 20)  # more than one read-ahead block of 4 MiB
    path = tmp_path / "plain"
    path.write_bytes(data)
    one = sealed(data, threads=1)
    with path.open("rb") as handle:
        blocks = list(crypto.seal(DEK, handle, salt=SALT, **IDS))  # all held at once
    assert _core.SEAL_THREADS >= 1
    assert b"".join(blocks) == one
    assert b"".join(crypto.seal(DEK, io.BytesIO(data), salt=SALT, **IDS)) == one
    out = tmp_path / "sealed"
    with path.open("rb") as handle, out.open("wb") as sink:
        crypto.seal_to(DEK, handle, sink, **IDS)
    assert b"".join(crypto.unseal(DEK, out.read_bytes(), **IDS)) == data


def test_blocks_held_as_views_are_not_overwritten() -> None:
    """A consumer that keeps memoryviews of the yielded blocks (a writer's queue) while the
    seal goes on: no block it holds changes."""
    data = os.urandom(6 * BATCH * 4)
    sealer = crypto.Sealer(DEK, salt=SALT, threads=4, **IDS)
    held = []
    for block in sealer.iter_update(data):
        held.append((memoryview(block), bytes(block)))
    for view, copy in held:
        assert view.tobytes() == copy


def test_an_abandoned_parallel_seal_stops_cleanly() -> None:
    data = bytearray(os.urandom(40 * BATCH))
    sealer = crypto.Sealer(DEK, salt=SALT, threads=4, **IDS)
    blocks = sealer.iter_update(data)
    next(blocks)
    next(blocks)
    blocks.close()  # waits for the tasks already running: none reads `data` after this
    data[:] = bytes(len(data))
    fresh = os.urandom(5 * BATCH)
    assert sealed(fresh, threads=4) == sealed(fresh, threads=1)


def test_a_resumed_sealer_on_threads_continues_the_same_bytes() -> None:
    data = os.urandom(5 * BATCH + 999)
    whole = sealed(data, threads=1)
    first = crypto.Sealer(DEK, salt=SALT, threads=3, **IDS)
    head_and_part = first.update(data[: 2 * BATCH])
    offset = first.offset
    head = head_and_part[: crypto.sealed_head_size(**IDS)]
    second = crypto.Sealer.resume(DEK, head, offset=offset, threads=3, **IDS)
    rest = second.update(data[offset:]) + second.finalize()
    assert head_and_part + rest == whole
