"""The Alembic migrations (app/migrate.py) on a fresh PostgreSQL database and a SQLite file."""

from __future__ import annotations

import uuid
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
    "uploads",
    "upload_segments",
    "oidc_single_use",
    "feedback_forms",
    "feedback",
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


def test_0004_seals_the_purpose_receipt_and_hashes_of_existing_rows(empty_db, tmp_path):
    """Rows written before 0004 (plaintext purpose, receipt, media hashes) come out sealed
    under their own key; those of an ended share, whose key is gone, are dropped; the
    downgrade opens the live ones again."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    import crypto
    from app.config import load_settings
    from app.services.sealing import open_json, open_text

    settings = load_settings(
        {"CR_INSTANCE_DIR": str(tmp_path / "instance"), "CR_DATABASE_URL": empty_db}
    )
    migrations.upgrade(empty_db, "0002", settings=settings)
    keyring = crypto.FileKeyring(settings.keyring_path)
    now = datetime.now(UTC)
    owner, recording, live, ended = (uuid.uuid4() for _ in range(4))
    rec_key, live_key, ended_key = (uuid.uuid4() for _ in range(3))
    deks = {rec_key: crypto.new_data_key(), live_key: crypto.new_data_key()}
    # Reflected, SQLite's UUID columns are 32 hex characters; PostgreSQL's are UUIDs.
    pg = empty_db.startswith("postgresql")

    def i(value: uuid.UUID):
        return value if pg else value.hex

    metadata = sa.MetaData()
    engine = create_engine(empty_db, poolclass=pool.NullPool)
    metadata.reflect(engine)
    t = metadata.tables
    hashes = {"screen": "ab" * 32}
    with engine.begin() as conn:
        conn.execute(
            t["users"]
            .insert()
            .values(
                id=i(owner), login="ada", name="Ada", role="employee", active=True, created_at=now
            )
        )
        for key_id, dek in deks.items():
            wrapped = crypto.wrap(keyring, dek, key_id=str(key_id), owner_id=str(owner))
            conn.execute(
                t["data_keys"]
                .insert()
                .values(
                    id=i(key_id),
                    owner_id=i(owner),
                    kek_version=wrapped.kek_version,
                    wrapped=wrapped.blob,
                    created_at=now,
                )
            )
        conn.execute(
            t["recordings"].insert().values(
                id=i(recording), owner_id=i(owner), key_id=i(rec_key), status="draft",
                agent_channel="left", customer_informed=False, media_sha256=hashes,
                size_bytes=1, probe_status="ok", created_at=now, expires_at=now + timedelta(1),
            )
        )  # fmt: skip
        for share_id, key_id, status in ((live, live_key, "ready"), (ended, ended_key, "revoked")):
            conn.execute(
                t["shares"].insert().values(
                    id=i(share_id), recording_id=i(recording), owner_id=i(owner), key_id=i(key_id),
                    status=status, progress=100, purpose=f"purpose {status}",
                    include_customer_audio=False, policy_version=1, receipt=f"receipt {status}",
                    job_attempts=0, created_at=now, expires_at=now + timedelta(1),
                )
            )  # fmt: skip
    migrations.upgrade(empty_db, settings=settings)
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("shares")}
        assert "purpose" not in columns and "receipt" not in columns
        assert "media_sha256" not in {c["name"] for c in inspect(conn).get_columns("recordings")}
        metadata = sa.MetaData()
        metadata.reflect(conn)
        rows = {r.id: r for r in conn.execute(sa.select(metadata.tables["shares"]))}
        rec = conn.execute(sa.select(metadata.tables["recordings"])).one()
    sealed = rows[i(live)]
    dek = deks[live_key]
    assert open_text(dek, live_key, "purpose", live, sealed.purpose_sealed) == "purpose ready"
    assert open_text(dek, live_key, "receipt", live, sealed.receipt_sealed) == "receipt ready"
    assert b"purpose ready" not in sealed.purpose_sealed
    assert rows[i(ended)].purpose_sealed is None and rows[i(ended)].receipt_sealed is None
    assert open_json(
        deks[rec_key], rec_key, "media_sha256", recording, rec.media_sha256_sealed
    ) == (hashes)
    assert b"ab" * 32 not in rec.media_sha256_sealed

    migrations.downgrade(empty_db, "0002", settings=settings)
    with engine.connect() as conn:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        rows = {r.id: r for r in conn.execute(sa.select(metadata.tables["shares"]))}
        rec = conn.execute(sa.select(metadata.tables["recordings"])).one()
    engine.dispose()
    assert (rows[i(live)].purpose, rows[i(live)].receipt) == ("purpose ready", "receipt ready")
    assert (rows[i(ended)].purpose, rows[i(ended)].receipt) == ("", "")
    assert rec.media_sha256 == hashes
