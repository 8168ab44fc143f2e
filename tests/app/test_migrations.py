"""The Alembic migrations (app/migrate.py) on a fresh PostgreSQL database and a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.exc import DBAPIError

from app import migrate as migrations
from app.db import Database
from app.models import AuditEvent, AuditHead, Base, Policy
from app.services import audit
from tests.conftest import fresh_database

TABLES = {
    "audit_events",
    "audit_head",
    "data_keys",
    "teams",
    "users",
    "api_tokens",
    "policies",
    "recordings",
    "shares",
    "comments",
    "media_objects",
    "share_grantees",
    "view_sessions",
    "web_sessions",
    "account_links",
    "outgoing_mail",
}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_db(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    pg_server = request.getfixturevalue("pg_server")
    with fresh_database(pg_server, prefix="cr_migr") as url:
        yield url


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_exactly_one_head(tmp_path):
    heads = migrations.heads(f"sqlite:///{tmp_path / 'x.db'}")
    assert len(heads) == 1, heads


def test_upgrade_downgrade_upgrade(empty_db):
    (head,) = migrations.heads(empty_db)
    assert migrations.current(empty_db) is None

    migrations.upgrade(empty_db)
    assert migrations.current(empty_db) == head
    assert table_names(empty_db) == TABLES | {"alembic_version"}

    migrations.downgrade(empty_db, "base")
    assert migrations.current(empty_db) is None
    assert table_names(empty_db) == {"alembic_version"}
    if empty_db.startswith("postgresql"):
        engine = create_engine(empty_db, poolclass=pool.NullPool)
        with engine.connect() as conn:
            functions = conn.scalar(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'audit_events_append_only'")
            )
        engine.dispose()
        assert functions == 0

    migrations.upgrade(empty_db)
    assert migrations.current(empty_db) == head
    assert table_names(empty_db) == TABLES | {"alembic_version"}
    # The seed rows are there once, not twice, after the round trip.
    db = Database(empty_db)
    try:
        with db.session() as session:
            assert [p.version for p in session.query(Policy)] == [1]
            assert session.query(AuditHead).count() == 1
    finally:
        db.dispose()


def test_models_and_migrations_agree(empty_db):
    migrations.upgrade(empty_db)
    engine = create_engine(empty_db, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_seed_rows_after_upgrade(empty_db):
    migrations.upgrade(empty_db)
    db = Database(empty_db)
    try:
        with db.session() as session:
            policies = session.query(Policy).all()
            assert len(policies) == 1
            policy = policies[0]
            assert policy.version == 1
            assert policy.max_share_days == 30
            assert policy.draft_lifetime_hours == 72
            assert policy.max_upload_bytes > 0
            assert "withdraw" in policy.consent_text
            head = session.get(AuditHead, 1)
            assert head is not None
            assert (head.seq, head.hash) == (0, audit.GENESIS_HASH)
            assert session.query(AuditEvent).count() == 0
    finally:
        db.dispose()


def test_audit_events_refuse_update_and_delete(empty_db):
    migrations.upgrade(empty_db)
    db = Database(empty_db)
    try:
        with db.session() as session:
            audit.append(session, "test.event", detail={"n": 1})
        for statement in (
            "UPDATE audit_events SET action = 'test.forged' WHERE seq = 1",
            "DELETE FROM audit_events WHERE seq = 1",
        ):
            with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
                session.execute(text(statement))
        with db.session() as session:
            rows = session.query(AuditEvent).all()
            assert [(r.seq, r.action) for r in rows] == [(1, "test.event")]
            assert audit.verify_chain(session).ok
    finally:
        db.dispose()
