"""Data keys: wrapping under the KEK, unwrapping, rewrapping on rotation, and shredding.

A data key (DEK) exists at rest only wrapped (blob layout and associated data in
crypto._core).  Shredding deletes the wrapped key; with it gone, and the KEK versions that
ever wrapped it destroyed after rotation, the objects it encrypted are unreadable, including
copies in old backups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from . import _core
from ._core import DecryptionError
from .cache import DataKeyCache, default_cache
from .keyring import KekProvider

__all__ = [
    "WrappedKey",
    "WrappedKeyStore",
    "rewrap",
    "shred",
    "unwrap",
    "unwrap_cached",
    "wrap",
]

_DATA_KEY_SIZE = 32
_WRAP_ATTEMPTS = 3


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped under one KEK version; what the database stores."""

    kek_version: int
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_version={self.kek_version}, blob=<{len(self.blob)} bytes>)"


def wrap(kek: KekProvider, dek: bytes, *, key_id: str, owner_id: str) -> WrappedKey:
    """Wrap dek under the current KEK version, bound to key_id and owner_id."""
    if len(dek) != _DATA_KEY_SIZE:
        raise ValueError("a data key is 32 bytes")
    # The associated data names the KEK version, so it is built for the version the provider
    # is expected to use; if a rotation lands in between, wrap again under the new one.
    for _ in range(_WRAP_ATTEMPTS):
        version = kek.current_version()
        used_version, blob = kek.wrap(bytes(dek), _core.wrap_aad(key_id, owner_id, version))
        if used_version == version:
            return WrappedKey(version, blob)
    raise RuntimeError("the KEK kept rotating while wrapping; try again")


def unwrap(kek: KekProvider, wrapped: WrappedKey, *, key_id: str, owner_id: str) -> bytes:
    """The data key; DecryptionError if its KEK version is gone, the ids differ, or the blob
    was altered."""
    aad = _core.wrap_aad(key_id, owner_id, wrapped.kek_version)
    dek = kek.unwrap(wrapped.kek_version, wrapped.blob, aad)
    if len(dek) != _DATA_KEY_SIZE:
        raise DecryptionError()
    return dek


def unwrap_cached(
    kek: KekProvider,
    wrapped: WrappedKey,
    *,
    key_id: str,
    owner_id: str,
    cache: DataKeyCache = default_cache,
) -> bytes:
    """unwrap() through the data-key cache."""
    dek = cache.get(key_id)
    if dek is None:
        dek = unwrap(kek, wrapped, key_id=key_id, owner_id=owner_id)
        cache.put(key_id, dek)
    return dek


def rewrap(kek: KekProvider, wrapped: WrappedKey, *, key_id: str, owner_id: str) -> WrappedKey:
    """The same data key wrapped under the current KEK version (for rotation)."""
    dek = unwrap(kek, wrapped, key_id=key_id, owner_id=owner_id)
    return wrap(kek, dek, key_id=key_id, owner_id=owner_id)


class WrappedKeyStore(Protocol):
    """Where wrapped keys live; the app deletes the row inside its revocation transaction."""

    def delete(self, key_id: str) -> bool:
        """Delete the wrapped key; True if there was one."""
        ...


def shred(store: WrappedKeyStore, key_id: str, cache: DataKeyCache = default_cache) -> bool:
    """Destroy a data key: delete its wrapped form and drop it from the cache.

    The cache refuses the key id before the delete (so a concurrent unwrap cannot re-cache
    it) and again after, even if the delete raised.
    """
    cache.revoke(key_id)
    try:
        return store.delete(key_id)
    finally:
        cache.revoke(key_id)
