"""Data keys in the database: create, load (through the short-lived cache), shred, rotate.

Rotating and retiring KEK versions is written once here, audit event included, for both the
command line (no actor) and the admin API (the admin as actor).

A data key (DEK) exists in the clear only in memory. In the database it is wrapped by a KEK
version from the keyring, with its key id and owner id bound in the wrap's associated data.
Shredding deletes the wrapped row in the caller's transaction and evicts the cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

import crypto
from app.db import Database
from app.models import DataKey
from app.services import audit


class KeyDestroyed(Exception):
    """The data key is gone: its content can never be decrypted again."""


class _RowStore:
    """crypto.WrappedKeyStore over the data_keys table, inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def delete(self, key_id: str) -> bool:
        result = self._session.execute(delete(DataKey).where(DataKey.id == uuid.UUID(key_id)))
        return bool(cast(CursorResult[Any], result).rowcount)


def create_data_key(
    session: Session, kek: crypto.KekProvider, *, owner_id: uuid.UUID
) -> tuple[uuid.UUID, bytes]:
    key_id, dek = uuid.uuid4(), crypto.new_data_key()
    store_data_key(session, kek, key_id=key_id, dek=dek, owner_id=owner_id)
    return key_id, dek


def store_data_key(
    session: Session, kek: crypto.KekProvider, *, key_id: uuid.UUID, dek: bytes, owner_id: uuid.UUID
) -> None:
    wrapped = crypto.wrap(kek, dek, key_id=str(key_id), owner_id=str(owner_id))
    session.add(
        DataKey(id=key_id, owner_id=owner_id, kek_version=wrapped.kek_version, wrapped=wrapped.blob)
    )


def load_data_key(
    session: Session, kek: crypto.KekProvider, cache: crypto.DataKeyCache, key_id: uuid.UUID
) -> bytes:
    cached = cache.get(str(key_id))
    if cached is not None:
        return cached
    row = session.get(DataKey, key_id, populate_existing=True)
    if row is None:
        raise KeyDestroyed(str(key_id))
    dek = crypto.unwrap(
        kek,
        crypto.WrappedKey(kek_version=row.kek_version, blob=row.wrapped),
        key_id=str(key_id),
        owner_id=str(row.owner_id),
    )
    cache.put(str(key_id), dek)
    return dek


def shred_data_key(session: Session, cache: crypto.DataKeyCache, key_id: uuid.UUID) -> bool:
    """Delete the wrapped key (no soft delete) and evict it; True if a row was deleted."""
    return crypto.shred(_RowStore(session), str(key_id), cache)


@dataclass(frozen=True)
class RotationReport:
    new_version: int
    rewrapped: int
    skipped: int


def rotate(
    db: Database,
    kek: crypto.KekProvider,
    *,
    actor_id: uuid.UUID | None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Add a KEK version, rewrap every live DEK under it (one committed batch at a time), and
    audit it as ``keys.rotated`` by ``actor_id`` (None: an operator at the command line)."""
    new_version = kek.add_version()
    rewrapped = skipped = 0
    last_id: uuid.UUID | None = None
    while True:
        with db.session() as session:
            query = select(DataKey).where(DataKey.kek_version != new_version)
            if last_id is not None:
                query = query.where(DataKey.id > last_id)
            rows = session.scalars(query.order_by(DataKey.id).limit(batch_size)).all()
            if not rows:
                break
            for row in rows:
                fresh = crypto.rewrap(
                    kek,
                    crypto.WrappedKey(kek_version=row.kek_version, blob=row.wrapped),
                    key_id=str(row.id),
                    owner_id=str(row.owner_id),
                )
                # Conditional on the old version: a key shredded meanwhile stays shredded.
                result = session.execute(
                    update(DataKey)
                    .where(DataKey.id == row.id, DataKey.kek_version == row.kek_version)
                    .values(kek_version=fresh.kek_version, wrapped=fresh.blob)
                    .execution_options(synchronize_session=False)
                )
                if cast(CursorResult[Any], result).rowcount:
                    rewrapped += 1
                else:
                    skipped += 1
            last_id = rows[-1].id
        if progress is not None:
            progress(len(rows))
    with db.session() as session:
        audit.append(
            session,
            "keys.rotated",
            actor_id=actor_id,
            detail={"new_version": new_version, "rewrapped": rewrapped},
        )
    return RotationReport(new_version=new_version, rewrapped=rewrapped, skipped=skipped)


def usage_by_version(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(DataKey.kek_version, func.count()).group_by(DataKey.kek_version)
    ).all()
    return {int(version): int(count) for version, count in rows}


def retire(db: Database, kek: crypto.KekProvider, *, actor_id: uuid.UUID | None) -> list[int]:
    """Destroy every KEK version that is not current and wraps no live DEK, and audit it as
    ``keys.retired`` by ``actor_id`` (None: an operator at the command line)."""
    with db.session() as session:
        in_use = usage_by_version(session)
    current = kek.current_version()
    destroyed = []
    for info in kek.versions():
        if info.state == "destroyed" or info.version == current or in_use.get(info.version):
            continue
        kek.destroy_version(info.version)
        destroyed.append(info.version)
    with db.session() as session:
        audit.append(session, "keys.retired", actor_id=actor_id, detail={"destroyed": destroyed})
    return destroyed


def status(db: Database, kek: crypto.KekProvider) -> list[dict[str, Any]]:
    with db.session() as session:
        in_use = usage_by_version(session)
    current = kek.current_version()
    return [
        {
            "version": info.version,
            "state": info.state,
            "current": info.version == current,
            "created_at": info.created_at,
            "data_keys": in_use.get(info.version, 0),
            "in_use": bool(in_use.get(info.version)),
        }
        for info in kek.versions()
    ]
