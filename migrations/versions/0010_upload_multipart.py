"""resumable uploads on S3: one multipart upload per tus upload, kept open across requests

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("multipart_id", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("parts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("sealed_head", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("sealed_head")
        batch_op.drop_column("parts")
        batch_op.drop_column("multipart_id")
        batch_op.drop_column("store_name")
