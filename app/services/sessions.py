"""Signed-in browsers as rows the server can end (finding 5 of issue 12).

The cookie carries a random 256-bit id and nothing else; the table keeps its SHA-256, the
user, small state (the CSRF secret) and two times. A session ends when its row goes: at
sign-out, "sign out everywhere", a password change, a reset, deactivation, or when it has
been idle for ``idle`` or alive for ``max_age`` (checked on every request, and swept by the
worker).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.models import WebSession, utcnow

PREFIX = "s1."  # tells a server-side session id from the signed anonymous cookie
# last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    max_age: timedelta

    @classmethod
    def of(cls, idle_minutes: int, max_hours: int) -> Lifetimes:
        return cls(timedelta(minutes=idle_minutes), timedelta(hours=max_hours))


@dataclass(frozen=True)
class Found:
    id: uuid.UUID
    user_id: uuid.UUID
    data: dict[str, Any]


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(
    session: Session, user_id: uuid.UUID, data: dict[str, Any] | None = None
) -> tuple[str, uuid.UUID]:
    """A new session for ``user_id``: the cookie value (shown to nobody else) and its row id."""
    raw = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        token_hash=_hash(raw),
        user_id=user_id,
        data=dict(data or {}),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return raw, row.id


def _expired(row: WebSession, now: datetime, lifetimes: Lifetimes) -> bool:
    return now - row.last_seen_at > lifetimes.idle or now - row.created_at > lifetimes.max_age


def resolve(session: Session, raw: str, lifetimes: Lifetimes) -> Found | None:
    """The live session a cookie names, or None; an expired one is deleted on the way."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _hash(raw)))
    if row is None:
        return None
    now = utcnow()
    if _expired(row, now, lifetimes):
        session.delete(row)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return Found(row.id, row.user_id, dict(row.data or {}))


def save_data(session: Session, session_id: uuid.UUID, data: dict[str, Any]) -> None:
    row = session.get(WebSession, session_id)
    if row is not None:
        row.data = dict(data)


def end(session: Session, session_id: uuid.UUID) -> None:
    session.execute(delete(WebSession).where(WebSession.id == session_id))


def end_all(session: Session, user_id: uuid.UUID) -> int:
    """End every session of a user; returns how many there were."""
    result = session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def list_for(session: Session, user_id: uuid.UUID, lifetimes: Lifetimes) -> list[WebSession]:
    now = utcnow()
    rows = session.scalars(
        select(WebSession)
        .where(WebSession.user_id == user_id)
        .order_by(WebSession.last_seen_at.desc())
    )
    return [row for row in rows if not _expired(row, now, lifetimes)]


def purge_expired(session: Session, lifetimes: Lifetimes) -> int:
    now = utcnow()
    result = session.execute(
        delete(WebSession).where(
            or_(
                WebSession.last_seen_at < now - lifetimes.idle,
                WebSession.created_at < now - lifetimes.max_age,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
