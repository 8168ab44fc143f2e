"""Helpers shared by the crypto tests: the Wycheproof vectors and a recording range source."""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crypto
from crypto import chunked

VECTORS = Path(__file__).resolve().parent / "vectors"
VECTOR_FILES = {
    "aes256": ("c2sp_chunked_encryption_aes_256_gcm_test.json", chunked.AEAD_AES_256_GCM),
    "aes128": ("c2sp_chunked_encryption_aes_128_gcm_test.json", chunked.AEAD_AES_128_GCM),
}


@dataclass(frozen=True)
class Vector:
    name: str
    aead: chunked.ChunkedAead
    case: dict[str, Any]

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.case["key"])

    @property
    def context(self) -> bytes:
        return bytes.fromhex(self.case["ctx"])

    @property
    def ciphertext(self) -> bytes:
        return _decompress(self.case["ct"])

    @property
    def flags(self) -> set[str]:
        return set(self.case["flags"])

    @property
    def valid(self) -> bool:
        return self.case["result"] == "valid"

    @property
    def msg_length(self) -> int:
        """Length of the valid message, or of the valid prefix for PartialPlaintext; else 0."""
        if self.valid or "PartialPlaintext" in self.flags:
            return self.case["msgLength"]
        return 0


@functools.cache
def _decompress(hex_ct: str) -> bytes:
    return zlib.decompress(bytes.fromhex(hex_ct))


def load_vectors() -> list[Vector]:
    vectors = []
    for name, (filename, aead) in VECTOR_FILES.items():
        document = json.loads((VECTORS / filename).read_text())
        (group,) = document["testGroups"]
        assert group["aead"] == aead.name.decode() and group["sha"] == "SHA-512"
        cases = group["tests"]
        assert len(cases) == document["numberOfTests"] == 35
        vectors += [Vector(f"{name}-tc{case['tcId']}", aead, case) for case in cases]
    return vectors


ALL_VECTORS = load_vectors()


class RecordingSource:
    """A BytesRangeSource that remembers every read, to check what a reader fetched."""

    def __init__(self, data: bytes) -> None:
        self._inner = crypto.BytesRangeSource(data)
        self.size = self._inner.size
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return self._inner.read(offset, length)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
