"""Wrapping data keys under the KEK, unwrapping, rewrapping, and shredding."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import crypto
from crypto import _core


def test_wrap_unwrap_round_trip(keyring: crypto.FileKeyring) -> None:
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(keyring, dek, key_id="key-1", owner_id="user-1")
    assert wrapped.kek_version == keyring.current_version() == 1
    assert len(wrapped.blob) == 12 + 32 + 16
    assert dek not in wrapped.blob
    assert crypto.unwrap(keyring, wrapped, key_id="key-1", owner_id="user-1") == dek
    again = crypto.wrap(keyring, dek, key_id="key-1", owner_id="user-1")
    assert again.blob[:12] != wrapped.blob[:12]  # fresh nonce each time
    assert "blob=<60 bytes>" in repr(wrapped)


def test_unwrap_refuses_other_ids_and_versions(keyring: crypto.FileKeyring) -> None:
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(keyring, dek, key_id="key-1", owner_id="user-1")
    for key_id, owner_id in (("key-2", "user-1"), ("key-1", "user-2"), ("user-1", "key-1")):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(keyring, wrapped, key_id=key_id, owner_id=owner_id)
    keyring.add_version()
    for version in (0, 2, 99):
        relabelled = crypto.WrappedKey(version, wrapped.blob)
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(keyring, relabelled, key_id="key-1", owner_id="user-1")


def test_every_altered_byte_of_the_blob_is_refused(keyring: crypto.FileKeyring) -> None:
    wrapped = crypto.wrap(keyring, crypto.new_data_key(), key_id="k", owner_id="o")
    for position in range(len(wrapped.blob)):
        blob = bytearray(wrapped.blob)
        blob[position] ^= 0x01
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(keyring, crypto.WrappedKey(1, bytes(blob)), key_id="k", owner_id="o")
    for blob in (b"", wrapped.blob[:-1], wrapped.blob + b"\x00"):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap(keyring, crypto.WrappedKey(1, blob), key_id="k", owner_id="o")


def test_associated_data_is_unambiguous() -> None:
    aad = _core.wrap_aad
    assert aad("ab", "c", 1) != aad("a", "bc", 1)
    assert aad("a", "b", 1) != aad("a", "b", 2)
    assert aad("k", "o", 7) == (
        b"\x00\x1aconsent-replay/dek-wrap/v1" + b"\x00\x01k" + b"\x00\x01o" + b"\x00\x00\x00\x07"
    )


def test_rewrap_moves_to_the_current_version(keyring: crypto.FileKeyring) -> None:
    dek = crypto.new_data_key()
    old = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    assert keyring.add_version() == 2
    new = crypto.rewrap(keyring, old, key_id="k", owner_id="o")
    assert new.kek_version == 2
    assert crypto.unwrap(keyring, new, key_id="k", owner_id="o") == dek
    with pytest.raises(crypto.DecryptionError):
        crypto.rewrap(keyring, old, key_id="k", owner_id="someone-else")


def test_wrap_retries_when_the_kek_rotates_underneath(tmp_path: Path) -> None:
    class RotatesOnFirstWrap(crypto.FileKeyring):
        rotated = False

        def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
            if not self.rotated:
                self.rotated = True
                self.add_version()
            return super().wrap(dek, aad)

    keyring = RotatesOnFirstWrap(tmp_path / "keyring.json")
    dek = crypto.new_data_key()
    wrapped = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    assert wrapped.kek_version == 2
    assert crypto.unwrap(keyring, wrapped, key_id="k", owner_id="o") == dek


def test_wrap_refuses_a_key_of_the_wrong_size(keyring: crypto.FileKeyring) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.wrap(keyring, bytes(16), key_id="k", owner_id="o")


class DictStore:
    """A WrappedKeyStore over a dict, standing in for the app's table of wrapped keys."""

    def __init__(self) -> None:
        self.rows: dict[str, crypto.WrappedKey] = {}

    def delete(self, key_id: str) -> bool:
        return self.rows.pop(key_id, None) is not None


def test_shred_deletes_the_wrapped_key_and_the_cached_one(keyring: crypto.FileKeyring) -> None:
    store = DictStore()
    cache = crypto.DataKeyCache(60)
    dek = crypto.new_data_key()
    store.rows["k"] = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
    assert (
        crypto.unwrap_cached(keyring, store.rows["k"], key_id="k", owner_id="o", cache=cache) == dek
    )
    assert cache.get("k") == dek

    assert crypto.shred(store, "k", cache) is True
    assert "k" not in store.rows
    assert cache.get("k") is None
    # A request that unwrapped just before the shred cannot put the key back in the cache.
    cache.put("k", dek)
    assert cache.get("k") is None
    assert crypto.shred(store, "k", cache) is False


def test_shred_evicts_even_when_the_delete_fails() -> None:
    class BrokenStore:
        def delete(self, key_id: str) -> bool:
            raise RuntimeError("database is down")

    cache = crypto.DataKeyCache(60)
    cache.put("k", crypto.new_data_key())
    with pytest.raises(RuntimeError, match="database is down"):
        crypto.shred(BrokenStore(), "k", cache)
    assert cache.get("k") is None


def test_shred_uses_the_default_cache() -> None:
    dek = crypto.new_data_key()
    crypto.default_cache.put("shred-default", dek)
    store = DictStore()
    store.rows["shred-default"] = crypto.WrappedKey(1, b"")
    assert crypto.shred(store, "shred-default") is True
    assert crypto.default_cache.get("shred-default") is None


def test_concurrent_wraps_and_unwraps(keyring: crypto.FileKeyring) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                dek = crypto.new_data_key()
                wrapped = crypto.wrap(keyring, dek, key_id="k", owner_id="o")
                assert crypto.unwrap(keyring, wrapped, key_id="k", owner_id="o") == dek
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
