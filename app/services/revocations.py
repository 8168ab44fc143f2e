"""Which shares have ended, known in every web process before its next write (SPEC §2.4).

A media response checks :class:`EndedShares` before every write it makes (a set lookup and a
clock comparison), so that once a revoke has committed no process sends another block, even to
a client that paused reading and resumes later. The set is fed three ways:

1. in the process that ended the share, right after the commit (:meth:`EndedShares.mark`);
2. on PostgreSQL, by ``NOTIFY`` sent in the ending transaction (:func:`announce`), which the
   database delivers on commit to every process that ``LISTEN``s (:class:`Listener`); on
   SQLite, which has no ``NOTIFY`` and runs on one machine, by a datagram from the ending
   process to every other web process's listener, which confirms it (:class:`LocalBus`), so
   the revoke answers as soon as every process knows;
3. by a poll of the status of the shares this process is streaming, at most every
   :data:`POLL_INTERVAL_S`: the fallback for a lost notification (a broken listening
   connection, a process that did not confirm in time).

The end date needs no feed: each stream knows its share's and compares it with the clock.

Small on purpose, and reusable: a stream ``watch``es the share it serves and asks
``is_ended``; anything else that must stop at an end (a feedback editor, a long export) can do
the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db import Database
from app.models import Share, ShareStatus, utcnow
from app.runtime import EndedShares

log = logging.getLogger(__name__)

CHANNEL = "cr_share_ended"
POLL_INTERVAL_S = 0.25
SOCKET_PATH_MAX = 107  # a Unix socket's sun_path holds 108 bytes with the final NUL


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


def settle(db: Database, committed_at: float, *, confirmed: bool = False) -> None:
    """Where processes learn of an end only by the poll (SQLite, and some process did not
    confirm the datagram), wait until every poll has had its turn since ``committed_at`` (a
    monotonic time), so that an answer given after this holds in every process. With
    notifications, or every process's confirmation, there is nothing to wait for."""
    if confirmed or db.engine.dialect.name == "postgresql":
        return
    left = committed_at + 2 * POLL_INTERVAL_S - time.monotonic()
    if left > 0:
        time.sleep(left)


class LocalBus:
    """SQLite's stand-in for NOTIFY: a folder of Unix datagram sockets, one per listening web
    process (processes that share a SQLite file share a machine and its instance folder).

    :meth:`tell` sends the ended shares' ids to every listener but the caller's own and waits,
    at most ``timeout_s``, for each to confirm it has marked them; a socket whose process is
    gone is removed on the way. ``True`` means every listening process knows.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._own: Path | None = None

    def bind(self) -> socket.socket | None:
        """This process's listening socket, or None where the path cannot be one."""
        path = self.folder / f"l-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:  # stay on the poll
            log.warning("instance folder path too long for a local socket; polling only")
            return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        self._own = path
        return sock

    def unbind(self, sock: socket.socket) -> None:
        sock.close()
        if self._own is not None:
            with contextlib.suppress(OSError):
                self._own.unlink()
            self._own = None

    @staticmethod
    def receive(sock: socket.socket) -> tuple[list[uuid.UUID], str]:
        """The ids of one datagram, and where to confirm them once marked."""
        data = sock.recv(65536)
        reply, *lines = data.decode(errors="replace").split("\n")
        ids = []
        for line in lines:
            with contextlib.suppress(ValueError):
                ids.append(uuid.UUID(line))
        return ids, reply

    @staticmethod
    def confirm(sock: socket.socket, reply: str) -> None:
        with contextlib.suppress(OSError):  # the sender gave up waiting: it settles by time
            sock.sendto(b"ok", reply)

    def tell(self, share_ids: list[uuid.UUID], timeout_s: float = 2 * POLL_INTERVAL_S) -> bool:
        if not self.folder.is_dir():
            return True  # no process has ever listened here: none streams
        reply_path = self.folder / f"r-{uuid.uuid4().hex[:12]}.sock"
        if len(os.fsencode(reply_path)) > SOCKET_PATH_MAX:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as reply:
            reply.bind(str(reply_path))
            try:
                return self._tell(reply, str(reply_path), share_ids, timeout_s)
            finally:
                with contextlib.suppress(OSError):
                    reply_path.unlink()

    def _tell(
        self, reply: socket.socket, reply_path: str, share_ids: list[uuid.UUID], timeout_s: float
    ) -> bool:
        message = "\n".join([reply_path, *map(str, share_ids)]).encode()
        waiting = 0
        for path in self.folder.glob("l-*.sock"):
            if path == self._own:
                continue
            try:
                reply.sendto(message, str(path))
                waiting += 1
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    path.unlink()  # its process is gone
            except OSError as exc:  # a full queue: that process learns by its poll
                log.warning("could not tell a web process of an ended share: %s", exc)
                return False
        deadline = time.monotonic() + timeout_s
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            reply.settimeout(left)
            try:
                reply.recv(16)
            except TimeoutError:
                return False
            waiting -= 1
        return True


def local_bus(db: Database, instance_dir: Path) -> LocalBus | None:
    """SQLite's bus in the instance folder; None where NOTIFY carries the news."""
    if db.engine.dialect.name == "postgresql":
        return None
    return LocalBus(instance_dir / "ended")


def tell_others(db: Database, instance_dir: Path, share_ids: list[uuid.UUID]) -> bool:
    """After the ending's commit: make sure every other web process knows (NOTIFY already
    did on PostgreSQL). ``False``: some process may learn only by its poll (see settle)."""
    bus = local_bus(db, instance_dir)
    return True if bus is None else bus.tell(share_ids)


class Listener:
    """One daemon thread per web process: LISTEN (PostgreSQL) or the local bus (SQLite), and
    the bounded poll."""

    def __init__(
        self,
        ended: EndedShares,
        db: Database,
        *,
        interval_s: float = POLL_INTERVAL_S,
        connect: Callable[[], Any] | None = None,
        bus: LocalBus | None = None,
    ) -> None:
        self._ended = ended
        self._db = db
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connect = connect or self._connect_postgresql
        self._notify = db.engine.dialect.name == "postgresql"
        self._bus = None if self._notify else bus
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
        local = self._bus.bind() if self._bus is not None else None
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
            elif local is not None:
                self._receive_local(local)
            else:
                self._stop.wait(self._interval_s)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self._interval_s
                self._poll()
        if connection is not None:
            _close(connection)
        if local is not None and self._bus is not None:
            self._bus.unbind(local)

    def _receive_local(self, sock: socket.socket) -> None:
        """Wait a moment for a datagram of the local bus (short: stop() waits for it); mark,
        then confirm."""
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            if not selector.select(min(self._interval_s, POLL_INTERVAL_S)):
                return
        ids, reply = LocalBus.receive(sock)
        if ids:
            self.notifications += len(ids)
            self._ended.mark(ids)
        if reply:
            LocalBus.confirm(sock, reply)

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
