"""Reconcile the object store against the database.

- An object with no row is deleted once it is older than the longest upload or job could take
  (a younger one may belong to an upload in progress).
- An object whose recording was deleted, or whose share has ended, is deleted with its row,
  whatever its age: its key is already destroyed, so it is unreadable, and it must not stay.
  (Normally shredding deletes it at once; this catches a deletion the store refused.)
- A row whose object is missing is reported, not guessed at.
- The pieces of resumable uploads (``uploads/``) count as known while their upload lives; a
  piece whose upload was deleted or joined into a recording is an orphan like any other.
- On S3, a multipart upload that no live upload holds (its abort failed when the upload was
  cancelled or expired) is aborted once it is as old as an orphan: its parts are sealed under
  a shredded key, and the store would keep them, unlisted, until a lifecycle rule ends them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.models import MediaObject, Recording, RecordingStatus, Share, ShareStatus, utcnow
from app.runtime import Runtime
from app.services import uploads
from app.storage import PartStore

MIN_ORPHAN_AGE = timedelta(hours=2)
PREFIXES = ("recordings/", "shares/", "uploads/")


def _names_of_ended(session: Session) -> set[str]:
    ended_share = select(Share.id).where(
        Share.status.in_([ShareStatus.REVOKED, ShareStatus.EXPIRED])
    )
    deleted_recording = select(Recording.id).where(Recording.status == RecordingStatus.DELETED)
    return set(
        session.scalars(
            select(MediaObject.name).where(
                or_(
                    MediaObject.share_id.in_(ended_share),
                    MediaObject.recording_id.in_(deleted_recording),
                )
            )
        )
    )


def reconcile(rt: Runtime, *, min_orphan_age: timedelta = MIN_ORPHAN_AGE) -> dict[str, Any]:
    with rt.db.session() as session:
        known = set(session.scalars(select(MediaObject.name)))
        known |= uploads.known_piece_names(session)  # the pieces of resumable uploads
        ended = _names_of_ended(session)
    cutoff = utcnow() - min_orphan_age
    seen: set[str] = set()
    orphans_deleted: list[str] = []
    for prefix in PREFIXES:
        for info in rt.store.scan(prefix):
            seen.add(info.name)
            if info.name in ended or (info.name not in known and info.modified < cutoff):
                rt.store.delete(info.name)
                orphans_deleted.append(info.name)
    if ended:
        with rt.db.session() as session:
            session.execute(delete(MediaObject).where(MediaObject.name.in_(ended)))
    missing = sorted(known - seen - ended)
    return {
        "objects": len(seen),
        "rows": len(known),
        "orphans_deleted": len(orphans_deleted),
        "multipart_aborted": _abort_abandoned_parts(rt, cutoff),
        "ended_deleted": len(ended & seen),
        "missing": len(missing),
        "missing_names": missing[:50],
    }


def _abort_abandoned_parts(rt: Runtime, cutoff: datetime) -> int:
    """Abort the S3 multipart uploads under ``recordings/`` started before ``cutoff`` that no
    live upload holds; how many. (A younger one may be a PATCH between opening it and
    recording its id.)"""
    if not getattr(rt.store, "supports_parts", False):
        return 0
    store = cast(PartStore, rt.store)
    with rt.db.session() as session:
        held = uploads.open_multipart_ids(session)
    aborted = 0
    for name, upload_id in store.open_parts("recordings/", started_before=cutoff):
        if upload_id not in held:
            store.abort_parts(name, upload_id)
            aborted += 1
    return aborted
