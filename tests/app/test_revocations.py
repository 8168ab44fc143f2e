"""The set of ended shares each web process checks before every media write
(app.runtime.EndedShares, app/services/revocations.py): fed by NOTIFY within milliseconds of
the ending's commit, and by the bounded poll when no notification comes."""

from __future__ import annotations

import time
import uuid

import pytest

from app.db import Database
from app.runtime import EndedShares
from app.services import revocations
from tests.conftest import create_person
from tests.media_helpers import opt_in, upload_recording


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


def _share(client, rt, samples) -> tuple[str, object]:
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    recording = upload_recording(client, owner, {"audio": samples.mono_wav})
    return opt_in(client, owner, recording["id"], [coach])["id"], owner


def _marked_within(ended: EndedShares, share_id: uuid.UUID, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if ended.is_ended(share_id):
            return time.monotonic() - started
        time.sleep(0.001)
    return None


def test_another_process_learns_of_a_revoke_by_notify_at_once(client, rt, samples):
    """A listener of its own (as another web process has): marked within 50 ms of the
    revoke's answer, long before any poll would have run."""
    share_id, owner = _share(client, rt, samples)
    ended = EndedShares()
    listener = revocations.Listener(ended, rt.db, interval_s=30)  # the poll would be far off
    ended.on_first_watch = listener.start
    ended.watch(uuid.UUID(share_id))
    try:
        time.sleep(0.5)  # LISTEN is set up
        assert (
            client.post(f"/api/v1/shares/{share_id}/revoke", headers=owner.headers).status_code
            == 200
        )
        assert _marked_within(ended, uuid.UUID(share_id), 0.05) is not None
        assert listener.notifications >= 1
    finally:
        listener.stop()


def test_without_notifications_the_poll_catches_it_within_its_bound(client, rt, samples):
    share_id, owner = _share(client, rt, samples)
    ended = EndedShares()

    def no_listen():
        raise OSError("LISTEN is unavailable")

    listener = revocations.Listener(ended, rt.db, connect=no_listen)
    ended.on_first_watch = listener.start
    ended.watch(uuid.UUID(share_id))
    try:
        assert (
            client.post(f"/api/v1/shares/{share_id}/revoke", headers=owner.headers).status_code
            == 200
        )
        took = _marked_within(ended, uuid.UUID(share_id), 2)
        assert took is not None and took <= 2 * revocations.POLL_INTERVAL_S + 0.25, took
        assert listener.notifications == 0 and listener.polls >= 1
    finally:
        listener.stop()


def test_a_guard_stops_at_an_end_and_at_the_end_date():
    from datetime import UTC, datetime, timedelta

    ended = EndedShares()
    share_id = uuid.uuid4()
    guard = revocations.Guard(ended, share_id, datetime.now(UTC) + timedelta(hours=1))
    assert guard() and ended.watched() == [share_id]
    ended.mark([share_id])
    assert not guard()
    guard.close()
    guard.close()  # twice is fine
    assert ended.watched() == []
    past = revocations.Guard(ended, uuid.uuid4(), datetime.now(UTC) - timedelta(seconds=1))
    assert not past()
    past.close()


def test_settle_waits_for_the_poll_only_where_there_is_no_notify(rt, tmp_path):
    started = time.monotonic()
    revocations.settle(rt.db, started)
    assert time.monotonic() - started < 0.05  # PostgreSQL: notified on commit
    sqlite = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        started = time.monotonic()
        revocations.settle(sqlite, started)
        assert time.monotonic() - started >= 2 * revocations.POLL_INTERVAL_S - 0.01
    finally:
        sqlite.dispose()
