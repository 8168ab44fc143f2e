"""The one place where a recording or a share changes status (SPEC §4).

Every status write — by the web app, the worker, the scheduler or the CLI — goes through a
function here, inside the caller's transaction. Each allowed transition is listed in
:data:`SHARE_TRANSITIONS` / :data:`RECORDING_TRANSITIONS` with what it must do; anything
else raises :class:`TransitionRefused`. A test fails if another module writes a status column.

Share:      processing → ready | failed;  processing | ready | failed → revoked | expired
Recording:  draft → deleted;  its probe: pending → ok | failed;
            its redaction suggestions: (none) | ready | failed → pending → ready | failed
Feedback form (SPEC §13):  proposed → approved | rejected;  approved → retired
Feedback:   draft → sent → acknowledged

What follows a transition after its commit (not in the transaction, so a slow store never
holds a lock): ending a share or deleting a recording deletes its objects and signs a deletion
certificate (``shredding``); the store refusing is caught up by the ``delete_objects`` job and
the reconciler.

On PostgreSQL an ending is one statement, :func:`end_share_at_once` (the server-side function
``cr_end_share`` of migration 0011, given this module's transition and audit action): the
revoke's critical section is a single round trip. :func:`end_share` is the same in the ORM,
for SQLite.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session

import crypto
from app.db import Database
from app.models import (
    Comment,
    Feedback,
    FeedbackForm,
    MediaObject,
    Recording,
    RecordingStatus,
    Share,
    ShareStatus,
    UTCDateTime,
    utcnow,
)
from app.services import audit, keys, revocations


class TransitionRefused(Exception):
    """A status change the lifecycle does not allow (a bug in the caller, never user input)."""


@dataclass(frozen=True)
class Transition:
    action: str  # the audit event
    destroys_key: bool = False  # the wrapped data key is deleted in the same transaction
    deletes_objects: bool = False  # after commit: objects deleted, certificate signed


_ENDINGS = {
    ShareStatus.REVOKED: Transition("share.revoked", destroys_key=True, deletes_objects=True),
    ShareStatus.EXPIRED: Transition("share.expired", destroys_key=True, deletes_objects=True),
}
SHARE_TRANSITIONS: dict[tuple[ShareStatus, ShareStatus], Transition] = {
    (ShareStatus.PROCESSING, ShareStatus.READY): Transition("share.ready"),
    (ShareStatus.PROCESSING, ShareStatus.FAILED): Transition("share.failed"),
    **{
        (start, end): transition
        for start in (ShareStatus.PROCESSING, ShareStatus.READY, ShareStatus.FAILED)
        for end, transition in _ENDINGS.items()
    },
}
RECORDING_TRANSITIONS: dict[tuple[RecordingStatus, RecordingStatus], Transition] = {
    (RecordingStatus.DRAFT, RecordingStatus.DELETED): Transition(
        "recording.deleted", destroys_key=True, deletes_objects=True
    ),
}
PROBE_TRANSITIONS = {("pending", "ok"), ("pending", "failed")}
SUGGESTION_TRANSITIONS = {
    (None, "pending"),
    ("ready", "pending"),
    ("failed", "pending"),
    ("pending", "ready"),
    ("pending", "failed"),
}
FORM_TRANSITIONS: dict[tuple[str, str], Transition] = {
    ("proposed", "approved"): Transition("feedback_form.approved"),
    ("proposed", "rejected"): Transition("feedback_form.rejected"),
    ("approved", "retired"): Transition("feedback_form.retired"),
}
FEEDBACK_TRANSITIONS: dict[tuple[str, str], Transition] = {
    ("draft", "sent"): Transition("feedback.sent"),
    ("sent", "acknowledged"): Transition("feedback.acknowledged"),
}
# Why a share ends, and the status it ends in.
END_REASONS = {
    "revoked": ShareStatus.REVOKED,
    "recording_deleted": ShareStatus.REVOKED,
    "expired": ShareStatus.EXPIRED,
}


def _share_transition(share: Share, to: ShareStatus) -> Transition:
    transition = SHARE_TRANSITIONS.get((share.status, to))
    if transition is None:
        raise TransitionRefused(f"share {share.id}: {share.status.value} → {to.value}")
    return transition


def share_ready(session: Session, share: Share, *, duration_s: float, objects: int) -> None:
    """The job finished: the rendition and its derivatives are stored."""
    transition = _share_transition(share, ShareStatus.READY)
    share.status = ShareStatus.READY
    share.progress = 100
    share.ready_at = utcnow()
    share.duration_s = round(duration_s, 3)
    share.job_lease_until = None
    audit.append(
        session,
        transition.action,
        share_id=share.id,
        recording_id=share.recording_id,
        detail={"duration_s": share.duration_s, "objects": objects},
    )


def share_failed(session: Session, share: Share, message: str) -> bool:
    """The job cannot make the share; False if the share is no longer processing."""
    if share.status is not ShareStatus.PROCESSING:
        return False
    transition = _share_transition(share, ShareStatus.FAILED)
    share.status = ShareStatus.FAILED
    share.error = message
    share.job_lease_until = None
    audit.append(
        session,
        transition.action,
        share_id=share.id,
        recording_id=share.recording_id,
        detail={"error": message[:200]},
    )
    return True


@dataclass(frozen=True)
class Ended:
    """What the ending transaction did; the follow-up (objects, certificate) needs it."""

    ended_at: datetime
    key_destroyed: bool


def end_share(
    session: Session,
    share: Share,
    *,
    reason: str,
    actor_id: uuid.UUID | None,
    key_cache: crypto.DataKeyCache,
) -> Ended:
    """Revoke or expire a share: from this transaction's commit, nothing can decrypt it."""
    to = END_REASONS[reason]
    transition = _share_transition(share, to)
    now = utcnow()
    share.status = to
    share.ended_at = now
    share.job_lease_until = None
    share.title_sealed = None
    share.note_sealed = None
    share.purpose_sealed = None
    share.receipt_sealed = None
    share.redactions_sealed = None
    destroyed = keys.shred_data_key(session, key_cache, share.key_id)
    session.execute(delete(Comment).where(Comment.share_id == share.id))
    # A coach's unsent feedback on it reached nobody and now never will: shred it. Sent
    # feedback is the employee's and stays theirs (sealed under its own key).
    for draft in session.scalars(
        select(Feedback).where(Feedback.share_id == share.id, Feedback.status == "draft")
    ):
        keys.shred_data_key(session, key_cache, draft.key_id)
        session.delete(draft)
    revocations.announce(session, share.id)  # every web process learns of it on commit
    audit.append(
        session,
        transition.action,
        actor_id=actor_id,
        share_id=share.id,
        recording_id=share.recording_id,
        detail={"reason": reason, "key_destroyed": destroyed},
    )
    return Ended(now, destroyed)


@dataclass(frozen=True)
class EndedAtOnce:
    """What :func:`end_share_at_once` found or did. ``ended`` is False for a share that had
    already ended (nothing changed; ``status``, ``ended_at`` and ``certificate`` are its)."""

    ended: bool
    status: ShareStatus
    ended_at: datetime
    key_destroyed: bool
    certificate: str | None
    key_id: uuid.UUID
    owner_id: uuid.UUID
    recording_id: uuid.UUID
    draft_keys: list[uuid.UUID]
    names: list[str]


_END_SHARE = text(
    "SELECT * FROM cr_end_share(CAST(:share AS uuid), :from_, :to, :at, CAST(:actor AS uuid), "
    ":action, :reason, :channel, :pieces)"
).bindparams(bindparam("at", type_=UTCDateTime()))


def end_share_at_once(
    db: Database,
    share_id: uuid.UUID,
    *,
    reason: str,
    actor_id: uuid.UUID | None,
    key_cache: crypto.DataKeyCache,
) -> EndedAtOnce | None:
    """:func:`end_share` in one statement and its own transaction (PostgreSQL): one round trip
    holds the share's lock, destroys the keys, notifies, audits and commits. None if there is
    no such share."""
    to = END_REASONS[reason]
    transition = next(t for (_, end), t in SHARE_TRANSITIONS.items() if end is to)
    starts = [start.value for (start, end) in SHARE_TRANSITIONS if end is to]
    now = utcnow()
    # The detail's order in the canonical text is fixed (sorted keys): key_destroyed, then
    # reason; the database fills in whether the key row was there, and the event's number.
    pieces = audit.canonical_pieces(
        [audit.DESTROYED_HOLE, audit.RECORDING_HOLE, audit.SEQ_HOLE],
        now,
        actor_id,
        transition.action,
        share_id,
        audit.RECORDING_HOLE,
        {"key_destroyed": audit.DESTROYED_HOLE, "reason": reason},
    )
    assert pieces is not None  # ids, an action name and a reason of END_REASONS: no holes
    with db.engine.connect() as connection:
        row = (
            connection.execution_options(isolation_level="AUTOCOMMIT")
            .execute(
                _END_SHARE,
                {
                    "share": share_id,
                    "from_": starts,
                    "to": to.value,
                    "at": now,
                    "actor": actor_id,
                    "action": transition.action,
                    "reason": reason,
                    "channel": revocations.CHANNEL,
                    "pieces": pieces,
                },
            )
            .one_or_none()
        )
    if row is None:
        return None
    draft_keys = list(row.draft_keys or [])
    # Committed: the key rows are gone. Evict them, and refuse them for a while: a reader that
    # unwrapped a key just before the commit cannot cache it after this (crypto.shred's rule).
    for key_id in [row.key_id, *draft_keys] if row.ended else []:
        key_cache.revoke(str(key_id))
    return EndedAtOnce(
        ended=row.ended,
        status=ShareStatus(row.status),
        ended_at=_utc(row.ended_at or row.created_at),
        key_destroyed=row.key_destroyed,
        certificate=row.certificate,
        key_id=row.key_id,
        owner_id=row.owner_id,
        recording_id=row.recording_id,
        draft_keys=draft_keys,
        names=list(row.names or []),
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def delete_recording(
    session: Session,
    recording: Recording,
    *,
    reason: str,
    actor_id: uuid.UUID | None,
    key_cache: crypto.DataKeyCache,
) -> Ended:
    """Shred a draft: its key is destroyed in this transaction (its shares ended before)."""
    transition = RECORDING_TRANSITIONS.get((recording.status, RecordingStatus.DELETED))
    if transition is None:
        raise TransitionRefused(f"recording {recording.id}: {recording.status.value} → deleted")
    now = utcnow()
    recording.status = RecordingStatus.DELETED
    recording.deleted_at = now
    recording.title_sealed = None
    recording.media_sha256_sealed = None
    recording.suggestions_sealed = None
    destroyed = keys.shred_data_key(session, key_cache, recording.key_id)
    # Objects that came from a second resumable upload carry that upload's key: shred it too.
    own_keys = session.scalars(
        select(MediaObject.key_id).where(
            MediaObject.recording_id == recording.id, MediaObject.key_id.is_not(None)
        )
    )
    for key_id in {k for k in own_keys if k is not None}:
        keys.shred_data_key(session, key_cache, key_id)
    audit.append(
        session,
        transition.action,
        actor_id=actor_id,
        recording_id=recording.id,
        detail={"reason": reason, "key_destroyed": destroyed},
    )
    return Ended(now, destroyed)


def record_probe(
    session: Session,
    recording: Recording,
    outcome: str,
    *,
    error: str | None = None,
    duration_s: float | None = None,
    has_video: bool | None = None,
    audio_channels: int | None = None,
) -> bool:
    """What the probe found (``ok``) or why the draft cannot be used (``failed``).
    False if the probe's result was already recorded (a job delivered twice)."""
    if recording.status is not RecordingStatus.DRAFT or recording.probe_status != "pending":
        return False
    if ("pending", outcome) not in PROBE_TRANSITIONS:
        raise TransitionRefused(f"recording {recording.id}: probe pending → {outcome}")
    recording.probe_status = outcome
    recording.probe_error = error
    if outcome == "ok":
        recording.duration_s = duration_s
        recording.has_video = has_video
        recording.audio_channels = audio_channels
    return True


def suggestions_requested(session: Session, recording: Recording) -> bool:
    """The employee asked for redaction suggestions; False if a job is already pending."""
    if recording.status is not RecordingStatus.DRAFT or recording.suggestions_status == "pending":
        return False
    if (recording.suggestions_status, "pending") not in SUGGESTION_TRANSITIONS:
        raise TransitionRefused(f"recording {recording.id}: suggestions → pending")
    recording.suggestions_status = "pending"
    recording.suggestions_error = None
    recording.suggestions_sealed = None
    return True


def record_suggestions(
    session: Session,
    recording: Recording,
    outcome: str,
    *,
    sealed: bytes | None = None,
    error: str | None = None,
) -> bool:
    """The suggestion job's result (``ready`` with the sealed boxes, or ``failed`` and why).
    False if it was already recorded (a job delivered twice) or the draft is gone."""
    if recording.status is not RecordingStatus.DRAFT or recording.suggestions_status != "pending":
        return False
    if ("pending", outcome) not in SUGGESTION_TRANSITIONS:
        raise TransitionRefused(f"recording {recording.id}: suggestions pending → {outcome}")
    recording.suggestions_status = outcome
    recording.suggestions_error = error
    recording.suggestions_sealed = sealed if outcome == "ready" else None
    return True


def decide_form(
    session: Session,
    form: FeedbackForm,
    to: str,
    *,
    actor_id: uuid.UUID | None,
    reason: str | None = None,
) -> None:
    """A representative approves or rejects a proposed form, or a form is retired. The audit
    event is also the representative's history of what employees are assessed on."""
    transition = FORM_TRANSITIONS.get((form.status, to))
    if transition is None:
        raise TransitionRefused(f"feedback form {form.id}: {form.status} → {to}")
    now = utcnow()
    form.status = to
    if to == "retired":
        form.retired_at = now
    else:
        form.decided_at, form.decided_by, form.reason = now, actor_id, reason
    audit.append(
        session,
        transition.action,
        actor_id=actor_id,
        detail={"form": str(form.id), "family": str(form.family_id), "version": form.version},
    )


def feedback_step(session: Session, feedback: Feedback, to: str, *, actor_id: uuid.UUID) -> None:
    """Feedback is sent by its coach, or acknowledged by its employee (no content audited)."""
    transition = FEEDBACK_TRANSITIONS.get((feedback.status, to))
    if transition is None:
        raise TransitionRefused(f"feedback {feedback.id}: {feedback.status} → {to}")
    now = utcnow()
    feedback.status = to
    if to == "sent":
        feedback.sent_at = now
    else:
        feedback.acknowledged_at = now
    audit.append(
        session,
        transition.action,
        actor_id=actor_id,
        share_id=feedback.share_id,
        detail={"feedback": str(feedback.id), "form": str(feedback.form_id)},
    )
