"""Database engine and sessions, shared by the web app, the worker and the CLI.

Tasks that a transaction decides to start are queued on the session and sent only after it
commits (``after_commit``), so a worker never looks for a row that is not there yet, and a
rolled-back request starts nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

_AFTER_COMMIT = "cr_after_commit"
log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            private_sqlite_file(url)
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.sessionmaker, "after_commit", _run_after_commit)
        event.listen(self.sessionmaker, "after_soft_rollback", _drop_after_commit)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def private_sqlite_file(url: str) -> None:
    """Create the database file readable by this user only (0600) before SQLite does (with the
    umask's 0644); its -wal and -shm files take the same mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web process read while the worker writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run ``callback`` once ``session`` commits (dropped if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The commit stands; a broker that was down is caught up by the periodic sweep
            # that re-enqueues shares whose job never started.
            log.exception("after-commit callback failed")


def _drop_after_commit(session: Session, _previous_transaction) -> None:
    session.info.pop(_AFTER_COMMIT, None)
