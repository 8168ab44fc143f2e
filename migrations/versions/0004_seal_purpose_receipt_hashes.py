"""the purpose, the stored receipt and the media's hashes sealed under their share's or
recording's key, so that shredding removes them too

Existing rows are converted: a live share's purpose and receipt, and a live recording's
hashes, are sealed under their own data key (unwrapped with the deployment's KEK provider,
read from the settings); those of shares and recordings already ended are dropped, as their
keys are gone. The downgrade opens them again where the key still exists.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = ("processing", "ready", "failed")
_shares = sa.table(
    "shares",
    sa.column("id", sa.Uuid),
    sa.column("key_id", sa.Uuid),
    sa.column("status", sa.String),
    sa.column("purpose", sa.Text),
    sa.column("receipt", sa.Text),
    sa.column("purpose_sealed", sa.LargeBinary),
    sa.column("receipt_sealed", sa.LargeBinary),
)
_recordings = sa.table(
    "recordings",
    sa.column("id", sa.Uuid),
    sa.column("key_id", sa.Uuid),
    sa.column("status", sa.String),
    sa.column("media_sha256", sa.JSON),
    sa.column("media_sha256_sealed", sa.LargeBinary),
)
_data_keys = sa.table(
    "data_keys",
    sa.column("id", sa.Uuid),
    sa.column("owner_id", sa.Uuid),
    sa.column("kek_version", sa.Integer),
    sa.column("wrapped", sa.LargeBinary),
)


class _Keys:
    """Unwraps data keys with the deployment's KEK provider, loaded on first use only (a
    database with nothing to convert needs no keyring)."""

    def __init__(self, bind: sa.engine.Connection) -> None:
        self._bind = bind
        self._kek: Any = None

    def dek(self, key_id: uuid.UUID) -> bytes | None:
        import crypto

        row = self._bind.execute(sa.select(_data_keys).where(_data_keys.c.id == key_id)).first()
        if row is None:
            return None  # shredded: nothing of it can be opened any more
        if self._kek is None:
            from app.config import load_settings
            from app.runtime import create_kek_provider

            settings = context.config.attributes.get("settings") or load_settings()
            self._kek = create_kek_provider(settings, crypto.FileKeyring(settings.keyring_path))
        return crypto.unwrap(
            self._kek,
            crypto.WrappedKey(kek_version=row.kek_version, blob=row.wrapped),
            key_id=str(key_id),
            owner_id=str(row.owner_id),
        )


def _seal_existing(bind: sa.engine.Connection) -> None:
    from app.services.sealing import seal_json, seal_text

    keys = _Keys(bind)
    for row in bind.execute(sa.select(_shares).where(_shares.c.status.in_(ACTIVE))).all():
        dek = keys.dek(row.key_id)
        if dek is None:
            continue
        bind.execute(
            _shares.update()
            .where(_shares.c.id == row.id)
            .values(
                purpose_sealed=seal_text(dek, row.key_id, "purpose", row.id, row.purpose),
                receipt_sealed=seal_text(dek, row.key_id, "receipt", row.id, row.receipt),
            )
        )
    for row in bind.execute(sa.select(_recordings).where(_recordings.c.status == "draft")).all():
        dek = keys.dek(row.key_id)
        if dek is None or row.media_sha256 is None:
            continue
        bind.execute(
            _recordings.update()
            .where(_recordings.c.id == row.id)
            .values(
                media_sha256_sealed=seal_json(
                    dek, row.key_id, "media_sha256", row.id, row.media_sha256
                )
            )
        )


def _open_existing(bind: sa.engine.Connection) -> None:
    from app.services.sealing import open_json, open_text

    keys = _Keys(bind)
    bind.execute(_shares.update().values(purpose="", receipt=""))
    bind.execute(_recordings.update().values(media_sha256={}))
    for row in bind.execute(sa.select(_shares).where(_shares.c.purpose_sealed.is_not(None))).all():
        dek = keys.dek(row.key_id)
        if dek is None:
            continue
        bind.execute(
            _shares.update()
            .where(_shares.c.id == row.id)
            .values(
                purpose=open_text(dek, row.key_id, "purpose", row.id, row.purpose_sealed) or "",
                receipt=open_text(dek, row.key_id, "receipt", row.id, row.receipt_sealed) or "",
            )
        )
    for row in bind.execute(
        sa.select(_recordings).where(_recordings.c.media_sha256_sealed.is_not(None))
    ).all():
        dek = keys.dek(row.key_id)
        if dek is None:
            continue
        hashes = open_json(dek, row.key_id, "media_sha256", row.id, row.media_sha256_sealed)
        bind.execute(
            _recordings.update().where(_recordings.c.id == row.id).values(media_sha256=hashes)
        )


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("receipt_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_sha256_sealed", sa.LargeBinary(), nullable=True))
    _seal_existing(op.get_bind())
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_column("purpose")
        batch_op.drop_column("receipt")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("media_sha256")


def downgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("receipt", sa.Text(), nullable=True))
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_sha256", sa.JSON(), nullable=True))
    _open_existing(op.get_bind())
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.alter_column("purpose", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("receipt", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("purpose_sealed")
        batch_op.drop_column("receipt_sealed")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.alter_column("media_sha256", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("media_sha256_sealed")
