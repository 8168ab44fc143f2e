"""sign-in with the organisation's identity provider: users keyed by issuer + sub; single-use
sign-in states and logout-token ids

Revision ID: 0007
Revises: 0006 (0005 when made; relinked after main brought 0009 and 0006)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oidc_issuer", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_oidc_issuer"), ["oidc_issuer", "oidc_subject"]
        )
    op.create_table(
        "oidc_single_use",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_oidc_single_use")),
    )
    with op.batch_alter_table("oidc_single_use", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oidc_single_use_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("oidc_single_use")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_oidc_issuer"), type_="unique")
        batch_op.drop_column("oidc_subject")
        batch_op.drop_column("oidc_issuer")
