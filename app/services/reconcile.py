"""Reconcile the object store against the database.

An object with no row is deleted once it is older than the longest upload or job could take
(a younger one may belong to an upload in progress). A row whose object is missing is
reported, not guessed at.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.models import MediaObject, utcnow
from app.runtime import Runtime

MIN_ORPHAN_AGE = timedelta(hours=2)


def reconcile(rt: Runtime, *, min_orphan_age: timedelta = MIN_ORPHAN_AGE) -> dict:
    with rt.db.session() as session:
        known = set(session.scalars(select(MediaObject.name)))
    cutoff = utcnow() - min_orphan_age
    seen: set[str] = set()
    orphans_deleted: list[str] = []
    for prefix in ("recordings/", "shares/"):
        for info in rt.store.scan(prefix):
            seen.add(info.name)
            if info.name not in known and info.modified < cutoff:
                rt.store.delete(info.name)
                orphans_deleted.append(info.name)
    missing = sorted(known - seen)
    return {
        "objects": len(seen),
        "rows": len(known),
        "orphans_deleted": len(orphans_deleted),
        "missing": len(missing),
        "missing_names": missing[:50],
    }
