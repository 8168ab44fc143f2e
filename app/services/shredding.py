"""Ending consent: revoke, expiry and deletion all take this one path (SPEC §2.4, §8).

1. One transaction locks the row and makes the transition (``lifecycle.end_share`` /
   ``lifecycle.delete_recording``): marked ended, wrapped data key deleted, sealed comments
   dropped, audit event appended. From its commit on, nothing can decrypt the content: every
   media request re-checks the share's state for each batch of chunks.
2. The objects are deleted and their absence checked (each name, then the whole prefix).
3. A deletion certificate is signed and stored once; every repeat answers that same one.

If the store is down at step 2, the key is already gone (the content is unreadable), the
certificate says the object check is pending, and a background job finishes the deletion
(``delete_objects`` for a share, ``delete_recording_objects`` for a recording).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.orm import Session

import crypto
from app import jobs
from app.models import (
    AuditEvent,
    MediaObject,
    Recording,
    RecordingStatus,
    Share,
    ShareStatus,
    utcnow,
)
from app.runtime import Runtime
from app.services import audit, lifecycle, revocations
from app.storage import ObjectStore, StorageError

log = logging.getLogger(__name__)
_deleter = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shred")
# How long a repeated revoke waits for the first one's certificate before finishing the job
# itself (the first normally stores it within a fraction of a second).
CERTIFICATE_WAIT_S = 10.0


@dataclass(frozen=True)
class ShareEnd:
    share_id: uuid.UUID
    status: ShareStatus
    ended_at: datetime
    key_destroyed: bool
    certificate: str | None
    # Every web process has confirmed it knows of the end (NOTIFY, or the local bus), so the
    # answer need not wait for their polls (revocations.settle).
    known_everywhere: bool = True
    # Seconds spent in each step of this ending (for the response's Server-Timing header).
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AbsenceCheck:
    deleted: list[str]
    verified: bool
    detail: str

    def claim(self, checked_at: datetime) -> dict[str, Any]:
        return {
            "method": "DELETE the objects, then LIST the prefix (HEAD any name outside it)",
            "checked_at": checked_at.isoformat(timespec="seconds"),
            "all_absent": self.verified,
            "detail": self.detail,
        }


def delete_and_verify(store: ObjectStore, names: list[str], prefix: str) -> AbsenceCheck:
    """Delete the objects (one multi-object request), then check that none is left.

    One LIST of the prefix checks every name under it (and finds strays, such as an upload a
    job finished after the names were read); a name outside the prefix, which the layout does
    not make, would get a HEAD of its own. Fewer requests than a HEAD per name, in one round.
    """
    try:
        store.delete_many(names)
        outside = [name for name in names if not name.startswith(prefix)]
        listing = _deleter.submit(lambda: list(store.list(prefix)))
        present = [
            name
            for name, there in zip(outside, _deleter.map(store.exists, outside), strict=True)
            if there
        ]
        leftovers = listing.result()
        if leftovers:  # e.g. an upload the job finished after the names were read
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
    if rt.db.engine.dialect.name == "postgresql":
        return _end_share_at_once(rt, share_id, reason=reason, actor_id=actor_id)
    with rt.db.session() as session:
        share = session.scalar(select(Share).where(Share.id == share_id).with_for_update())
        if share is None:
            raise LookupError(share_id)
        earlier = None
        if not share.status.active:
            earlier = ShareEnd(
                share.id, share.status, share.ended_at or share.created_at, True, share.certificate
            )
        else:
            ended = lifecycle.end_share(
                session, share, reason=reason, actor_id=actor_id, key_cache=rt.key_cache
            )
            names = _object_names(session, MediaObject.share_id == share.id)
            status, now = share.status, ended.ended_at
            owner_id, key_id, recording_id = share.owner_id, share.key_id, share.recording_id
    if earlier is not None:
        # Outside the row lock: the first ending needs it to store its certificate.
        return earlier if earlier.certificate is not None else _await_certificate(rt, earlier)
    # Committed: streams in this process stop before their next write (the others learn of it
    # by NOTIFY or the local bus, else by their poll). The key row is gone; evict again in
    # case a reader cached it.
    rt.ended.mark([share_id])
    known = revocations.tell_others(rt.db, rt.settings.instance_dir, [share_id])
    rt.key_cache.evict(str(key_id))
    stored = _delete_and_certify(
        rt, share_id, names, owner_id, key_id, recording_id, destroyed_at=now, reason=reason
    )
    return ShareEnd(share_id, status, now, True, stored, known)


def _end_share_at_once(
    rt: Runtime, share_id: uuid.UUID, *, reason: str, actor_id: uuid.UUID | None
) -> ShareEnd:
    """PostgreSQL: step 1 is one statement in its own transaction (one round trip), then the
    same follow-up as :func:`end_share`."""
    started = time.perf_counter()
    ended = lifecycle.end_share_at_once(
        rt.db, share_id, reason=reason, actor_id=actor_id, key_cache=rt.key_cache
    )
    timings = {"end": time.perf_counter() - started}
    if ended is None:
        raise LookupError(share_id)
    if not ended.ended:
        earlier = ShareEnd(share_id, ended.status, ended.ended_at, True, ended.certificate)
        return earlier if earlier.certificate is not None else _await_certificate(rt, earlier)
    rt.ended.mark([share_id])  # NOTIFY tells the other processes on commit
    stored = _delete_and_certify(
        rt,
        share_id,
        ended.names,
        ended.owner_id,
        ended.key_id,
        ended.recording_id,
        destroyed_at=ended.ended_at,
        reason=reason,
        timings=timings,
    )
    return ShareEnd(share_id, ended.status, ended.ended_at, True, stored, timings=timings)


def _delete_and_certify(
    rt: Runtime,
    share_id: uuid.UUID,
    names: list[str],
    owner_id: uuid.UUID,
    key_id: uuid.UUID,
    recording_id: uuid.UUID,
    *,
    destroyed_at: datetime,
    reason: str,
    timings: dict[str, float] | None = None,
) -> str | None:
    """Steps 2 and 3: delete and check the objects, sign the certificate, store it once.

    Returns the stored certificate (this one, or one stored first by a concurrent call).
    ``timings`` gets the seconds of each step: store, sign, certify.
    """
    clock = [time.perf_counter()]

    def lap(step: str) -> None:
        clock.append(time.perf_counter())
        if timings is not None:
            timings[step] = clock[-1] - clock[-2]

    check = delete_and_verify(rt.store, names, f"shares/{share_id}/")
    lap("store")
    certificate = _sign_certificate(
        rt,
        subject_type="share",
        subject_id=share_id,
        owner_id=owner_id,
        key_id=key_id,
        destroyed_at=destroyed_at,
        reason=reason,
        check=check,
        extra={"recording": str(recording_id)},
    )
    lap("sign")
    stored = _store_certificate(rt, share_id, certificate, check, len(names))
    lap("certify")
    if not check.verified:
        rt.jobs.send(jobs.DELETE_OBJECTS, str(share_id))
    return stored


# PostgreSQL: the certificate's transaction as one statement (in autocommit). The objects'
# rows go if their absence was verified, the certificate is stored unless one was first, and
# the audit event is appended; the answer is the stored certificate (NULL if a concurrent call
# stored one after this statement's snapshot: read it then).
_STORE_CERTIFICATE = text(
    "WITH gone AS (DELETE FROM media_objects WHERE share_id = CAST(:share AS uuid) "  # noqa: S608
    "AND CAST(:verified AS boolean)), "
    "stored AS (UPDATE shares SET certificate = :certificate WHERE id = CAST(:share AS uuid) "
    "AND certificate IS NULL RETURNING certificate) "
    f"SELECT (SELECT certificate FROM stored) AS stored, {audit.APPEND_CALL} AS seq"
).bindparams(*audit.APPEND_TYPES)


def _store_certificate(
    rt: Runtime, share_id: uuid.UUID, certificate: str, check: AbsenceCheck, objects: int
) -> str | None:
    """Store the certificate once, drop the rows of verified-absent objects, audit it;
    returns the stored certificate (this one, or one stored first by a concurrent call)."""
    action = "share.objects_deleted" if check.verified else "share.objects_pending"
    detail = {"objects": objects}
    params = audit.database_append_params(action, None, share_id, None, detail, utcnow())
    if rt.db.engine.dialect.name == "postgresql" and params is not None:
        with rt.db.engine.connect() as connection:
            found = (
                connection.execution_options(isolation_level="AUTOCOMMIT")
                .execute(
                    _STORE_CERTIFICATE,
                    {**params, "verified": check.verified, "certificate": certificate},
                )
                .scalar_one()
            )
        if found is not None:
            return cast(str, found)
        with rt.db.session() as session:
            return session.scalar(select(Share.certificate).where(Share.id == share_id))
    with rt.db.session() as session:
        if check.verified:
            session.execute(delete(MediaObject).where(MediaObject.share_id == share_id))
        stored = session.scalar(
            update(Share)
            .where(Share.id == share_id, Share.certificate.is_(None))
            .values(certificate=certificate)
            .returning(Share.certificate)
        )
        if stored is None:  # a concurrent call stored one first: that one it is
            stored = session.scalar(select(Share.certificate).where(Share.id == share_id))
        audit.append(session, action, share_id=share_id, detail=detail)
    return stored


def _await_certificate(rt: Runtime, earlier: ShareEnd) -> ShareEnd:
    """A repeat that came while the first ending was still deleting objects (a double click):
    answer with the first ending's certificate once it is stored. Should the first never store
    one (its process died between the commit and the certificate), finish the job here."""
    deadline = time.monotonic() + CERTIFICATE_WAIT_S
    while True:
        with rt.db.session() as session:
            share = session.get_one(Share, earlier.share_id, populate_existing=True)
            if share.certificate is not None:
                return replace(earlier, certificate=share.certificate)
            facts = (share.owner_id, share.key_id, share.recording_id)
            names = _object_names(session, MediaObject.share_id == share.id)
            first = session.scalar(
                select(AuditEvent)
                .where(
                    AuditEvent.share_id == share.id,
                    AuditEvent.action.in_(("share.revoked", "share.expired")),
                )
                .order_by(AuditEvent.seq)
                .limit(1)
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    log.warning("share %s ended without a certificate; finishing its deletion", earlier.share_id)
    reason = (first.detail or {}).get("reason") if first is not None else None
    stored = _delete_and_certify(
        rt,
        earlier.share_id,
        names,
        *facts,
        destroyed_at=earlier.ended_at,
        reason=reason or earlier.status.value,
    )
    return replace(earlier, certificate=stored)


def finish_share_deletion(rt: Runtime, share_id: uuid.UUID) -> bool:
    """Background completion of an object deletion that the store refused at revoke time."""
    return _finish_deletion(
        rt, MediaObject.share_id == share_id, f"shares/{share_id}/", share_id=share_id
    )


def _finish_deletion(
    rt: Runtime,
    condition: ColumnElement[bool],
    prefix: str,
    *,
    share_id: uuid.UUID | None = None,
    recording_id: uuid.UUID | None = None,
) -> bool:
    """Delete and check the objects a refused deletion left; StorageError (retry) if any stay."""
    with rt.db.session() as session:
        names = _object_names(session, condition)
    check = delete_and_verify(rt.store, names, prefix)
    if not check.verified:
        raise StorageError(check.detail)
    with rt.db.session() as session:
        session.execute(delete(MediaObject).where(condition))
        audit.append(
            session,
            "share.objects_deleted" if share_id else "recording.objects_deleted",
            share_id=share_id,
            recording_id=recording_id,
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
        ended = lifecycle.delete_recording(
            session, recording, reason=reason, actor_id=actor_id, key_cache=rt.key_cache
        )
        names = _object_names(session, MediaObject.recording_id == recording.id)
        owner_id, key_id = recording.owner_id, recording.key_id
    rt.key_cache.evict(str(key_id))
    check = delete_and_verify(rt.store, names, f"recordings/{recording_id}/")
    certificate = _sign_certificate(
        rt,
        subject_type="recording",
        subject_id=recording_id,
        owner_id=owner_id,
        key_id=key_id,
        destroyed_at=ended.ended_at,
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
        audit.append(
            session,
            "recording.objects_deleted" if check.verified else "recording.objects_pending",
            recording_id=recording_id,
            detail={"objects": len(names)},
        )
    if not check.verified:
        # The key is gone (the ciphertext is unreadable); the objects still go, in the background.
        rt.jobs.send(jobs.DELETE_RECORDING_OBJECTS, str(recording_id))
    return certificate


def finish_recording_deletion(rt: Runtime, recording_id: uuid.UUID) -> bool:
    """Background completion of a recording's object deletion that the store refused."""
    return _finish_deletion(
        rt,
        MediaObject.recording_id == recording_id,
        f"recordings/{recording_id}/",
        recording_id=recording_id,
    )


def _object_names(session: Session, condition: ColumnElement[bool]) -> list[str]:
    return list(session.scalars(select(MediaObject.name).where(condition)))


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
