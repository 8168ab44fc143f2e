"""Ending consent: revoke, expiry and deletion all take this one path (SPEC §2.4, §8).

1. One transaction locks the row, marks it ended, deletes the wrapped data key, drops the
   sealed comments and appends the audit event. From its commit on, nothing can decrypt the
   content: every media request re-checks the share's state for each batch of chunks.
2. The objects are deleted and their absence checked (each name, then the whole prefix).
3. A deletion certificate is signed and stored once; every repeat answers that same one.

If the store is down at step 2, the key is already gone (the content is unreadable), the
certificate says the object check is pending, and a background job finishes the deletion.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

import crypto
from app import jobs
from app.models import (
    Comment,
    MediaObject,
    Recording,
    RecordingStatus,
    Share,
    ShareStatus,
    utcnow,
)
from app.runtime import Runtime
from app.services import audit, keys
from app.storage import ObjectStore, StorageError

log = logging.getLogger(__name__)
_deleter = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shred")

SHARE_END_STATUS = {
    "revoked": ShareStatus.REVOKED,
    "recording_deleted": ShareStatus.REVOKED,
    "expired": ShareStatus.EXPIRED,
}


@dataclass(frozen=True)
class ShareEnd:
    share_id: uuid.UUID
    status: ShareStatus
    ended_at: datetime
    key_destroyed: bool
    certificate: str | None


@dataclass(frozen=True)
class AbsenceCheck:
    deleted: list[str]
    verified: bool
    detail: str

    def claim(self, checked_at: datetime) -> dict[str, Any]:
        return {
            "method": "DELETE each object, then HEAD each name and LIST the prefix",
            "checked_at": checked_at.isoformat(timespec="seconds"),
            "all_absent": self.verified,
            "detail": self.detail,
        }


def delete_and_verify(store: ObjectStore, names: list[str], prefix: str) -> AbsenceCheck:
    """Delete objects in parallel, then check every name and the prefix are empty."""
    try:
        list(_deleter.map(store.delete, names))
        present = [
            name
            for name, there in zip(names, _deleter.map(store.exists, names), strict=True)
            if there
        ]
        leftovers = list(store.list(prefix))
        for name in leftovers:
            store.delete(name)
        leftovers = list(store.list(prefix))
    except StorageError as exc:
        log.warning("object deletion deferred: %s", exc)
        return AbsenceCheck(names, False, "object store unavailable; deletion retried later")
    if present or leftovers:
        return AbsenceCheck(names, False, f"{len(present) + len(leftovers)} object(s) remain")
    return AbsenceCheck(names, True, f"{len(names)} object(s) deleted, none found after")


def end_share(
    rt: Runtime, share_id: uuid.UUID, *, reason: str, actor_id: uuid.UUID | None
) -> ShareEnd:
    """Revoke or expire a share. Idempotent: a repeat returns the first outcome."""
    status = SHARE_END_STATUS[reason]
    with rt.db.session() as session:
        share = session.scalar(select(Share).where(Share.id == share_id).with_for_update())
        if share is None:
            raise LookupError(share_id)
        if not share.status.active:
            return ShareEnd(
                share.id, share.status, share.ended_at or share.created_at, True, share.certificate
            )
        now = utcnow()
        share.status = status
        share.ended_at = now
        share.job_lease_until = None
        share.title_sealed = None
        share.note_sealed = None
        destroyed = keys.shred_data_key(session, rt.key_cache, share.key_id)
        session.execute(delete(Comment).where(Comment.share_id == share.id))
        names = [
            o.name
            for o in session.scalars(select(MediaObject).where(MediaObject.share_id == share.id))
        ]
        audit.append(
            session,
            f"share.{'expired' if status is ShareStatus.EXPIRED else 'revoked'}",
            actor_id=actor_id,
            share_id=share.id,
            recording_id=share.recording_id,
            detail={"reason": reason, "key_destroyed": destroyed},
        )
        owner_id, key_id, recording_id = share.owner_id, share.key_id, share.recording_id
    # The key row is gone and committed; evict again in case a reader cached it meanwhile.
    rt.key_cache.evict(str(key_id))

    check = delete_and_verify(rt.store, names, f"shares/{share_id}/")
    certificate = _sign_certificate(
        rt,
        subject_type="share",
        subject_id=share_id,
        owner_id=owner_id,
        key_id=key_id,
        destroyed_at=now,
        reason=reason,
        check=check,
        extra={"recording": str(recording_id)},
    )
    with rt.db.session() as session:
        if check.verified:
            session.execute(delete(MediaObject).where(MediaObject.share_id == share_id))
        session.execute(
            update(Share)
            .where(Share.id == share_id, Share.certificate.is_(None))
            .values(certificate=certificate)
        )
        audit.append(
            session,
            "share.objects_deleted" if check.verified else "share.objects_pending",
            share_id=share_id,
            detail={"objects": len(names)},
        )
    if not check.verified:
        rt.jobs.send(jobs.DELETE_OBJECTS, str(share_id))
    with rt.db.session() as session:
        stored = session.scalar(select(Share.certificate).where(Share.id == share_id))
    return ShareEnd(share_id, status, now, True, stored)


def finish_share_deletion(rt: Runtime, share_id: uuid.UUID) -> bool:
    """Background completion of an object deletion that the store refused at revoke time."""
    with rt.db.session() as session:
        names = [
            o.name
            for o in session.scalars(select(MediaObject).where(MediaObject.share_id == share_id))
        ]
    check = delete_and_verify(rt.store, names, f"shares/{share_id}/")
    if not check.verified:
        raise StorageError(check.detail)
    with rt.db.session() as session:
        session.execute(delete(MediaObject).where(MediaObject.share_id == share_id))
        audit.append(
            session,
            "share.objects_deleted",
            share_id=share_id,
            detail={"objects": len(names), "deferred": True},
        )
    return True


def shred_recording(
    rt: Runtime, recording_id: uuid.UUID, *, reason: str, actor_id: uuid.UUID | None
) -> str | None:
    """Destroy a recording's key and objects; its shares must have been ended already."""
    with rt.db.session() as session:
        recording = session.scalar(
            select(Recording).where(Recording.id == recording_id).with_for_update()
        )
        if recording is None:
            raise LookupError(recording_id)
        if recording.status is RecordingStatus.DELETED:
            return recording.certificate
        now = utcnow()
        recording.status = RecordingStatus.DELETED
        recording.deleted_at = now
        recording.title_sealed = None
        destroyed = keys.shred_data_key(session, rt.key_cache, recording.key_id)
        names = [
            o.name
            for o in session.scalars(
                select(MediaObject).where(MediaObject.recording_id == recording.id)
            )
        ]
        audit.append(
            session,
            "recording.deleted",
            actor_id=actor_id,
            recording_id=recording.id,
            detail={"reason": reason, "key_destroyed": destroyed},
        )
        owner_id, key_id = recording.owner_id, recording.key_id
    rt.key_cache.evict(str(key_id))
    check = delete_and_verify(rt.store, names, f"recordings/{recording_id}/")
    certificate = _sign_certificate(
        rt,
        subject_type="recording",
        subject_id=recording_id,
        owner_id=owner_id,
        key_id=key_id,
        destroyed_at=now,
        reason=reason,
        check=check,
    )
    with rt.db.session() as session:
        if check.verified:
            session.execute(delete(MediaObject).where(MediaObject.recording_id == recording_id))
        session.execute(
            update(Recording)
            .where(Recording.id == recording_id, Recording.certificate.is_(None))
            .values(certificate=certificate)
        )
    return certificate


def _sign_certificate(
    rt: Runtime,
    *,
    subject_type: str,
    subject_id: uuid.UUID,
    owner_id: uuid.UUID,
    key_id: uuid.UUID,
    destroyed_at: datetime,
    reason: str,
    check: AbsenceCheck,
    extra: dict[str, Any] | None = None,
) -> str:
    now = utcnow()
    claims = {
        "iss": rt.settings.public_url,
        "sub": str(owner_id),
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        # Certificates are kept for good: the exp claim is far out, verification is by signature.
        "exp": int(now.timestamp()) + 100 * 365 * 86400,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "key_id": str(key_id),
        "key_destroyed": True,
        "destroyed_at": destroyed_at.isoformat(timespec="seconds"),
        "reason": reason,
        "objects_deleted": check.deleted,
        "absence_check": check.claim(now),
        **(extra or {}),
    }
    return crypto.sign(rt.keyring, claims, typ=crypto.CERTIFICATE_TYP)
