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
from tests.conftest import create_person, wait_for
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


def test_settle_does_not_wait_once_every_process_confirmed(tmp_path):
    sqlite = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        started = time.monotonic()
        revocations.settle(sqlite, started, confirmed=True)
        assert time.monotonic() - started < 0.05
    finally:
        sqlite.dispose()


def test_on_sqlite_other_processes_learn_by_the_local_bus_and_confirm(tmp_path):
    """The embedded default's NOTIFY: a datagram to each listening web process, which marks
    the share and confirms; the ending process answers once all have (here: two listeners of
    their own, as two other web processes would run)."""
    sqlite = Database(f"sqlite:///{tmp_path / 'x.db'}")
    folder = tmp_path / "ended"
    share_id = uuid.uuid4()
    others = []
    try:
        for _ in range(2):
            ended = EndedShares()
            listener = revocations.Listener(
                ended, sqlite, interval_s=30, bus=revocations.LocalBus(folder)
            )
            ended.on_first_watch = listener.start
            ended.watch(share_id)
            others.append((ended, listener))
        wait_for(lambda: len(list(folder.glob("l-*.sock"))) == 2, 5, "both listeners")
        started = time.monotonic()
        assert revocations.LocalBus(folder).tell([share_id])
        took = time.monotonic() - started
        assert all(ended.is_ended(share_id) for ended, _ in others)
        assert took < 0.2, took  # confirmed, not the time-out
        assert [listener.notifications for _, listener in others] == [1, 1]
    finally:
        for _, listener in others:
            listener.stop()
        sqlite.dispose()
    assert list(folder.glob("*.sock")) == []  # each listener removed its socket


def test_the_local_bus_skips_and_removes_a_dead_process_socket(tmp_path):
    import socket

    folder = tmp_path / "ended"
    folder.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(folder / "l-999999-deadbeef.sock"))
    dead.close()  # its process is gone; the file stays
    assert revocations.LocalBus(folder).tell([uuid.uuid4()])
    assert list(folder.glob("*.sock")) == []


def test_a_listener_that_does_not_confirm_makes_the_answer_wait(tmp_path):
    import socket

    folder = tmp_path / "ended"
    folder.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stuck:  # bound, never reads
        stuck.bind(str(folder / "l-1-stuck.sock"))
        started = time.monotonic()
        assert not revocations.LocalBus(folder).tell([uuid.uuid4()], timeout_s=0.2)
        assert time.monotonic() - started >= 0.2
