"""A short-lived, in-process cache of unwrapped data keys.

Unwrapping on every Range request of a playing video would hit the keyring (or the KMS) a few
times a second per viewer; a cache of at most 60 seconds keeps that cheap while bounding how
long a key outlives its shredding in one process.  The cache is per process: every use of a
key must still be checked against the database (a shredded key has no wrapped row), so the
cache never decides access.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["MAX_TTL_SECONDS", "DataKeyCache", "default_cache"]

MAX_TTL_SECONDS = 60.0


class DataKeyCache:
    """Thread-safe map key_id -> data key whose entries expire after ``ttl_seconds``.

    ``revoke(key_id)`` evicts a key and refuses to cache it again for one TTL, so that a
    request that unwrapped the key just before it was shredded cannot put it back.
    """

    def __init__(
        self,
        ttl_seconds: float = MAX_TTL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
    ) -> None:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(
                f"ttl_seconds must be in (0, {MAX_TTL_SECONDS:g}]: a cached key outlives its "
                "shredding by up to one TTL"
            )
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_seconds = float(ttl_seconds)
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        # bytearrays, so that eviction can overwrite the cached copy.
        self._entries: dict[str, tuple[float, bytearray]] = {}
        self._revoked: dict[str, float] = {}

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None:
                return None
            expires_at, dek = entry
            if self._clock() >= expires_at:
                self._drop(key_id)
                return None
            return bytes(dek)

    def put(self, key_id: str, dek: bytes) -> None:
        with self._lock:
            now = self._clock()
            revoked_until = self._revoked.get(key_id)
            if revoked_until is not None:
                if now < revoked_until:
                    return
                del self._revoked[key_id]
            self._drop(key_id)
            self._prune(now)
            while len(self._entries) >= self._max_entries:
                self._drop(next(iter(self._entries)))
            self._entries[key_id] = (now + self.ttl_seconds, bytearray(dek))

    def evict(self, key_id: str) -> None:
        with self._lock:
            self._drop(key_id)

    def revoke(self, key_id: str) -> None:
        """Evict and refuse to cache this key id again for one TTL (used when shredding)."""
        with self._lock:
            self._drop(key_id)
            self._revoked[key_id] = self._clock() + self.ttl_seconds

    def clear(self) -> None:
        with self._lock:
            for key_id in list(self._entries):
                self._drop(key_id)
            self._revoked.clear()

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._entries)

    def __contains__(self, key_id: object) -> bool:
        return isinstance(key_id, str) and self.get(key_id) is not None

    def _drop(self, key_id: str) -> None:
        entry = self._entries.pop(key_id, None)
        if entry is not None:
            dek = entry[1]
            dek[:] = bytes(len(dek))

    def _prune(self, now: float) -> None:
        for key_id in [k for k, (expires_at, _) in self._entries.items() if now >= expires_at]:
            self._drop(key_id)
        for key_id in [k for k, until in self._revoked.items() if now >= until]:
            del self._revoked[key_id]

    def __repr__(self) -> str:
        return f"<DataKeyCache ttl={self.ttl_seconds:g}s>"


default_cache = DataKeyCache()
