"""The append-only, hash-chained audit log (SPEC §2.6).

Each event's hash is SHA-256 over the previous hash and a canonical encoding of the event, so
removing, reordering or editing any event breaks every hash after it. Appends lock the single
``audit_head`` row, which orders concurrent writers. Events hold metadata only — ids, actions,
counts — never titles, comments or media.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import AuditEvent, AuditHead, utcnow

GENESIS_HASH = "0" * 64


def _canonical(
    seq: int,
    at: datetime,
    actor_id: uuid.UUID | None,
    action: str,
    share_id: uuid.UUID | None,
    recording_id: uuid.UUID | None,
    detail: dict[str, Any],
) -> bytes:
    return json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": str(actor_id) if actor_id else None,
            "action": action,
            "share": str(share_id) if share_id else None,
            "recording": str(recording_id) if recording_id else None,
            "detail": detail,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    payload = _canonical(
        event.seq,
        event.at,
        event.actor_id,
        event.action,
        event.share_id,
        event.recording_id,
        event.detail or {},
    )
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def append(
    session: Session,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    share_id: uuid.UUID | None = None,
    recording_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no SELECT ... FOR UPDATE and reads outside a write transaction: take the
        # database's write lock first (a no-op write), or two writers read the same head and
        # the second append fails on a duplicate seq.
        session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
    head = session.get(AuditHead, 1, with_for_update=True)
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
    event = AuditEvent(
        seq=head.seq + 1,
        at=at or utcnow(),
        actor_id=actor_id,
        action=action,
        share_id=share_id,
        recording_id=recording_id,
        detail=detail or {},
        prev_hash=head.hash,
    )
    event.hash = event_hash(head.hash, event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    return event


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    events: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "broken_seq": self.broken_seq,
            "reason": self.reason,
        }


def iter_events(session: Session, batch: int = 1000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify_chain(session: Session) -> ChainVerdict:
    """Walk the chain from the start and name the first broken link, if any."""
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    for event in iter_events(session):
        if event.seq != expected_seq:
            return ChainVerdict(
                False, count, prev_hash, expected_seq, f"event {expected_seq} is missing"
            )
        if event.prev_hash != prev_hash:
            return ChainVerdict(
                False,
                count,
                prev_hash,
                event.seq,
                f"event {event.seq} does not follow event {event.seq - 1}",
            )
        if event_hash(prev_hash, event) != event.hash:
            return ChainVerdict(
                False,
                count,
                prev_hash,
                event.seq,
                f"event {event.seq} was altered (its hash does not match)",
            )
        prev_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return ChainVerdict(
            False,
            count,
            prev_hash,
            count + 1,
            f"event {count + 1} is missing: the log ends at event {count} but its head "
            f"records {head.seq} events (events after the last one present were removed)",
        )
    return ChainVerdict(True, count, prev_hash)
