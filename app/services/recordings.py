"""Recordings: an employee's own raw captures, private drafts until they choose to share."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app import jobs
from app.db import after_commit
from app.models import MediaObject, Recording, RecordingStatus, Share, User, utcnow
from app.runtime import Runtime
from app.services import audit, job_messages, keys, policy, shredding, text, uploads
from app.services.errors import InvalidRequest, NotFound, PayloadTooLarge
from app.services.i18n import _
from app.services.ingest import FILE_FIELDS, IngestResult, StoredPart, discard
from app.services.sealing import open_json, open_text, seal_json, seal_text

AGENT_CHANNELS = ("left", "right", "mono")


def _parse_bool(name: str, raw: str | None) -> bool:
    if raw is None or raw == "":
        return False
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise InvalidRequest(_("%(name)s must be true or false.", name=name), code="invalid_field")


def validate_fields(fields: dict[str, str]) -> dict[str, Any]:
    title = text.check("title", fields.get("title") or "")
    if len(title) > 200:
        raise InvalidRequest(_("The title can have at most 200 characters."), code="invalid_field")
    channel = (fields.get("agent_channel") or "left").strip().lower()
    if channel not in AGENT_CHANNELS:
        raise InvalidRequest(_("agent_channel must be left, right or mono."), code="invalid_field")
    return {
        "title": title or "Untitled recording",
        "agent_channel": channel,
        "customer_informed": _parse_bool("customer_informed", fields.get("customer_informed")),
    }


def create_recording(session: Session, rt: Runtime, owner: User, upload: IngestResult) -> Recording:
    """Record a finished upload as a draft; its objects are already stored, encrypted."""
    fields = validate_fields(upload.fields)
    current = policy.current_policy(session)
    if upload.total_size > current.max_upload_bytes:
        # The store already holds it; the caller deletes the objects when this raises.
        raise PayloadTooLarge(
            _(
                "The upload is larger than the policy limit of %(limit)s MiB.",
                limit=current.max_upload_bytes // (1 << 20),
            ),
            code="upload_too_large",
        )
    if not upload.key_stored:
        keys.store_data_key(
            session, rt.kek, key_id=upload.key_id, dek=upload.dek, owner_id=owner.id
        )
    now = utcnow()
    recording = Recording(
        id=upload.recording_id,
        owner_id=owner.id,
        key_id=upload.key_id,
        title_sealed=seal_text(
            upload.dek, upload.key_id, "title", upload.recording_id, fields["title"]
        ),
        agent_channel=fields["agent_channel"],
        customer_informed=fields["customer_informed"],
        media_sha256_sealed=seal_json(
            upload.dek,
            upload.key_id,
            "media_sha256",
            upload.recording_id,
            {p.field: p.plaintext_sha256 for p in upload.parts},
        ),
        size_bytes=upload.total_size,
        created_at=now,
        expires_at=now + timedelta(hours=current.draft_lifetime_hours),
    )
    session.add(recording)
    session.flush()
    for part in upload.parts:
        session.add(
            MediaObject(
                id=part.object_id,
                recording_id=recording.id,
                kind=part.field,
                name=part.name,
                content_type="application/octet-stream",
                stored_size=part.stored_size,
                plaintext_size=part.plaintext_size,
                stored_sha256=part.stored_sha256,
                container=part.container,
                key_id=part.key_id if part.key_id not in (None, recording.key_id) else None,
            )
        )
    audit.append(
        session,
        "recording.created",
        actor_id=owner.id,
        recording_id=recording.id,
        detail={"parts": [p.field for p in upload.parts], "bytes": upload.total_size},
    )
    recording_id = str(recording.id)
    after_commit(session, lambda: rt.jobs.send(jobs.PROBE_RECORDING, recording_id))
    return recording


def create_from_uploads(
    session: Session,
    rt: Runtime,
    owner: User,
    upload_ids: dict[str, str],
    fields: dict[str, str],
) -> tuple[Recording, IngestResult]:
    """A draft from finished resumable uploads (SPEC §16). Each upload is joined into the
    recording's object and keeps its data key: the first one's is the recording's key (the
    title is sealed under it); a second upload's is recorded on its object. The caller commits,
    or deletes the result's objects (``ingest.discard``) if that fails."""
    if not upload_ids:
        raise InvalidRequest(
            _("Name at least one finished upload: upload_ids.screen and/or upload_ids.audio."),
            code="no_media",
        )
    validate_fields(fields)
    ordered = {f: upload_ids[f] for f in FILE_FIELDS if f in upload_ids}
    recording_id = uploads.recording_id_for(session, owner, ordered)
    taken = uploads.take_for_recording(session, rt, owner, ordered, recording_id)
    first = taken[0]
    result = IngestResult(
        recording_id=recording_id,
        key_id=first.key_id,
        dek=keys.load_data_key(session, rt.kek, rt.key_cache, first.key_id),
        fields=fields,
        key_stored=True,
        parts=[
            StoredPart(
                field=t.field,
                object_id=t.object_id,
                name=t.name,
                container=t.container,
                plaintext_size=t.plaintext_size,
                stored_size=t.stored_size,
                plaintext_sha256=t.plaintext_sha256,
                stored_sha256=t.stored_sha256,
                key_id=t.key_id,
                in_place=t.in_place,
            )
            for t in taken
        ],
    )
    try:
        recording = create_recording(session, rt, owner, result)
    except BaseException:
        discard(rt.store, result)
        raise
    return recording, result


def object_key_id(recording: Recording, obj: MediaObject) -> uuid.UUID:
    """The data key a recording's object is sealed under (its own, or the recording's)."""
    return obj.key_id or recording.key_id


def get_own(
    session: Session, owner: User, recording_id: uuid.UUID | str, *, lock: bool = False
) -> Recording:
    try:
        rid = uuid.UUID(str(recording_id))
    except ValueError:
        raise NotFound("recording") from None
    query = select(Recording).where(Recording.id == rid, Recording.owner_id == owner.id)
    if lock:
        query = query.with_for_update()
    recording = session.scalar(query)
    if recording is None:
        raise NotFound("recording")
    return recording


def list_own(session: Session, owner: User, *, include_deleted: bool = False) -> list[Recording]:
    query = select(Recording).where(Recording.owner_id == owner.id)
    if not include_deleted:
        query = query.where(Recording.status == RecordingStatus.DRAFT)
    return list(session.scalars(query.order_by(Recording.created_at.desc())))


def title_of(session: Session, rt: Runtime, recording: Recording) -> str | None:
    if recording.title_sealed is None:
        return None
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, recording.key_id)
        return open_text(dek, recording.key_id, "title", recording.id, recording.title_sealed)
    except (keys.KeyDestroyed, crypto.DecryptionError):
        return None


def media_sha256_of(session: Session, rt: Runtime, recording: Recording) -> dict[str, str] | None:
    """The SHA-256 of each uploaded part, while the recording lives (sealed under its key)."""
    if recording.media_sha256_sealed is None:
        return None
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, recording.key_id)
        hashes = open_json(
            dek, recording.key_id, "media_sha256", recording.id, recording.media_sha256_sealed
        )
    except (keys.KeyDestroyed, crypto.DecryptionError):
        return None
    return dict(hashes)


def present(session: Session, rt: Runtime, recording: Recording) -> dict[str, Any]:
    active_shares = [s for s in recording.shares if s.status.active]
    return {
        "id": recording.id,
        "status": recording.status.value,
        "title": title_of(session, rt, recording),
        "created_at": recording.created_at,
        "expires_at": recording.expires_at,
        "deleted_at": recording.deleted_at,
        "duration_s": recording.duration_s,
        "size_bytes": recording.size_bytes,
        "has_video": recording.has_video,
        "audio_channels": recording.audio_channels,
        "agent_channel": recording.agent_channel,
        "customer_informed": recording.customer_informed,
        "probe_status": recording.probe_status,
        "probe_error": job_messages.in_reader_language(recording.probe_error),
        "media_sha256": media_sha256_of(session, rt, recording),
        "parts": sorted(o.kind for o in recording.objects),
        "share_ids": [s.id for s in active_shares],
        "certificate": recording.certificate,
    }


def delete_recording(
    session: Session, rt: Runtime, owner: User, recording_id: uuid.UUID | str
) -> Recording:
    """Shred a recording: end its shares, destroy its key, delete its objects."""
    recording = get_own(session, owner, recording_id)
    rid = recording.id
    share_ids = [s.id for s in session.scalars(select(Share).where(Share.recording_id == rid))]
    session.rollback()
    for share_id in share_ids:
        shredding.end_share(rt, share_id, reason="recording_deleted", actor_id=owner.id)
    shredding.shred_recording(rt, rid, reason="deleted_by_owner", actor_id=owner.id)
    return session.get_one(Recording, rid, populate_existing=True)
