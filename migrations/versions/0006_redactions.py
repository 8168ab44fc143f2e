"""redactions sealed on a share; redaction suggestions (state and sealed result) on a recording

Revision ID: 0006
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("shares", sa.Column("redactions_sealed", sa.LargeBinary(), nullable=True))
    op.add_column(
        "recordings", sa.Column("suggestions_status", sa.String(length=12), nullable=True)
    )
    op.add_column("recordings", sa.Column("suggestions_error", sa.Text(), nullable=True))
    op.add_column("recordings", sa.Column("suggestions_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("recordings", "suggestions_sealed")
    op.drop_column("recordings", "suggestions_error")
    op.drop_column("recordings", "suggestions_status")
    op.drop_column("shares", "redactions_sealed")
