"""The embedded default: objects as files under one directory."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from app.storage import ObjectInfo, ObjectNotFound, StorageUnavailable

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
# What opening or stat-ing a name that is not an object raises: absent, a directory (a prefix),
# or a path through a file.
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class _FileRange:
    """A bounded read of an open file (LocalStore.open_range)."""

    def __init__(self, handle, length: int) -> None:
        self._handle = handle
        self._left = max(length, 0)

    def read(self, size: int) -> bytes:
        data = self._handle.read(min(size, self._left)) if self._left else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


def _private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parent as 0700 (``mkdir(parents=True)`` would give the
    parents the umask's mode)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        folder.chmod(0o700)


def _append_file(source: Path, target: BinaryIO) -> None:
    """Copy a whole file onto the end of an open file, in the kernel where it can."""
    target.flush()
    with open(source, "rb") as handle:
        remaining = os.fstat(handle.fileno()).st_size
        try:
            while remaining > 0:
                copied = os.copy_file_range(handle.fileno(), target.fileno(), remaining)
                if copied == 0:
                    break
                remaining -= copied
        except OSError:  # a filesystem without copy_file_range: an ordinary copy of the rest
            shutil.copyfileobj(handle, target, 1 << 20)


class LocalStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        _private_dirs(self.root)

    def _path(self, name: str) -> Path:
        # Names are built from ids by the application; refuse anything that could climb out.
        if not _SAFE_NAME.match(name):
            raise ValueError(f"invalid object name {name!r}")
        return self.root / name

    def put_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        path = self._path(name)
        _private_dirs(path.parent)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        size = 0
        try:
            # Readable by this user only (0600), whatever the umask: ciphertext, but nobody
            # else's business either.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    def compose(self, name: str, sources: list[str]) -> int:
        path = self._path(name)
        inputs = [self._path(source) for source in sources]
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            if len(inputs) == 1:
                # One piece: a second name for the same file, no copy (the piece stays).
                os.link(inputs[0], partial)
            else:
                with open(partial, "xb") as handle:
                    for source in inputs:
                        _append_file(source, handle)
                    os.fsync(handle.fileno())
            os.replace(partial, path)
        except _ABSENT as exc:
            partial.unlink(missing_ok=True)
            missing = next(
                (s for s, p in zip(sources, inputs, strict=True) if not p.is_file()), name
            )
            raise ObjectNotFound(missing) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return path.stat().st_size

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(name), "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except _ABSENT:
            raise ObjectNotFound(name) from None

    def open_range(self, name: str, offset: int, length: int) -> _FileRange:
        try:
            handle = open(self._path(name), "rb")  # noqa: SIM115 - closed by _FileRange.close
        except _ABSENT:
            raise ObjectNotFound(name) from None
        handle.seek(offset)
        return _FileRange(handle, length)

    def iter_object(self, name: str, block_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = open(self._path(name), "rb")  # noqa: SIM115 - closed by the generator
        except _ABSENT:
            raise ObjectNotFound(name) from None
        with handle:
            while block := handle.read(block_size):
                yield block

    def size(self, name: str) -> int:
        path = self._path(name)
        try:
            stat = path.stat()
        except _ABSENT:
            raise ObjectNotFound(name) from None
        if not S_ISREG(stat.st_mode):  # a "folder" of objects is not an object
            raise ObjectNotFound(name)
        return stat.st_size

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # no object has this name (a prefix, or a path under an object)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def delete_many(self, names: list[str]) -> None:
        for name in names:
            self.delete(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        for info in self.scan(prefix):
            yield info.name

    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    stat = path.stat()
                    yield ObjectInfo(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageUnavailable("the local object directory is missing or not writable")
