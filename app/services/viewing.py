"""Viewing sessions: who played a share, when, which byte ranges, and for how long.

A media request records the access (a view, with its ``media.play`` audit event) before its
first byte; the ranges and bytes it serves are tallied in memory (``Runtime.views``) and
written by :func:`flush` in one short transaction every :data:`FLUSH_INTERVAL_S`, and before
the access log is read, so that no media request updates a row or waits for a lock.
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.models import Share, User, ViewSession, utcnow
from app.runtime import ViewTallies
from app.services import audit
from app.services.errors import NotFound

IMPLICIT_VIEW_WINDOW = timedelta(minutes=30)
MAX_RANGES = 200
HEARTBEAT_SLACK_S = 5.0  # clock skew and latency between the player and the server
# How often the bytes and ranges served are written. The access itself (the view and its
# ``media.play`` event) is committed before the first byte; this is only the tally.
FLUSH_INTERVAL_S = 2.0

log = logging.getLogger(__name__)


def start(session: Session, share: Share, viewer: User) -> ViewSession:
    view = ViewSession(id=uuid.uuid4(), share_id=share.id, viewer_id=viewer.id, ranges=[])
    session.add(view)
    session.flush()
    audit.append(
        session, "media.play", actor_id=viewer.id, share_id=share.id, detail={"view": str(view.id)}
    )
    return view


def _own_view(session: Session, share: Share, viewer: User, view_id: str) -> ViewSession:
    try:
        vid = uuid.UUID(view_id)
    except ValueError:
        raise NotFound("view") from None
    view = session.scalar(
        select(ViewSession).where(
            ViewSession.id == vid,
            ViewSession.share_id == share.id,
            ViewSession.viewer_id == viewer.id,
        )
    )
    if view is None:
        raise NotFound("view")
    return view


def for_media_request(
    session: Session, share: Share, viewer: User, view_id: str | None
) -> ViewSession:
    """The view a media request belongs to: the player's, or a recent one, or a new one."""
    if view_id:
        try:
            return _own_view(session, share, viewer, view_id)
        except NotFound:
            pass
    recent = session.scalar(
        select(ViewSession)
        .where(
            ViewSession.share_id == share.id,
            ViewSession.viewer_id == viewer.id,
            ViewSession.last_seen_at > utcnow() - IMPLICIT_VIEW_WINDOW,
        )
        .order_by(ViewSession.last_seen_at.desc())
        .limit(1)
    )
    return recent or start(session, share, viewer)


def _merged(stored: list[list[int]], served: list[tuple[int, int]]) -> list[list[int]]:
    """The stored ranges and those served since: a range that continues the last one
    extends it (a player reading on), any other is added, up to MAX_RANGES."""
    ranges = [list(r) for r in stored]
    for start_byte, stop_byte in served:
        if ranges and ranges[-1][1] == start_byte:
            ranges[-1][1] = stop_byte
        elif len(ranges) < MAX_RANGES:
            ranges.append([start_byte, stop_byte])
    return ranges


def flush(db: Database, tallies: ViewTallies) -> int:
    """Write what was served since the last flush, in one short transaction; returns how many
    views it updated. If the database refuses, the tallies are kept for the next turn."""
    pending = tallies.take()
    if not pending:
        return 0
    try:
        with db.session() as session:
            views = session.scalars(
                select(ViewSession)
                .where(ViewSession.id.in_(list(pending)))
                .order_by(ViewSession.id)
                .with_for_update()
            ).all()
            for view in views:
                tally = pending[view.id]
                view.ranges = _merged(view.ranges or [], tally.ranges)
                view.bytes_served = (view.bytes_served or 0) + tally.bytes_served
                view.last_seen_at = max(
                    view.last_seen_at, datetime.fromtimestamp(tally.last_seen, UTC)
                )
    except Exception as exc:  # noqa: BLE001 - kept in memory, tried again next turn
        tallies.restore(pending)
        log.warning("could not record bytes served yet: %s", exc)
        return 0
    return len(views)


class Flusher:
    """One daemon thread per web process: flush the view tallies every FLUSH_INTERVAL_S,
    and once more when the process exits."""

    def __init__(self, db: Database, tallies: ViewTallies, interval_s: float = FLUSH_INTERVAL_S):
        self._db = db
        self._tallies = tallies
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="view-flusher", daemon=True)
            self._thread.start()
            atexit.register(self.stop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        flush(self._db, self._tallies)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            flush(self._db, self._tallies)


def heartbeat(
    session: Session, share: Share, viewer: User, view_id: str, watched_s: float, position_s: float
) -> ViewSession:
    view = _own_view(session, share, viewer, view_id)
    now = utcnow()
    # The player reports the time watched; the session cannot have lasted longer than the
    # wall clock says, so the total is capped there (a client could otherwise claim hours).
    elapsed = (now - view.started_at).total_seconds() + HEARTBEAT_SLACK_S
    view.seconds_watched = min((view.seconds_watched or 0.0) + watched_s, max(elapsed, 0.0))
    view.last_seen_at = now
    return view
