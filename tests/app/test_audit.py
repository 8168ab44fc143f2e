"""The hash-chained audit log (app/services/audit.py) and `consent-replay audit verify`."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app import migrate as migrations
from app.config import load_settings
from app.db import Database
from app.models import AuditEvent, AuditHead
from app.services import audit
from tests.conftest import ROOT, fresh_database

CLI = str(ROOT / ".venv" / "bin" / "consent-replay")


def sqlite_db(folder: Path) -> Database:
    url = f"sqlite:///{folder / 'audit.db'}"
    migrations.upgrade(url)
    return Database(url)


@pytest.fixture
def lite(tmp_path) -> Iterator[Database]:
    db = sqlite_db(tmp_path)
    yield db
    db.dispose()


@pytest.fixture
def pg(pg_server) -> Iterator[Database]:
    with fresh_database(pg_server, prefix="cr_audit") as url:
        migrations.upgrade(url)
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request) -> Database:
    return request.getfixturevalue("lite" if request.param == "sqlite" else "pg")


def append_events(db: Database, count: int) -> None:
    for n in range(count):
        with db.session() as session:
            audit.append(session, "test.event", detail={"n": n, "note": f"event {n}"})


def events(db: Database) -> list[AuditEvent]:
    with db.session() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def verdict(db: Database) -> audit.ChainVerdict:
    with db.session() as session:
        return audit.verify_chain(session)


def test_appends_form_a_chain(lite):
    append_events(lite, 5)
    rows = events(lite)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS_HASH
    for previous, event in itertools.pairwise(rows):
        assert event.prev_hash == previous.hash
    for row in rows:
        assert row.hash == audit.event_hash(row.prev_hash, row)
    assert len({r.hash for r in rows}) == 5
    with lite.session() as session:
        head = session.get(AuditHead, 1)
        assert (head.seq, head.hash) == (5, rows[-1].hash)
    result = verdict(lite)
    assert result.ok
    assert (result.events, result.head_hash, result.broken_seq) == (5, rows[-1].hash, None)


def test_a_rolled_back_append_leaves_no_gap(lite):
    append_events(lite, 2)
    with pytest.raises(RuntimeError), lite.session() as session:
        audit.append(session, "test.doomed")
        session.flush()
        raise RuntimeError("the request failed")
    append_events(lite, 1)
    assert [(r.seq, r.action) for r in events(lite)] == [
        (1, "test.event"),
        (2, "test.event"),
        (3, "test.event"),
    ]
    assert verdict(lite).ok


def drop_sqlite_triggers(db: Database) -> None:
    with db.session() as session:
        session.execute(text("DROP TRIGGER audit_events_no_update"))
        session.execute(text("DROP TRIGGER audit_events_no_delete"))


def edit_detail(db: Database) -> int:
    with db.session() as session:
        session.execute(
            text("UPDATE audit_events SET detail = :d WHERE seq = 3"),
            {"d": json.dumps({"n": 99, "note": "event 2"})},
        )
    return 3


def edit_time(db: Database) -> int:
    row = events(db)[1]
    with db.session() as session:
        forged = session.get(AuditEvent, 2)
        forged.at = row.at - timedelta(hours=1)
    return 2


def edit_and_rehash(db: Database) -> int:
    # A careful forger recomputes the edited row's own hash: the next link still breaks.
    with db.session() as session:
        forged = session.get(AuditEvent, 3)
        forged.action = "test.forged"
        forged.hash = audit.event_hash(forged.prev_hash, forged)
    return 4


def delete_middle(db: Database) -> int:
    with db.session() as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    return 3


def delete_first(db: Database) -> int:
    with db.session() as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 1"))
    return 1


def delete_last(db: Database) -> int:
    with db.session() as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    return 5


@pytest.mark.parametrize(
    "tamper",
    [edit_detail, edit_time, edit_and_rehash, delete_middle, delete_first, delete_last],
)
def test_tampering_is_detected_at_the_first_broken_link(lite, tamper):
    append_events(lite, 5)
    assert verdict(lite).ok
    drop_sqlite_triggers(lite)
    broken = tamper(lite)
    result = verdict(lite)
    assert not result.ok
    assert result.broken_seq == broken
    assert str(broken) in result.reason
    assert result.as_dict()["broken_seq"] == broken


def test_postgresql_tampering_around_the_trigger_is_detected(pg):
    append_events(pg, 4)
    with pg.session() as session:
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update"))
        session.execute(
            text("UPDATE audit_events SET detail = CAST(:d AS json) WHERE seq = 2"),
            {"d": json.dumps({"n": 7})},
        )
    result = verdict(pg)
    assert (result.ok, result.broken_seq) == (False, 2)


def test_postgresql_truncation_is_refused_and_else_detected(pg):
    append_events(pg, 3)
    with pytest.raises(DBAPIError, match="append-only"), pg.session() as session:
        session.execute(text("TRUNCATE audit_events"))
    assert verdict(pg).ok
    # A superuser can still disable the trigger; the chain then shows the loss.
    with pg.session() as session:
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate"))
        session.execute(text("TRUNCATE audit_events"))
        session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_truncate"))
    result = verdict(pg)
    assert not result.ok
    assert result.broken_seq == 1


def test_concurrent_appends_make_one_gapless_chain(any_db):
    threads_count, per_thread = 8, 15
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            try:
                with any_db.session() as session:
                    audit.append(session, "test.concurrent", detail={"t": index, "n": n})
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = events(any_db)
    total = threads_count * per_thread
    assert [r.seq for r in rows] == list(range(1, total + 1))
    assert sorted((r.detail["t"], r.detail["n"]) for r in rows) == sorted(
        (t, n) for t in range(threads_count) for n in range(per_thread)
    )
    result = verdict(any_db)
    assert result.ok, result
    assert result.events == total


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_cli_audit_verify(tmp_path):
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    settings = load_settings(env)
    migrations.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        append_events(db, 3)
        good = run_cli(env, "audit", "verify")
        assert good.returncode == 0, good.stderr
        assert "audit chain ok: 3 events" in good.stdout
        assert events(db)[-1].hash in good.stdout

        drop_sqlite_triggers(db)
        with db.session() as session:
            session.execute(text("UPDATE audit_events SET action = 'test.forged' WHERE seq = 2"))
        bad = run_cli(env, "audit", "verify")
        assert bad.returncode != 0
        assert "broken at event 2" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        db.dispose()
