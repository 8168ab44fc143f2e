"""View accounting off the media path (SPEC §2.6, issue 19): the access (a view and its
``media.play`` event) is committed before the first byte; the ranges and bytes served are
tallied in memory and written in one short transaction every few seconds, and before the
access log is read. A stream cut mid-way, or a web process killed mid-stream, still leaves
the access on record.
"""

from __future__ import annotations

import socket
import struct
import threading
import uuid

import pytest
from sqlalchemy import event, select

from app.db import Database
from app.models import AuditEvent, ViewSession
from app.services import viewing
from tests.conftest import create_person, kill_server, wait_for
from tests.media_helpers import make_ready_share, noise_screen, stored_objects


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def share(client, rt, worker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    # One coach per test: each test's views are its own.
    coaches = [create_person(rt, "coach") for _ in range(3)]
    return make_ready_share(
        client, rt, files={"screen": noise_screen(folder, seconds=3)}, coaches=coaches
    )


def views_of(rt, share_id: str, viewer_id: uuid.UUID) -> list[ViewSession]:
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(ViewSession).where(
                    ViewSession.share_id == uuid.UUID(share_id),
                    ViewSession.viewer_id == viewer_id,
                )
            )
        )


def plays_of(rt, share_id: str, viewer_id: uuid.UUID) -> list[AuditEvent]:
    with rt.db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.share_id == uuid.UUID(share_id),
                    AuditEvent.actor_id == viewer_id,
                    AuditEvent.action == "media.play",
                )
            )
        )


def start_raw_stream(
    url: str, path: str, token_header: str, want: int
) -> tuple[socket.socket, int]:
    """A GET of the whole video over a plain socket, read until ``want`` body bytes came."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token_header}\r\n\r\n".encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    received = len(body)
    while received < want:
        block = sock.recv(65536)
        assert block, "the server ended the stream early"
        received += len(block)
    return sock, received


def cut(sock: socket.socket) -> None:
    """Drop the connection at once (RST), as a closed tab or a lost network does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_stream_cut_mid_way_is_on_record(rt, share, own_server):
    coach = share.coaches[1]
    size = stored_objects(rt, share.id)["rendition"].plaintext_size
    path = f"/media/shares/{share.id}/video"
    sock, received = start_raw_stream(own_server.url, path, coach.headers["Authorization"], 1 << 20)
    assert received < size // 2
    cut(sock)

    def recorded() -> ViewSession | None:
        views = views_of(rt, share.id, coach.id)
        return views[0] if views and views[0].bytes_served > 0 else None

    # Written by the server's flusher, with nobody reading the access log.
    view = wait_for(recorded, 3 * viewing.FLUSH_INTERVAL_S + 5, "the bytes served on record")
    assert view.ranges == [[0, size]]
    # At least what reached the client, less than the whole: the stream stopped with the client.
    assert received <= view.bytes_served < size
    plays = plays_of(rt, share.id, coach.id)
    assert [p.detail["view"] for p in plays] == [str(view.id)]


def test_the_access_is_on_record_before_the_first_byte_even_if_the_server_dies(
    rt, share, own_server
):
    coach = share.coaches[2]
    path = f"/media/shares/{share.id}/video"
    sock, _ = start_raw_stream(own_server.url, path, coach.headers["Authorization"], 64 * 1024)
    kill_server(own_server)  # SIGKILL: nothing in memory gets written
    sock.close()
    views = views_of(rt, share.id, coach.id)
    assert len(views) == 1
    assert [p.detail["view"] for p in plays_of(rt, share.id, coach.id)] == [str(views[0].id)]


def test_a_media_request_writes_no_view_row(client, rt, share):
    """The media path itself only reads views (and inserts a new one with its event): the
    tally is written by the flusher, not by the request."""
    coach = share.coaches[0]
    view_id = client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers).get_json()[
        "id"
    ]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        if threading.current_thread() is main_thread:
            statements.append(statement)

    main_thread = threading.current_thread()
    event.listen(rt.db.engine, "before_cursor_execute", seen)
    try:
        for first in (0, 100_000, 200_000):
            response = client.get(
                f"{share.url()}?view={view_id}",
                headers={**coach.headers, "Range": f"bytes={first}-{first + 99_999}"},
            )
            assert response.status_code == 206 and len(response.data) == 100_000
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", seen)
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert not [s for s in writes if "view_sessions" in s], writes
    log = client.get(f"/api/v1/shares/{share.id}/access-log", headers=share.owner.headers)
    view = next(v for v in log.get_json()["views"] if v["id"] == view_id)
    assert view["ranges"] == [[0, 300_000]] and view["bytes_served"] == 300_000


def test_flush_merges_tallies_and_keeps_them_while_the_database_is_down(client, rt, share):
    coach = share.coaches[0]
    view_id = uuid.UUID(
        client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers).get_json()["id"]
    )
    tallies = type(rt.views)()  # a process's tallies, flushed by hand here
    tallies.add_range(view_id, 0, 1000)
    tallies.add_range(view_id, 1000, 5000)  # continues the first
    tallies.add_range(view_id, 9000, 9100)
    threads = [
        threading.Thread(target=lambda: [tallies.add_bytes(view_id, 1) for _ in range(1000)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    down = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        assert viewing.flush(down, tallies) == 0
    finally:
        down.dispose()
    assert tallies, "a failed flush keeps what it took"
    tallies.add_range(view_id, 9100, 9200)  # came while the database was down
    assert viewing.flush(rt.db, tallies) == 1
    assert not tallies
    with rt.db.session() as session:
        view = session.get_one(ViewSession, view_id)
        assert view.ranges == [[0, 5000], [9000, 9200]]
        assert view.bytes_served == 8000
    tallies.add_range(view_id, 9200, 9300)
    tallies.add_bytes(view_id, 100)
    assert viewing.flush(rt.db, tallies) == 1
    with rt.db.session() as session:
        view = session.get_one(ViewSession, view_id)
        assert view.ranges == [[0, 5000], [9000, 9300]]
        assert view.bytes_served == 8100
