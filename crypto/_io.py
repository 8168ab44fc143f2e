"""Stream plumbing shared by the object and raw chunked APIs (no cryptography here)."""

from __future__ import annotations

import io
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from ._core import DecryptionError

T = TypeVar("T")


class FailClosed(Iterator[T]):
    """Keeps failing once the stream it wraps has failed.

    A plain generator that raised is exhausted and would answer StopIteration next, which a
    caller could mistake for a clean end of the plaintext.  After the first error (a
    DecryptionError, or e.g. an I/O error from the source), every next() raises
    DecryptionError.
    """

    def __init__(self, blocks: Iterator[T]) -> None:
        self._blocks: Iterator[T] = blocks
        self._failed = False

    def __iter__(self) -> FailClosed[T]:
        return self

    def __next__(self) -> T:
        if self._failed:
            raise DecryptionError()
        try:
            return next(self._blocks)
        except StopIteration:
            raise
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


# A regular file is read 4 MiB at a time on a helper thread; fewer, larger reads mean fewer
# hand-overs of the GIL between the reader and the encrypting thread (measured: 1.7 GB/s with
# 256 KiB reads, 4.2 GB/s with 4 MiB reads, for the same 256 KiB encryption batches).
READ_AHEAD_SPANS = 256
READ_AHEAD_DEPTH = 3
STREAM_SPANS = 64


def read_blocks(stream: BinaryIO, span: int) -> Iterator[memoryview]:
    """Read a binary stream in blocks of whole spans (chunk sizes) into reused buffers.

    Each yielded view is valid only until the next one is requested.  A regular file larger
    than one block is read ahead on a helper thread: the read syscall releases the GIL, so
    copying the next block out of the page cache overlaps with encrypting this one.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while block := stream.read(STREAM_SPANS * span):
            yield memoryview(block)
        return
    remaining = _remaining_file_size(stream)
    batch = READ_AHEAD_SPANS * span
    if remaining is not None and remaining > batch:
        yield from _read_ahead(readinto, batch, READ_AHEAD_DEPTH)
        return
    # A small file is read in one go; the extra byte lets that read already reach the end.
    buffer = bytearray(STREAM_SPANS * span if remaining is None else remaining + 1)
    view = memoryview(buffer)
    while True:
        count = readinto(buffer)
        if count is None:
            raise BlockingIOError("non-blocking streams are not supported")
        if not count:
            return
        yield view[:count]


def _remaining_file_size(stream: BinaryIO) -> int | None:
    """Bytes left in a regular file from its current position, or None for other streams."""
    try:
        st = os.fstat(stream.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(st.st_size - stream.tell(), 0)
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return None


def _read_ahead(
    readinto: Callable[[bytearray], int | None], batch: int, depth: int
) -> Iterator[memoryview]:
    """Yield views of batches read by a helper thread, `depth` buffers in flight."""
    free: list[bytearray] = [bytearray(batch) for _ in range(depth)]
    filled: list[tuple[bytearray, int] | Exception] = []
    lock = threading.Condition()
    stop = False

    def reader() -> None:
        while True:
            with lock:
                while not free and not stop:
                    lock.wait()
                if stop:
                    return
                buffer = free.pop()
            try:
                count = readinto(buffer) or 0
            except Exception as error:  # noqa: BLE001 - handed to the consumer, which re-raises
                with lock:
                    filled.append(error)
                    lock.notify_all()
                return
            with lock:
                filled.append((buffer, count))
                lock.notify_all()
            if count == 0:
                return

    thread = threading.Thread(target=reader, name="crypto-read-ahead", daemon=True)
    thread.start()
    previous: bytearray | None = None
    try:
        while True:
            with lock:
                if previous is not None:
                    free.append(previous)
                    previous = None
                    lock.notify_all()
                while not filled:
                    lock.wait()
                item = filled.pop(0)
            if isinstance(item, Exception):
                raise item
            buffer, count = item
            if count == 0:
                return
            previous = buffer
            yield memoryview(buffer)[:count]
    finally:
        with lock:
            stop = True
            lock.notify_all()
        thread.join()


# Blocks handed to the writer thread at once; one hand-over per ~4 MiB keeps the queue cheap.
WRITE_BEHIND_BYTES = 4 << 20
WRITE_BEHIND_DEPTH = 3


def write_all(sink: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = sink.write(view)
        if written is None:
            raise BlockingIOError("non-blocking sinks are not supported")
        view = view[written:]


def writev_all(fd: int, blocks: list[bytes]) -> None:
    """Write all blocks to fd, as few writev calls as the kernel allows."""
    views = [memoryview(block) for block in blocks if block]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _sink_fd(sink: BinaryIO) -> int | None:
    """The file descriptor to writev to, after flushing sink's own buffer; None if none."""
    try:
        fd = sink.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return None
    sink.flush()
    return fd


def write_behind(sink: BinaryIO, blocks: Iterable[bytes]) -> int:
    """Write blocks to sink on a helper thread while the caller produces the next ones.

    The write syscall releases the GIL, so copying into the page cache overlaps with
    encryption.  At most WRITE_BEHIND_DEPTH groups of ~4 MiB are in flight.  A sink with a
    file descriptor is flushed first and then written through the descriptor.  Returns the
    number of bytes written; re-raises the writer's error, or the producer's.
    """
    handoff: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=WRITE_BEHIND_DEPTH)
    errors: list[Exception] = []
    # One writev per group: the writer needs the GIL once per ~4 MiB, not once per block.
    fd = _sink_fd(sink)

    def writer() -> None:
        while (group := handoff.get()) is not None:
            if errors:
                continue  # keep draining so the producer never blocks on a dead writer
            try:
                if fd is not None:
                    writev_all(fd, group)
                else:
                    for block in group:
                        write_all(sink, block)
            except Exception as error:  # noqa: BLE001 - re-raised in the producer's thread
                errors.append(error)

    thread = threading.Thread(target=writer, name="crypto-write-behind", daemon=True)
    thread.start()
    total = 0
    group: list[bytes] = []
    group_size = 0
    try:
        for block in blocks:
            if errors:
                break
            group.append(block)
            group_size += len(block)
            if group_size >= WRITE_BEHIND_BYTES:
                handoff.put(group)
                total += group_size
                group, group_size = [], 0
        if group and not errors:
            handoff.put(group)
            total += group_size
    finally:
        handoff.put(None)
        thread.join()
    if errors:
        raise errors[0]
    return total
