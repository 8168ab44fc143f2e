"""Which shares have ended, known in every web process before its next write (SPEC §2.4).

A media response checks :class:`EndedShares` before every write it makes (a set lookup and a
clock comparison), so that once a revoke has committed no process sends another block, even to
a client that paused reading and resumes later. The set is fed three ways:

1. in the process that ended the share, right after the commit (:meth:`EndedShares.mark`);
2. on PostgreSQL, by ``NOTIFY`` sent in the ending transaction (:func:`announce`), which the
   database delivers on commit to every process that ``LISTEN``s (:class:`Listener`);
3. by a poll of the status of the shares this process is streaming, at most every
   :data:`POLL_INTERVAL_S`: the fallback for a lost notification (a broken listening
   connection) and, on SQLite, which has no ``NOTIFY``, the only feed between processes.

The end date needs no feed: each stream knows its share's and compares it with the clock.

Small on purpose, and reusable: a stream ``watch``es the share it serves and asks
``is_ended``; anything else that must stop at an end (a feedback editor, a long export) can do
the same.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db import Database
from app.models import Share, ShareStatus, utcnow
from app.runtime import EndedShares

log = logging.getLogger(__name__)

CHANNEL = "cr_share_ended"
POLL_INTERVAL_S = 0.25


class Guard:
    """The check before each write of one stream: its share has not ended, nor its end date
    passed. Cheap enough to run before every 64 KiB."""

    def __init__(self, ended: EndedShares, share_id: uuid.UUID, expires_at: datetime) -> None:
        self._ended = ended
        self._share_id = share_id
        self._expires_at = expires_at
        self._open = True
        ended.watch(share_id)

    def __call__(self) -> bool:
        return not self._ended.is_ended(self._share_id) and utcnow() < self._expires_at

    def close(self) -> None:
        if self._open:
            self._open = False
            self._ended.unwatch(self._share_id)


def announce(session: Session, share_id: uuid.UUID) -> None:
    """In the ending transaction: tell every listening process on commit (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(share_id)}
        )


def ended_among(db: Database, share_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these shares are revoked or expired now (one indexed query)."""
    if not share_ids:
        return []
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(Share.id).where(
                Share.id.in_(share_ids),
                Share.status.in_([ShareStatus.REVOKED, ShareStatus.EXPIRED]),
            )
        )
        return [row.id for row in rows]


def settle(db: Database, committed_at: float) -> None:
    """Where processes learn of an end only by the poll (SQLite), wait until every poll has had
    its turn since ``committed_at`` (a monotonic time), so that an answer given after this
    holds in every process. With notifications there is nothing to wait for."""
    if db.engine.dialect.name == "postgresql":
        return
    left = committed_at + 2 * POLL_INTERVAL_S - time.monotonic()
    if left > 0:
        time.sleep(left)


class Listener:
    """One daemon thread per web process: LISTEN (PostgreSQL) and the bounded poll."""

    def __init__(
        self,
        ended: EndedShares,
        db: Database,
        *,
        interval_s: float = POLL_INTERVAL_S,
        connect: Callable[[], Any] | None = None,
    ) -> None:
        self._ended = ended
        self._db = db
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connect = connect or self._connect_postgresql
        self._notify = db.engine.dialect.name == "postgresql"
        self.notifications = 0  # received so far (for tests and diagnostics)
        self.polls = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="revocation-listener", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _connect_postgresql(self) -> Any:
        import psycopg

        url = self._db.engine.url.set(drivername="postgresql")
        connection = psycopg.connect(
            url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def _run(self) -> None:
        connection = None
        retry_at = next_poll = 0.0
        while not self._stop.is_set():
            if self._notify and connection is None and time.monotonic() >= retry_at:
                try:
                    connection = self._connect()
                except Exception as exc:  # noqa: BLE001 - the poll covers while it is down
                    log.warning("cannot LISTEN for ended shares (%s); polling only", exc)
                    retry_at = time.monotonic() + 5
            if connection is not None:
                try:
                    self._receive(connection)
                except Exception as exc:  # noqa: BLE001 - reconnect; the poll covers meanwhile
                    log.warning("the LISTEN connection broke (%s); reconnecting", exc)
                    _close(connection)
                    connection = None
            else:
                self._stop.wait(self._interval_s)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self._interval_s
                self._poll()
        if connection is not None:
            _close(connection)

    def _receive(self, connection: Any) -> None:
        """Wait up to one interval for the LISTEN socket, then take every notification.

        (Straight from libpq: psycopg's ``notifies(timeout=...)`` delivered a notification
        only some 90 ms after it arrived, time in which a fast reader gets megabytes.)"""
        with selectors.DefaultSelector() as selector:
            selector.register(connection.fileno(), selectors.EVENT_READ)
            if not selector.select(self._interval_s):
                return
        pgconn = connection.pgconn
        pgconn.consume_input()
        ids = []
        while (notify := pgconn.notifies()) is not None:
            try:
                ids.append(uuid.UUID(notify.extra.decode()))
            except (ValueError, UnicodeDecodeError):
                continue
        if ids:
            self.notifications += len(ids)
            self._ended.mark(ids)

    def _poll(self) -> None:
        watched = self._ended.watched()
        if not watched:
            return
        try:
            ended = ended_among(self._db, watched)
        except Exception as exc:  # noqa: BLE001 - the database is down: try again next turn
            log.warning("cannot poll for ended shares: %s", exc)
            return
        self.polls += 1
        if ended:
            self._ended.mark(ended)


def _close(connection: Any) -> None:
    try:
        connection.close()
    except Exception:
        log.debug("closing the LISTEN connection failed", exc_info=True)
