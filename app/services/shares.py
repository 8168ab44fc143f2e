"""Shares: the opt-in (one recording, named coaches, a purpose, an end date, its own key)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

import crypto
from app import jobs
from app.db import after_commit
from app.models import (
    AuditEvent,
    Comment,
    Recording,
    RecordingStatus,
    Role,
    Share,
    ShareGrantee,
    ShareStatus,
    User,
    ViewSession,
    utcnow,
)
from app.runtime import Runtime
from app.services import audit, job_messages, keys, mail, policy, recordings, redaction, text
from app.services.errors import Gone, InvalidRequest, NotFound, RateLimited, Unprocessable
from app.services.i18n import N_, _
from app.services.sealing import open_json, open_text, seal_json, seal_text

MAX_COACHES = 10
MAX_PURPOSE = 500
MAX_NOTE = 2000
MAX_COMMENT = 2000
# Share jobs one employee may have waiting or running at once: one person cannot fill every
# worker (each job is an ffmpeg run of up to the job time limit).
MAX_PROCESSING_PER_USER = 3
# What a grantee learns of a share that has ended: that it ended. Not who, what, why, nor
# whether it was withdrawn or ran out (that would tell them the employee withdrew).
ENDED = "ended"
ENDED_MESSAGE = N_("This share has ended.")  # translated where it is shown
# The employee is told this long before a share ends (SPEC §13), once.
ENDING_NOTICE = timedelta(days=2)
ENDING_NOTIFIED = "share.ending_soon"


@dataclass
class ShareRequest:
    coach_ids: list[uuid.UUID]
    purpose: str
    expires_in_days: int
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    include_customer_audio: bool = False
    note: str | None = None
    # The raw JSON value of ``redactions`` (SPEC §12): checked here, against the recording.
    redactions: object = None
    # The language of the consent text the employee was shown (SPEC §14).
    language: str = "en"


def _channels(recording: Recording, include_customer: bool) -> dict[str, Any]:
    has_screen = any(o.kind == "screen" for o in recording.objects)
    has_audio_file = any(o.kind == "audio" for o in recording.objects)
    return {
        "screen": has_screen,
        "agent_audio": has_audio_file or has_screen,
        "customer_audio": include_customer,
        "agent_channel": recording.agent_channel,
    }


def create_share(
    session: Session, rt: Runtime, owner: User, recording_id: uuid.UUID | str, request: ShareRequest
) -> Share:
    """The opt-in. Validates every choice, signs the receipt, starts the job after commit."""
    recording = recordings.get_own(session, owner, recording_id, lock=True)
    if recording.status is not RecordingStatus.DRAFT:
        raise NotFound("recording")
    if recording.probe_status == "failed":
        raise Unprocessable(
            _(
                "This recording cannot be shared: %(reason)s",
                reason=job_messages.in_reader_language(recording.probe_error),
            )
            if recording.probe_error
            else _("This recording cannot be shared: it is not playable."),
            code="recording_unusable",
        )
    current = policy.current_policy(session)
    policy.consent_text_for(current, request.language)  # the text shown must exist

    purpose = text.check("purpose", request.purpose, multiline=True)
    if not purpose:
        raise InvalidRequest(_("Say what the coaching is for (purpose)."), code="purpose_required")
    if len(purpose) > MAX_PURPOSE:
        raise InvalidRequest(
            _("The purpose can have at most %(most)s characters.", most=MAX_PURPOSE),
            code="purpose_too_long",
        )
    if not 1 <= request.expires_in_days <= current.max_share_days:
        raise InvalidRequest(
            _(
                "The share must end in 1 to %(most)s days (the policy's maximum).",
                most=current.max_share_days,
            ),
            code="invalid_expiry",
        )
    coach_ids = list(dict.fromkeys(request.coach_ids))
    if not coach_ids:
        raise InvalidRequest(_("Pick at least one coach."), code="coach_required")
    if len(coach_ids) > MAX_COACHES:
        raise InvalidRequest(
            _("Pick at most %(most)s coaches.", most=MAX_COACHES), code="too_many_coaches"
        )
    coaches = list(
        session.scalars(
            select(User).where(User.id.in_(coach_ids), User.role == Role.COACH, User.active)
        )
    )
    if len(coaches) != len(coach_ids):
        raise InvalidRequest(_("Every coach_id must name an active coach."), code="unknown_coach")
    if request.include_customer_audio and not recording.customer_informed:
        raise Unprocessable(
            _(
                "The customer's voice can be included only when the recording says the customer "
                "was informed."
            ),
            code="customer_not_informed",
        )
    trim = _validate_trim(recording, request.trim_start_s, request.trim_end_s)
    redactions = _validate_redactions(recording, request.redactions)
    _check_jobs_in_flight(session, owner)
    note = text.check("note", request.note or "", multiline=True)
    if len(note) > MAX_NOTE:
        raise InvalidRequest(
            _("The note can have at most %(most)s characters.", most=MAX_NOTE),
            code="note_too_long",
        )

    now = utcnow()
    share_id = uuid.uuid4()
    key_id, dek = keys.create_data_key(session, rt.kek, owner_id=owner.id)
    title = recordings.title_of(session, rt, recording) or "Untitled recording"
    expires_at = now + timedelta(days=request.expires_in_days)
    channels = _channels(recording, request.include_customer_audio)
    receipt = crypto.sign(
        rt.keyring,
        {
            "iss": rt.settings.public_url,
            "sub": str(owner.id),
            "jti": str(share_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "version": "consent-replay-receipt/1",
            "recording": str(recording.id),
            "grantees": [str(c) for c in coach_ids],
            "purpose": purpose,
            "scope": ["view", "comment"],
            "channels": channels,
            "trim": trim,
            "redactions": redactions,
            "media_sha256": recordings.media_sha256_of(session, rt, recording),
            "policy": {
                "id": "consent-text",
                "version": current.version,
                "language": request.language,
            },
            "revocation_url": f"{rt.settings.public_url}/api/v1/shares/{share_id}/revoke",
            "key_id": str(key_id),
        },
        typ=crypto.RECEIPT_TYP,
    )
    share = Share(
        id=share_id,
        recording_id=recording.id,
        owner_id=owner.id,
        key_id=key_id,
        progress=0,
        purpose_sealed=seal_text(dek, key_id, "purpose", share_id, purpose),
        note_sealed=seal_text(dek, key_id, "note", share_id, note) if note else None,
        title_sealed=seal_text(dek, key_id, "title", share_id, title),
        trim_start_s=trim["start_s"] if trim else None,
        trim_end_s=trim["end_s"] if trim else None,
        include_customer_audio=request.include_customer_audio,
        policy_version=current.version,
        receipt_sealed=seal_text(dek, key_id, "receipt", share_id, receipt),
        redactions_sealed=(
            seal_json(dek, key_id, "redactions", share_id, redactions) if redactions else None
        ),
        created_at=now,
        expires_at=expires_at,
        grantees=[ShareGrantee(coach_id=c) for c in coach_ids],
    )
    session.add(share)
    session.flush()
    audit.append(
        session,
        "share.created",
        actor_id=owner.id,
        share_id=share.id,
        recording_id=recording.id,
        detail={
            "coaches": [str(c) for c in coach_ids],
            "expires_in_days": request.expires_in_days,
            "policy_version": current.version,
            "redactions": len(redactions),
        },
    )
    sid = str(share.id)
    after_commit(session, lambda: rt.jobs.send(jobs.PROCESS_SHARE, sid))
    return share


def notify_ready(session: Session, rt: Runtime, share: Share) -> None:
    """The share is ready: each of its coaches who wants e-mail is told (a link, no content)."""
    for grantee in share.grantees:
        mail.notify(session, rt, grantee.coach, "share_ready")


def notify_ending(session: Session, rt: Runtime) -> int:
    """Tell each employee, once, two days before a share of theirs ends (a link, no content).
    The audit event is the mark that they were told; a share that lasts two days or less
    gets no notice (it would come with the opt-in itself)."""
    now = utcnow()
    due = [
        share
        for share in session.scalars(
            select(Share)
            .where(
                Share.status == ShareStatus.READY,
                Share.expires_at > now,
                Share.expires_at <= now + ENDING_NOTICE,
            )
            .limit(500)
        )
        if share.expires_at - share.created_at > ENDING_NOTICE
    ]
    told = set(
        session.scalars(
            select(AuditEvent.share_id).where(
                AuditEvent.action == ENDING_NOTIFIED,
                AuditEvent.share_id.in_([s.id for s in due]),
            )
        )
    )
    for share in (s for s in due if s.id not in told):
        audit.append(session, ENDING_NOTIFIED, share_id=share.id)
        mail.notify(session, rt, share.owner, "share_ending")
    return len(due) - len(told)


def _check_jobs_in_flight(session: Session, owner: User) -> None:
    """At most MAX_PROCESSING_PER_USER shares of one employee being prepared at once. The
    owner's row is locked so that two opt-ins at the same moment are counted in turn."""
    session.execute(select(User.id).where(User.id == owner.id).with_for_update())
    processing = session.scalar(
        select(func.count())
        .select_from(Share)
        .where(Share.owner_id == owner.id, Share.status == ShareStatus.PROCESSING)
    )
    if (processing or 0) >= MAX_PROCESSING_PER_USER:
        raise RateLimited(
            _(
                "You already have %(count)s shares being prepared. Wait until one of them is "
                "ready, then share this one.",
                count=MAX_PROCESSING_PER_USER,
            ),
            code="too_many_jobs",
        )


def _validate_trim(
    recording: Recording, start: float | None, end: float | None
) -> dict[str, float] | None:
    if start is None and end is None:
        return None
    start = 0.0 if start is None else float(start)
    duration = recording.duration_s
    if end is None:
        if duration is None:
            raise InvalidRequest(
                _("Give trim.end_s (the length is not known yet)."), code="invalid_trim"
            )
        end = duration
    end = float(end)
    if start < 0 or end <= start:
        raise InvalidRequest(_("trim needs 0 <= start_s < end_s."), code="invalid_trim")
    if end - start < 1:
        raise InvalidRequest(
            _("A trimmed share must last at least one second."), code="invalid_trim"
        )
    if duration is not None and start >= duration:
        raise InvalidRequest(
            _("trim.start_s is past the end of the recording."), code="invalid_trim"
        )
    if duration is not None:
        end = min(end, duration)
    return {"start_s": round(start, 3), "end_s": round(end, 3)}


def _validate_redactions(recording: Recording, value: object) -> list[dict[str, Any]]:
    """SPEC §12: 422 ``invalid_redaction`` naming the item's index and field."""
    if value is None or value == []:
        return []
    if recording.probe_status != "ok" or not recording.duration_s:
        raise Unprocessable(
            _(
                "Redactions can be chosen once the recording's length is known; try again in a "
                "moment."
            ),
            code="invalid_redaction",
            details={"index": None, "field": None},
        )
    try:
        return redaction.validate_redactions(
            value,
            duration_s=recording.duration_s,
            has_video=bool(recording.has_video),
            audio_channels=recording.audio_channels or 0,
            agent_channel=recording.agent_channel,
        )
    except redaction.RedactionInvalid as exc:
        raise Unprocessable(str(exc), code="invalid_redaction", details=exc.details) from None


def _uuid(value: uuid.UUID | str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(what) from None


def get_for_owner(
    session: Session, owner: User, share_id: uuid.UUID | str, *, lock: bool = False
) -> Share:
    query = select(Share).where(Share.id == _uuid(share_id, "share"), Share.owner_id == owner.id)
    share = session.scalar(query.with_for_update() if lock else query)
    if share is None:
        raise NotFound("share")
    return share


def get_for_viewer(session: Session, user: User, share_id: uuid.UUID | str) -> Share:
    """A share its owner or one of its coaches may see; anyone else gets 404.

    The one check of every share endpoint (the share, comments, views, heartbeats, media, the
    playback page): a grantee asking about a share that has ended — revoked, expired, or past
    its end date before any sweep has marked it — gets 410 ``share_ended`` and nothing else.
    The owner keeps seeing their own share (its status, its certificate).
    """
    sid = _uuid(share_id, "share")
    share = session.scalar(
        select(Share).where(
            Share.id == sid,
            or_(
                Share.owner_id == user.id,
                Share.id.in_(select(ShareGrantee.share_id).where(ShareGrantee.coach_id == user.id)),
            ),
        )
    )
    if share is None:
        raise NotFound("share")
    if share.owner_id != user.id and has_ended(share):
        raise Gone(ENDED_MESSAGE, code="share_ended")
    return share


def has_ended(share: Share) -> bool:
    """Revoked, expired, or past its end date (checked now, not by the expiry sweep)."""
    return not share.status.active or share.expires_at <= utcnow()


def is_viewable(share: Share) -> bool:
    return share.status is ShareStatus.READY and share.expires_at > utcnow()


def require_viewable(share: Share) -> None:
    if has_ended(share):
        raise Gone(ENDED_MESSAGE, code="share_ended")
    if share.status is not ShareStatus.READY:
        raise Unprocessable(_("This share is not ready to play yet."), code="share_not_ready")


def list_for(session: Session, user: User) -> list[Share]:
    if user.role is Role.COACH:
        query = select(Share).where(
            Share.id.in_(select(ShareGrantee.share_id).where(ShareGrantee.coach_id == user.id))
        )
    else:
        query = select(Share).where(Share.owner_id == user.id)
    return list(session.scalars(query.order_by(Share.created_at.desc())))


def share_dek(session: Session, rt: Runtime, share: Share) -> bytes:
    try:
        return keys.load_data_key(session, rt.kek, rt.key_cache, share.key_id)
    except keys.KeyDestroyed:
        raise Gone(ENDED_MESSAGE, code="share_ended") from None


def _sealed_field(session: Session, rt: Runtime, share: Share, field: str) -> str | None:
    sealed = getattr(share, f"{field}_sealed")
    if sealed is None or not share.status.active:
        return None
    try:
        dek = share_dek(session, rt, share)
        return open_text(dek, share.key_id, field, share.id, sealed)
    except (Gone, crypto.DecryptionError):
        return None


def title_of(session: Session, rt: Runtime, share: Share) -> str | None:
    return _sealed_field(session, rt, share, "title")


def note_of(session: Session, rt: Runtime, share: Share) -> str | None:
    return _sealed_field(session, rt, share, "note")


def purpose_of(session: Session, rt: Runtime, share: Share) -> str | None:
    """The purpose while the share lives; None once it is shredded."""
    return _sealed_field(session, rt, share, "purpose")


def redactions_of(session: Session, rt: Runtime, share: Share) -> list[dict[str, Any]] | None:
    """What the employee hid, as applied ([] for nothing); None once the share is shredded."""
    if not share.status.active:
        return None
    if share.redactions_sealed is None:
        return []
    try:
        dek = share_dek(session, rt, share)
        value = open_json(dek, share.key_id, "redactions", share.id, share.redactions_sealed)
    except (Gone, crypto.DecryptionError):
        return None
    return list(value)


def receipt_of(session: Session, rt: Runtime, share: Share) -> str | None:
    """The signed consent receipt while the share lives (its owner holds their copy)."""
    return _sealed_field(session, rt, share, "receipt")


def present(session: Session, rt: Runtime, share: Share, viewer: User) -> dict[str, Any]:
    is_owner = share.owner_id == viewer.id
    if not is_owner and has_ended(share):
        return {"id": share.id, "status": ENDED}
    data: dict[str, Any] = {
        "id": share.id,
        "recording_id": share.recording_id,
        "status": share.status.value,
        "progress": share.progress,
        "error": job_messages.in_reader_language(share.error),
        "coach_ids": share.coach_ids,
        "coaches": [{"id": g.coach.id, "name": g.coach.name} for g in share.grantees],
        "employee": {"id": share.owner.id, "name": share.owner.name},
        "purpose": purpose_of(session, rt, share),
        "title": title_of(session, rt, share),
        "note": note_of(session, rt, share),
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "ended_at": share.ended_at,
        "duration_s": share.duration_s,
        "trim": (
            {"start_s": share.trim_start_s, "end_s": share.trim_end_s}
            if share.trim_end_s is not None
            else None
        ),
        "include_customer_audio": share.include_customer_audio,
        "redactions": redactions_of(session, rt, share),
        "playable": is_viewable(share),
    }
    if is_owner:
        data["receipt"] = receipt_of(session, rt, share)
        data["certificate"] = share.certificate
    return data


# --- comments -------------------------------------------------------------------------------


def list_comments(session: Session, rt: Runtime, share: Share) -> list[dict[str, Any]]:
    if not share.status.active:
        return []
    dek = share_dek(session, rt, share)
    rows = session.scalars(
        select(Comment)
        .where(Comment.share_id == share.id)
        .order_by(Comment.at_s, Comment.created_at)
    )
    out = []
    for row in rows:
        body = open_text(dek, share.key_id, f"comment:{row.id}", share.id, row.body_sealed)
        out.append(
            {
                "id": row.id,
                "at_s": row.at_s,
                "body": body,
                "author": {"id": row.author.id, "name": row.author.name},
                "created_at": row.created_at,
            }
        )
    return out


def add_comment(
    session: Session, rt: Runtime, share: Share, author: User, at_s: float, body: str
) -> dict[str, Any]:
    if has_ended(share):
        raise Gone(ENDED_MESSAGE, code="share_ended")
    body = text.check("comment", body, multiline=True)
    if not body:
        raise InvalidRequest(_("A comment needs some text."), code="comment_empty")
    if len(body) > MAX_COMMENT:
        raise InvalidRequest(
            _("A comment can have at most %(most)s characters.", most=MAX_COMMENT),
            code="comment_too_long",
        )
    if at_s < 0 or (share.duration_s is not None and at_s > share.duration_s + 1):
        raise InvalidRequest(_("at_s must be a time within the recording."), code="invalid_time")
    dek = share_dek(session, rt, share)
    comment = Comment(
        id=uuid.uuid4(), share_id=share.id, author_id=author.id, at_s=round(float(at_s), 3)
    )
    comment.body_sealed = seal_text(dek, share.key_id, f"comment:{comment.id}", share.id, body)
    session.add(comment)
    session.flush()
    audit.append(
        session,
        "comment.added",
        actor_id=author.id,
        share_id=share.id,
        detail={"at_s": comment.at_s},
    )
    return {
        "id": comment.id,
        "at_s": comment.at_s,
        "body": body,
        "author": {"id": author.id, "name": author.name},
        "created_at": comment.created_at,
    }


# --- access log -----------------------------------------------------------------------------


def access_log(session: Session, share: Share) -> dict[str, Any]:
    """Every access event of a share, and each viewing session's ranges and time watched."""
    events = []
    for event in session.scalars(
        select(AuditEvent).where(AuditEvent.share_id == share.id).order_by(AuditEvent.seq)
    ):
        events.append(
            {
                "at": event.at,
                "actor_id": event.actor_id,
                "actor_name": _name(session, event.actor_id),
                "action": event.action,
                "detail": event.detail,
            }
        )
    views = []
    for view in session.scalars(
        select(ViewSession).where(ViewSession.share_id == share.id).order_by(ViewSession.started_at)
    ):
        views.append(
            {
                "id": view.id,
                "viewer_id": view.viewer_id,
                "viewer_name": view.viewer.name,
                "started_at": view.started_at,
                "last_seen_at": view.last_seen_at,
                "seconds_watched": round(view.seconds_watched, 1),
                "bytes_served": view.bytes_served,
                "ranges": view.ranges,
            }
        )
    return {"share_id": share.id, "events": events, "views": views}


def _name(session: Session, user_id: uuid.UUID | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.name if user else None
