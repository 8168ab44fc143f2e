"""audit log is append-only; the first policy version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CONSENT_TEXT_V1 = """\
You are choosing to share this one recording for coaching.

- Only the coaches you pick can watch it, only for the purpose you write, and only until the \
end date you set.
- They can watch and comment. They cannot download it.
- Every time someone watches, it is logged, and you can see that log.
- You can withdraw at any time with one click. Access stops at once, the recording's key is \
destroyed, and you receive a signed deletion certificate.
- Not sharing is always fine. Nobody is told that you decided not to share."""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )

    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.bulk_insert(
        sa.table(
            "policies",
            sa.column("version", sa.Integer),
            sa.column("max_share_days", sa.Integer),
            sa.column("draft_lifetime_hours", sa.Integer),
            sa.column("max_upload_bytes", sa.BigInteger),
            sa.column("consent_text", sa.Text),
            sa.column("created_at", sa.DateTime(timezone=True)),
        ),
        [
            {
                "version": 1,
                "max_share_days": 30,
                "draft_lifetime_hours": 72,
                "max_upload_bytes": 2 * 1024**3,
                "consent_text": CONSENT_TEXT_V1,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    bind = op.get_bind()
    op.execute("DELETE FROM policies")
    op.execute("DELETE FROM audit_head")
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
