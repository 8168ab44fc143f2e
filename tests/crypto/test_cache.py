"""The data-key cache: expiry on an injected clock, eviction, revocation, bounds."""

from __future__ import annotations

import threading

import pytest

import crypto
from crypto.cache import MAX_TTL_SECONDS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_entries_expire_after_the_ttl(clock: Clock) -> None:
    cache = crypto.DataKeyCache(30, clock=clock)
    dek = crypto.new_data_key()
    cache.put("k", dek)
    assert cache.get("k") == dek
    clock.now += 29.999
    assert cache.get("k") == dek
    clock.now += 0.001
    assert cache.get("k") is None
    assert len(cache) == 0


def test_put_restarts_the_ttl(clock: Clock) -> None:
    cache = crypto.DataKeyCache(10, clock=clock)
    cache.put("k", b"a" * 32)
    clock.now += 8
    cache.put("k", b"b" * 32)
    clock.now += 8
    assert cache.get("k") == b"b" * 32


def test_evict_and_clear(clock: Clock) -> None:
    cache = crypto.DataKeyCache(60, clock=clock)
    cache.put("a", b"a" * 32)
    cache.put("b", b"b" * 32)
    cache.evict("a")
    cache.evict("missing")
    assert cache.get("a") is None
    assert cache.get("b") == b"b" * 32
    assert "b" in cache and "a" not in cache
    cache.put("a", b"a" * 32)  # a plain eviction does not block caching again
    assert cache.get("a") == b"a" * 32
    cache.clear()
    assert len(cache) == 0


def test_revoke_blocks_recaching_for_one_ttl(clock: Clock) -> None:
    cache = crypto.DataKeyCache(20, clock=clock)
    cache.put("k", b"k" * 32)
    cache.revoke("k")
    assert cache.get("k") is None
    cache.put("k", b"k" * 32)
    assert cache.get("k") is None
    clock.now += 20
    cache.put("k", b"k" * 32)
    assert cache.get("k") == b"k" * 32


@pytest.mark.parametrize("ttl", [60.001, 61, 3600, 0, -1])
def test_ttl_outside_0_to_60_seconds_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        crypto.DataKeyCache(ttl)


def test_default_ttl_is_the_maximum() -> None:
    assert MAX_TTL_SECONDS == 60
    assert crypto.DataKeyCache().ttl_seconds == 60
    assert crypto.DataKeyCache(60).ttl_seconds == 60
    assert isinstance(crypto.default_cache, crypto.DataKeyCache)
    assert crypto.default_cache.ttl_seconds <= 60


def test_size_is_bounded(clock: Clock) -> None:
    cache = crypto.DataKeyCache(60, clock=clock, max_entries=3)
    for name in "abcd":
        cache.put(name, name.encode() * 32)
    assert cache.get("a") is None
    assert [cache.get(n) for n in "bcd"] == [n.encode() * 32 for n in "bcd"]


def test_returned_keys_are_copies_and_repr_shows_no_keys(clock: Clock) -> None:
    cache = crypto.DataKeyCache(60, clock=clock)
    dek = bytearray(b"s" * 32)
    cache.put("k", dek)
    dek[:] = bytes(32)  # the caller reusing its buffer does not change the cache
    assert cache.get("k") == b"s" * 32
    assert "sss" not in repr(cache)


def test_thread_safety() -> None:
    cache = crypto.DataKeyCache(60)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(2000):
                key_id = f"k{(worker * 7 + i) % 50}"
                cache.put(key_id, key_id.encode().ljust(32, b"."))
                got = cache.get(key_id)
                assert got in (None, key_id.encode().ljust(32, b"."))
                if i % 13 == 0:
                    cache.evict(key_id)
                if i % 97 == 0:
                    cache.revoke(key_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
