"""``GET``/``POST /api/v1/shares/{id}/comments``: timestamped comments by the owner and the
grantees, sealed under the share's key in the database, and gone with the share."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.models import Comment
from tests.conftest import create_person
from tests.media_helpers import (
    ReadyShare,
    assert_documented,
    error_code,
    finish,
    openapi,
    start_shares,
)

SECRET = "Kundens kontonummer 1234 5678 — <script>alert('æøå')</script>"


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def shares(client, rt, worker, samples) -> list[ReadyShare]:
    """Two ready shares of one recording: the first for the tests that comment, the second
    for the one that ends it. Audio only: the rendition is a still background, quick to make."""
    return finish(client, start_shares(client, rt, files={"audio": samples.call_wav}, count=2))


@pytest.fixture(scope="module")
def share(shares) -> ReadyShare:
    return shares[0]


def comments_url(share) -> str:
    return f"/api/v1/shares/{share.id}/comments"


def post(client, share, who, at_s, body):
    return client.post(comments_url(share), json={"at_s": at_s, "body": body}, headers=who.headers)


def test_owner_and_grantee_comment_and_read(client, share):
    spec = openapi(client)
    by_coach = post(client, share, share.coach, 7.25, SECRET)
    assert by_coach.status_code == 201
    assert_documented(spec, "POST", "/api/v1/shares/{share_id}/comments", by_coach)
    created = by_coach.get_json()
    assert created["body"] == SECRET and created["at_s"] == 7.25
    assert created["author"] == {"id": str(share.coach.id), "name": share.coach.name}
    by_owner = post(client, share, share.owner, 2.5, "  Thanks, noted.  ")
    assert by_owner.status_code == 201
    assert by_owner.get_json()["body"] == "Thanks, noted."

    ours = {created["id"], by_owner.get_json()["id"]}
    for who in (share.owner, share.coach):
        listed = client.get(comments_url(share), headers=who.headers)
        assert listed.status_code == 200
        assert_documented(spec, "GET", "/api/v1/shares/{share_id}/comments", listed)
        everyone = listed.get_json()["comments"]  # other tests here comment on it too
        assert [c["at_s"] for c in everyone] == sorted(c["at_s"] for c in everyone)
        comments = [c for c in everyone if c["id"] in ours]
        assert [(c["at_s"], c["body"]) for c in comments] == [
            (2.5, "Thanks, noted."),
            (7.25, SECRET),
        ]
        assert [c["author"]["id"] for c in comments] == [str(share.owner.id), str(share.coach.id)]
        assert listed.mimetype == "application/json"


def test_comments_are_sealed_in_the_database(client, rt, share):
    marker = f"marker-{uuid.uuid4().hex}"
    assert post(client, share, share.coach, 1, marker).status_code == 201
    with rt.db.session() as session:
        rows = session.query(Comment).filter_by(share_id=uuid.UUID(share.id)).all()
        assert len(rows) >= 1
        for row in rows:
            sealed = bytes(row.body_sealed)
            assert marker.encode() not in sealed
            assert SECRET.encode() not in sealed and b"kontonummer" not in sealed
            assert len(sealed) > len(marker)
        # Nowhere else in the database either: not in any comment column, not in the audit log.
        dump = session.execute(text("SELECT CAST(c AS text) FROM comments AS c")).scalars().all()
        audit = (
            session.execute(
                text("SELECT CAST(a AS text) FROM audit_events AS a WHERE share_id = :s"),
                {"s": share.id},
            )
            .scalars()
            .all()
        )
    for row_text in [*dump, *audit]:
        assert marker not in row_text and "kontonummer" not in row_text
        assert marker.encode().hex() not in row_text
    assert any('"comment.added"' in row or "comment.added" in row for row in audit)


def test_who_may_comment(client, rt, share):
    reference = client.get(f"/api/v1/shares/{uuid.uuid4()}/comments", headers=share.coach.headers)
    assert error_code(reference, 404) == "not_found"
    for role in ("coach", "employee"):
        stranger = create_person(rt, role)
        listed = client.get(comments_url(share), headers=stranger.headers)
        assert error_code(listed, 404) == "not_found"
        assert listed.get_json() == reference.get_json()
        assert error_code(post(client, share, stranger, 1, "hello"), 404) == "not_found"
    admin = create_person(rt, "admin")
    assert error_code(client.get(comments_url(share), headers=admin.headers), 403) == "forbidden"
    assert error_code(post(client, share, admin, 1, "hello"), 403) == "forbidden"
    assert error_code(client.get(comments_url(share)), 401) == "unauthenticated"


def test_bad_comments_are_refused(client, share):
    coach = share.coach
    for at_s, body, code in (
        (1, "", "invalid_request"),
        (1, "   ", "comment_empty"),
        (1, "x" * 2001, "invalid_request"),
        (-1, "before the start", "invalid_request"),
        (500, "after the end", "invalid_time"),
        ("soon", "not a time", "invalid_request"),
    ):
        assert error_code(post(client, share, coach, at_s, body), 400) == code, (at_s, body)
    extra = client.post(
        comments_url(share), json={"at_s": 1, "body": "hi", "author_id": "x"}, headers=coach.headers
    )
    assert error_code(extra, 400) == "invalid_request"
    missing = client.post(comments_url(share), json={"body": "hi"}, headers=coach.headers)
    assert error_code(missing, 400) == "invalid_request"


def test_comments_are_gone_with_the_share(client, rt, shares):
    share = shares[1]
    assert post(client, share, share.coach, 3, "one more").status_code == 201
    revoked = client.post(f"/api/v1/shares/{share.id}/revoke", headers=share.owner.headers)
    assert revoked.status_code == 200
    for who in (share.owner, share.coach):
        listed = client.get(comments_url(share), headers=who.headers)
        assert listed.status_code == 410 or listed.get_json() == {"comments": []}
        assert error_code(post(client, share, who, 1, "after"), 410) == "share_ended"
    with rt.db.session() as session:
        assert session.query(Comment).filter_by(share_id=uuid.UUID(share.id)).count() == 0
