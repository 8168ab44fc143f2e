"""Stream plumbing shared by the object and raw chunked APIs (no cryptography here)."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from ._core import DecryptionError


class FailClosed(Iterator[bytes]):
    """Keeps raising DecryptionError once the stream it wraps has failed.

    A plain generator that raised is exhausted and would answer StopIteration next, which a
    caller could mistake for a clean end of the plaintext.
    """

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._failed = False

    def __iter__(self) -> FailClosed:
        return self

    def __next__(self) -> bytes:
        if self._failed:
            raise DecryptionError()
        try:
            return next(self._blocks)
        except DecryptionError:
            self._failed = True
            raise

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


def read_blocks(stream: BinaryIO, batch: int) -> Iterator[memoryview]:
    """Read a binary stream in batches into reused buffers; each view is valid until the
    next one is requested.

    A regular file is read ahead on a helper thread: the read syscall releases the GIL, so
    copying the next batch out of the page cache overlaps with encrypting this one.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while block := stream.read(batch):
            yield memoryview(block)
        return
    if _is_regular_file(stream):
        yield from _read_ahead(readinto, batch)
        return
    buffer = bytearray(batch)
    view = memoryview(buffer)
    while True:
        count = readinto(buffer)
        if count is None:
            raise BlockingIOError("non-blocking streams are not supported")
        if not count:
            return
        yield view[:count]


def _is_regular_file(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return False


def _read_ahead(
    readinto: Callable[[bytearray], int | None], batch: int, depth: int = 3
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
