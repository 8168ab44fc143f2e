"""The parts every entry point shares: settings, database, object store, keyring, KEK
provider, key cache, mail transport.

The web app, the Celery worker and the CLI each build one :class:`Runtime` from the same
settings and pass its parts to the domain services, which know nothing of Flask or Celery.
The web edge reaches the app's runtime through ``app.context.runtime()``; a task through its
Celery app (``app.jobs.JobsCelery.runtime``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import crypto
from app.config import Settings
from app.db import Database
from app.jobs import Jobs, NoJobs
from app.mailer import Mailer, create_mailer
from app.storage import ObjectStore, create_store

# How long a mark is kept for a share nobody here streams: longer than any gap between a
# stream's authorisation and its first write. Watched shares are marked again by every poll.
ENDED_RETAIN_S = 120.0


class EndedShares:
    """The shares this process knows have ended, and those it is streaming: a small
    thread-safe set, fed by ``app.services.revocations`` and asked before every media write."""

    def __init__(self, retain_s: float = ENDED_RETAIN_S) -> None:
        self._lock = threading.Lock()
        self._ended: dict[uuid.UUID, float] = {}
        self._watched: Counter[uuid.UUID] = Counter()
        self._retain_s = retain_s
        # Called on the first watch: the web factory starts its listener there, so that a
        # process that never streams (the CLI, a test app) runs no listener thread.
        self.on_first_watch: Callable[[], None] | None = None

    def mark(self, share_ids: Iterable[uuid.UUID]) -> None:
        now = time.monotonic()
        with self._lock:
            for share_id in share_ids:
                self._ended[share_id] = now
            if len(self._ended) > 1024:
                cutoff = now - self._retain_s
                for share_id in [s for s, at in self._ended.items() if at < cutoff]:
                    if share_id not in self._watched:
                        del self._ended[share_id]

    def is_ended(self, share_id: uuid.UUID) -> bool:
        return share_id in self._ended  # a dict lookup: no lock needed to read

    def watch(self, share_id: uuid.UUID) -> None:
        with self._lock:
            self._watched[share_id] += 1
            start, self.on_first_watch = self.on_first_watch, None
        if start is not None:
            start()

    def unwatch(self, share_id: uuid.UUID) -> None:
        with self._lock:
            self._watched[share_id] -= 1
            if self._watched[share_id] <= 0:
                del self._watched[share_id]

    def watched(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._watched)


@dataclass
class ViewTally:
    """What one viewing session was served since the last flush: ranges in order, bytes."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    bytes_served: int = 0
    last_seen: float = 0.0  # time.time() of the latest request


class ViewTallies:
    """Bytes and ranges served per viewing session, kept in memory until
    ``app.services.viewing`` flushes them in one short transaction (every few seconds and on
    reads of the access log): a media request writes no row and takes no lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, ViewTally] = {}
        # Called on the first note: the web factory starts its flusher there.
        self.on_first_note: Callable[[], None] | None = None

    def _note(self, view_id: uuid.UUID) -> ViewTally:
        tally = self._pending.get(view_id)
        if tally is None:
            tally = self._pending[view_id] = ViewTally()
        tally.last_seen = time.time()
        return tally

    def add_range(self, view_id: uuid.UUID, start: int, stop: int) -> None:
        with self._lock:
            self._note(view_id).ranges.append((start, stop))
            start_flusher, self.on_first_note = self.on_first_note, None
        if start_flusher is not None:
            start_flusher()

    def add_bytes(self, view_id: uuid.UUID, count: int) -> None:
        with self._lock:
            self._note(view_id).bytes_served += count

    def take(self) -> dict[uuid.UUID, ViewTally]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def restore(self, tallies: dict[uuid.UUID, ViewTally]) -> None:
        """Put back what a failed flush took, ahead of what came since."""
        with self._lock:
            for view_id, earlier in tallies.items():
                later = self._pending.get(view_id)
                if later is not None:
                    earlier.ranges.extend(later.ranges)
                    earlier.bytes_served += later.bytes_served
                    earlier.last_seen = later.last_seen
                self._pending[view_id] = earlier

    def __bool__(self) -> bool:
        return bool(self._pending)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: ObjectStore
    keyring: crypto.FileKeyring  # the receipt-signing keys (and the embedded default's KEKs)
    kek: crypto.KekProvider  # wraps and unwraps the data keys
    key_cache: crypto.DataKeyCache
    mailer: Mailer  # only the worker sends (app.services.mail)
    jobs: Jobs = field(default_factory=NoJobs)
    ended: EndedShares = field(default_factory=EndedShares)
    views: ViewTallies = field(default_factory=ViewTallies)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        keyring = crypto.FileKeyring(settings.keyring_path)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            store=create_store(settings),
            keyring=keyring,
            kek=create_kek_provider(settings, keyring),
            key_cache=crypto.DataKeyCache(ttl_seconds=60),
            mailer=create_mailer(settings),
        )


def create_kek_provider(settings: Settings, keyring: crypto.FileKeyring) -> crypto.KekProvider:
    """The KEK provider CR_KEK_PROVIDER names: the keyring file, or an HSM over PKCS#11."""
    if settings.kek_provider == "pkcs11":
        from crypto.pkcs11_kek import Pkcs11Kek

        assert settings.pkcs11_module and settings.pkcs11_token and settings.pkcs11_pin
        return Pkcs11Kek(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin)
    return keyring
