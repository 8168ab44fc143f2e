"""Viewing sessions: who played a share, when, which byte ranges, and for how long."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import Database
from app.models import Share, User, ViewSession, utcnow
from app.services import audit
from app.services.errors import NotFound

IMPLICIT_VIEW_WINDOW = timedelta(minutes=30)
MAX_RANGES = 200
HEARTBEAT_SLACK_S = 5.0  # clock skew and latency between the player and the server


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


def record_range(session: Session, view: ViewSession, start_byte: int, stop_byte: int) -> None:
    ranges = [list(r) for r in (view.ranges or [])]
    if ranges and ranges[-1][1] == start_byte:
        ranges[-1][1] = stop_byte
    elif len(ranges) < MAX_RANGES:
        ranges.append([start_byte, stop_byte])
    view.ranges = ranges
    view.last_seen_at = utcnow()


def add_bytes(db: Database, view_id: uuid.UUID, count: int) -> None:
    with db.session() as session:
        session.execute(
            update(ViewSession)
            .where(ViewSession.id == view_id)
            .values(bytes_served=ViewSession.bytes_served + count, last_seen_at=utcnow())
        )


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
