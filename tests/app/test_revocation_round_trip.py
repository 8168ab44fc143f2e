"""The revoke's critical section is one statement (issue 19), and loses nothing on the way.

On PostgreSQL, ``lifecycle.end_share_at_once`` (the server-side ``cr_end_share`` of migration
0011) locks the share, destroys its key, drops its comments and unsent feedback, notifies the
web processes and appends the audit event in one round trip in its own transaction; an audit
append is one statement too (``cr_audit_append``). The hashes the database computes are the
ones Python computes: the chain verifies, event by event.
"""

from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from app.models import AuditEvent, Comment, DataKey, Share, ShareStatus
from app.services import audit, lifecycle, revocations
from tests.conftest import Person, create_person
from tests.media_helpers import opt_in, upload_recording


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@contextmanager
def counting(engine):
    """The statements this thread sends (the app's background threads, such as the ended-share
    poll, share the engine and are not the caller's round trips)."""
    statements: list[str] = []
    caller = threading.get_ident()

    def count(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == caller:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _processing_share(client, rt, samples) -> tuple[uuid.UUID, Person]:
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    recording = upload_recording(client, owner, {"audio": samples.call_wav})
    share_id = uuid.UUID(opt_in(client, owner, recording["id"], [coach])["id"])
    with rt.db.session() as session:
        session.add(Comment(share_id=share_id, author_id=coach.id, at_s=1.0, body_sealed=b"x"))
    return share_id, owner


def test_canonical_pieces_put_back_together_are_the_canonical_text():
    at = datetime(2026, 12, 7, 19, 0, 0, 123456, tzinfo=UTC)
    actor, share, recording = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    detail = {"reason": "revoked", "key_destroyed": True}
    whole = audit._canonical(42, at, actor, "share.revoked", share, recording, detail).decode()
    pieces = audit.canonical_pieces(
        [audit.DESTROYED_HOLE, audit.RECORDING_HOLE, audit.SEQ_HOLE],
        at,
        actor,
        "share.revoked",
        share,
        audit.RECORDING_HOLE,
        {"reason": "revoked", "key_destroyed": audit.DESTROYED_HOLE},
    )
    assert pieces is not None
    assert pieces[0] + "true" + pieces[1] + str(recording) + pieces[2] + "42" + pieces[3] == whole
    # A detail that holds a hole's text is not cut (the ORM path appends it instead).
    assert audit.canonical_pieces([audit.SEQ_HOLE], at, None, "x", None, None, {
        "n": audit.SEQ_HOLE
    }) is None  # fmt: skip


def test_an_ending_is_one_statement_and_does_everything(client, rt, samples):
    share_id, owner = _processing_share(client, rt, samples)
    owner_id = owner.id
    with rt.db.session() as session:
        key_id = session.get_one(Share, share_id).key_id
        assert session.get(DataKey, key_id) is not None
    with counting(rt.db.engine) as statements:
        ended = lifecycle.end_share_at_once(
            rt.db, share_id, reason="revoked", actor_id=owner_id, key_cache=rt.key_cache
        )
    assert len(statements) == 1, statements
    assert ended is not None and ended.ended and ended.key_destroyed
    assert ended.status is ShareStatus.REVOKED and ended.key_id == key_id
    with rt.db.session() as session:
        share = session.get_one(Share, share_id)
        assert share.status is ShareStatus.REVOKED and share.ended_at is not None
        assert share.receipt_sealed is None and share.purpose_sealed is None
        assert session.get(DataKey, key_id) is None
        assert not session.scalars(select(Comment).where(Comment.share_id == share_id)).all()
        revoked = session.scalars(
            select(AuditEvent).where(
                AuditEvent.share_id == share_id, AuditEvent.action == "share.revoked"
            )
        ).one()
        assert revoked.actor_id == owner_id and revoked.recording_id == share.recording_id
        assert revoked.detail == {"reason": "revoked", "key_destroyed": True}
        assert audit.event_hash(revoked.prev_hash, revoked) == revoked.hash
        assert audit.verify_chain(session).ok
    # Again: nothing changes, and the first ending is what it answers.
    again = lifecycle.end_share_at_once(
        rt.db, share_id, reason="revoked", actor_id=owner_id, key_cache=rt.key_cache
    )
    assert again is not None and not again.ended and again.ended_at == ended.ended_at
    assert lifecycle.end_share_at_once(
        rt.db, uuid.uuid4(), reason="revoked", actor_id=None, key_cache=rt.key_cache
    ) is None  # fmt: skip


def test_the_ending_notifies_every_listening_process(client, rt, samples):
    import psycopg

    share_id, owner = _processing_share(client, rt, samples)
    owner_id = owner.id
    url = rt.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {revocations.CHANNEL}")
        lifecycle.end_share_at_once(
            rt.db, share_id, reason="revoked", actor_id=owner_id, key_cache=rt.key_cache
        )
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == [str(share_id)]


def test_an_append_is_one_statement_and_hashes_as_python_does(rt):
    marker = uuid.uuid4().hex
    detail = {"note": f"ünïcode {marker}", "n": 1.5, "nested": {"b": [1, None], "a": 'x"y'}}
    with rt.db.session() as session:
        session.flush()
        with counting(rt.db.engine) as statements:
            audit.append(session, "test.round_trip", detail=detail)
        assert len(statements) == 1, statements
    with rt.db.session() as session:
        row = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "test.round_trip")
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert row is not None and json.dumps(row.detail, sort_keys=True) == json.dumps(
            detail, sort_keys=True
        )
        assert audit.event_hash(row.prev_hash, row) == row.hash
        assert audit.verify_chain(session).ok


def test_the_revoke_says_where_its_time_went(client, rt, samples):
    share_id, owner = _processing_share(client, rt, samples)
    response = client.post(f"/api/v1/shares/{share_id}/revoke", headers=owner.headers)
    assert response.status_code == 200 and response.get_json()["certificate"]
    steps = dict(
        part.strip().split(";dur=") for part in response.headers["Server-Timing"].split(",")
    )
    assert list(steps) == ["end", "store", "sign", "certify"]
    assert all(float(ms) >= 0 for ms in steps.values())
    # The certificate's statement stored it once and audited the objects' end.
    with rt.db.session() as session:
        assert session.get_one(Share, share_id).certificate == response.get_json()["certificate"]
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.share_id == share_id)
            .order_by(AuditEvent.seq)
        ).all()
        assert actions[-2:] == ["share.revoked", "share.objects_deleted"]
        assert audit.verify_chain(session).ok
    again = client.post(f"/api/v1/shares/{share_id}/revoke", headers=owner.headers)
    assert again.get_json()["certificate"] == response.get_json()["certificate"]
