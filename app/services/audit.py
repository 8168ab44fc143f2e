"""The append-only, hash-chained audit log (SPEC §2.6).

Each event's hash is SHA-256 over the previous hash and a canonical encoding of the event, so
removing, reordering or editing any event breaks every hash after it. Appends lock the single
``audit_head`` row, which orders concurrent writers. Events hold metadata only — ids, actions,
counts — never titles, comments or media.

On PostgreSQL an append is one statement (``cr_audit_append``, migration 0011): Python sends
the event's canonical text around its ``seq`` (:func:`canonical_pieces`), the database locks
the head, numbers and hashes the event exactly as :func:`event_hash` does, and moves the head.
The head is then locked from that statement to the commit only, not across a round trip per
step, so that a revoke does not queue behind other events' transactions for long.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, select, text
from sqlalchemy.orm import Session

from app.models import AuditEvent, AuditHead, UTCDateTime, utcnow

GENESIS_HASH = "0" * 64
# Stand-ins in the canonical text for values only the database knows when it appends: the
# event's number, and (for an ending) whether the key row was there to delete and the share's
# recording.
SEQ_HOLE = -73556081130001
DESTROYED_HOLE = -73556081130002
RECORDING_HOLE = uuid.UUID("73556081-1300-4003-8000-000000000003")
# The call of cr_audit_append, for a statement of its own or inside a caller's statement;
# its parameters are :func:`database_append_params`.
APPEND_CALL = (
    "cr_audit_append(:at, CAST(:actor AS uuid), :action, CAST(:share AS uuid), "
    "CAST(:recording AS uuid), :detail, :before, :after)"
)
APPEND_TYPES = (bindparam("at", type_=UTCDateTime()), bindparam("detail", type_=JSON()))
_APPEND = text(f"SELECT {APPEND_CALL}").bindparams(*APPEND_TYPES)


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


def canonical_pieces(
    holes: list[int | uuid.UUID],
    at: datetime,
    actor_id: uuid.UUID | None,
    action: str,
    share_id: uuid.UUID | None,
    recording_id: uuid.UUID | None,
    detail: dict[str, Any],
) -> list[str] | None:
    """The canonical text of an event whose ``seq`` is :data:`SEQ_HOLE` (and whose detail may
    hold other holes), cut at each hole in the order given: the database puts the values in
    between. None if a hole is not found exactly once, in that order (then use the ORM path)."""
    payload = _canonical(SEQ_HOLE, at, actor_id, action, share_id, recording_id, detail).decode()
    pieces, rest = [], payload
    for hole in holes:
        mark = str(hole)
        if payload.count(mark) != 1 or mark not in rest:
            return None
        before, rest = rest.split(mark)
        pieces.append(before)
    return [*pieces, rest]


def database_append_params(
    action: str,
    actor_id: uuid.UUID | None,
    share_id: uuid.UUID | None,
    recording_id: uuid.UUID | None,
    detail: dict[str, Any],
    at: datetime,
) -> dict[str, Any] | None:
    """The parameters of :data:`APPEND_CALL` for this event; None if its canonical text
    cannot be cut around ``seq`` (then append it with the ORM)."""
    pieces = canonical_pieces([SEQ_HOLE], at, actor_id, action, share_id, recording_id, detail)
    if pieces is None:
        return None
    return {
        "at": at,
        "actor": actor_id,
        "action": action,
        "share": share_id,
        "recording": recording_id,
        "detail": detail,
        "before": pieces[0],
        "after": pieces[1],
    }


def append(
    session: Session,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    share_id: uuid.UUID | None = None,
    recording_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one event in the caller's transaction."""
    at, detail = at or utcnow(), detail or {}
    dialect = session.get_bind().dialect.name
    params = (
        database_append_params(action, actor_id, share_id, recording_id, detail, at)
        if dialect == "postgresql"
        else None
    )
    if params is not None:
        # The caller's pending rows go first, so the head stays locked only until the commit.
        session.flush()
        session.execute(_APPEND, params)
        return
    if dialect == "sqlite":
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
        at=at,
        actor_id=actor_id,
        action=action,
        share_id=share_id,
        recording_id=recording_id,
        detail=detail,
        prev_hash=head.hash,
    )
    event.hash = event_hash(head.hash, event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)


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
