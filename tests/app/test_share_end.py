"""Nothing remains after the end (SPEC §2.4, issue 12 finding 2).

Once a share is revoked, or its end date has passed (checked on each request, not by the
expiry sweep), a grantee gets 410 ``share_ended`` from every share endpoint, and their list
says only that a share ended: no employee, title, purpose, nor whether it was withdrawn or ran
out. The owner keeps the share's status and certificate.

At rest, the purpose, the stored receipt and the raw media's hashes are sealed under the
share's or the recording's key: a canary written into every free-text field is found nowhere
in a dump of the database or in the store, while the share lives, after a revoke and after an
expiry — in raw, hex or base64 form.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.models import Share
from app.services import shredding
from tests.conftest import Person, create_person
from tests.media_helpers import (
    KINDS,
    Pending,
    error_code,
    finish,
    opt_in,
    upload_recording,
    wait_probed,
)

ENDED_ONLY = {"id", "status"}


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@dataclass
class Ended:
    share_id: str
    owner: Person
    coach: Person
    view_id: str
    secrets: list[str]


def _ready_share(client, rt, samples, tag: str) -> tuple[dict, Person, Person, str]:
    owner = create_person(rt, "employee", name=f"Ada {tag}")
    coach = create_person(rt, "coach")
    recording = upload_recording(client, owner, {"audio": samples.call_wav}, title=f"Title {tag}")
    created = opt_in(
        client, owner, recording["id"], [coach], purpose=f"Purpose {tag}", note=f"Note {tag}"
    )
    finish(client, [Pending(created["id"], recording["id"], owner, [coach], created, {})])
    comment = client.post(
        f"/api/v1/shares/{created['id']}/comments",
        json={"at_s": 1, "body": f"Comment {tag}"},
        headers=coach.headers,
    )
    assert comment.status_code == 201
    view = client.post(f"/api/v1/shares/{created['id']}/views", headers=coach.headers)
    assert view.status_code == 201
    return created, owner, coach, view.get_json()["id"]


@pytest.fixture(scope="module")
def revoked(client, rt, worker, samples) -> Ended:
    tag = uuid.uuid4().hex[:8]
    created, owner, coach, view_id = _ready_share(client, rt, samples, tag)
    response = client.post(f"/api/v1/shares/{created['id']}/revoke", headers=owner.headers)
    assert response.status_code == 200
    return Ended(created["id"], owner, coach, view_id, [tag])


@pytest.fixture(scope="module")
def past_end(client, rt, worker, samples) -> Ended:
    """A ready share whose end date has passed, with no sweep run yet."""
    tag = uuid.uuid4().hex[:8]
    created, owner, coach, view_id = _ready_share(client, rt, samples, tag)
    with rt.db.session() as session:
        session.execute(
            update(Share)
            .where(Share.id == uuid.UUID(created["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    return Ended(created["id"], owner, coach, view_id, [tag])


def every_share_call(client, ended: Ended, who: Person) -> dict[str, object]:
    sid = ended.share_id
    calls = {
        "GET share": client.get(f"/api/v1/shares/{sid}", headers=who.headers),
        "GET comments": client.get(f"/api/v1/shares/{sid}/comments", headers=who.headers),
        "POST comment": client.post(
            f"/api/v1/shares/{sid}/comments", json={"at_s": 1, "body": "x"}, headers=who.headers
        ),
        "POST views": client.post(f"/api/v1/shares/{sid}/views", headers=who.headers),
        "POST heartbeat": client.post(
            f"/api/v1/shares/{sid}/views/{ended.view_id}/heartbeat",
            json={"watched_s": 1, "position_s": 1},
            headers=who.headers,
        ),
    }
    for kind in KINDS:
        calls[f"GET media {kind}"] = client.get(
            f"/media/shares/{sid}/{kind}", headers={**who.headers, "Range": "bytes=0-99"}
        )
    return calls


@pytest.mark.parametrize("which", ["revoked", "past_end"])
def test_a_grantee_gets_410_from_every_share_endpoint(client, request, which):
    ended: Ended = request.getfixturevalue(which)
    for name, response in every_share_call(client, ended, ended.coach).items():
        assert error_code(response, 410) == "share_ended", name
        body = response.get_data(as_text=True)
        assert "revoked" not in body and "withdrew" not in body and "expired" not in body, name
        for secret in ended.secrets:
            assert secret not in body, name


@pytest.mark.parametrize("which", ["revoked", "past_end"])
def test_the_grantees_list_says_only_that_it_ended(client, request, which):
    ended: Ended = request.getfixturevalue(which)
    listed = client.get("/api/v1/shares", headers=ended.coach.headers)
    assert listed.status_code == 200
    (item,) = [s for s in listed.get_json()["shares"] if s["id"] == ended.share_id]
    assert item == {"id": ended.share_id, "status": "ended"}
    text = listed.get_data(as_text=True)
    for secret in [*ended.secrets, ended.owner.name]:
        assert secret not in text


@pytest.mark.parametrize("which", ["revoked", "past_end"])
def test_the_coach_pages_show_nothing_of_an_ended_share(stack_app, rt, request, which):
    ended: Ended = request.getfixturevalue(which)
    web = stack_app.test_client()
    headers = {**ended.coach.headers, "Accept": "text/html"}
    listing = web.get("/coach", headers=headers)
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert ended.share_id in html and "Ended" in html
    for word in [*ended.secrets, ended.owner.name, "Withdrawn", "Expired", "withdrew"]:
        assert word not in html, word
    page = web.get(f"/coach/shares/{ended.share_id}", headers=headers)
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    for word in [*ended.secrets, ended.owner.name, "withdrew"]:
        assert word not in html, word
    assert "no-store" in page.headers["Cache-Control"]


def test_the_owner_still_sees_status_and_certificate(client, revoked):
    mine = client.get(f"/api/v1/shares/{revoked.share_id}", headers=revoked.owner.headers)
    assert mine.status_code == 200
    body = mine.get_json()
    assert body["status"] == "revoked" and body["certificate"]
    # Shredded with the share: its purpose, title, note and the stored receipt.
    assert body["purpose"] is None and body["title"] is None and body["note"] is None
    assert body.get("receipt") is None
    listed = client.get("/api/v1/shares", headers=revoked.owner.headers).get_json()["shares"]
    assert [s["status"] for s in listed if s["id"] == revoked.share_id] == ["revoked"]


def test_the_owner_of_a_share_past_its_end_keeps_reading_it(client, past_end):
    mine = client.get(f"/api/v1/shares/{past_end.share_id}", headers=past_end.owner.headers)
    assert mine.status_code == 200 and mine.get_json()["purpose"].startswith("Purpose ")
    # … but nobody plays it.
    media = client.get(f"/media/shares/{past_end.share_id}/video", headers=past_end.owner.headers)
    assert error_code(media, 410) == "share_ended"


# --- at rest: a canary in every field ------------------------------------------------------------


def forms(needle: bytes) -> list[bytes]:
    """Raw, hex, and base64/base64url at each of the three alignments."""
    found = {needle, needle.hex().encode()}
    for shift in range(3):
        part = needle[shift:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 9:
            found |= {base64.b64encode(part), base64.urlsafe_b64encode(part).rstrip(b"=")}
    return sorted(found)


def dump(stack_env) -> bytes:
    url = stack_env["CR_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(
        ["pg_dump", "--no-owner", "--data-only", url], capture_output=True, check=True, timeout=120
    ).stdout


def underneath(rt, stack_env, prefixes: list[str]) -> bytes:
    """The database dump and every object under the given prefixes, as one blob."""
    blobs = [dump(stack_env)]
    for prefix in prefixes:
        for name in rt.store.list(prefix):
            blobs.append(b"".join(rt.store.iter_object(name)))
    return b"\n".join(blobs)


def found(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    return [name for name, needle in needles.items() if any(f in blob for f in forms(needle))]


def test_nothing_readable_remains_at_rest_after_revoke_and_after_expiry(
    client, rt, worker, samples, stack_env
):
    canary = f"CANARY-{uuid.uuid4().hex}"
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    audio = samples.call_wav.read_bytes()
    recording = upload_recording(client, owner, {"audio": samples.call_wav}, title=f"{canary} t")
    wait_probed(client, owner, recording["id"])
    shares = {}
    for end in ("revoke", "expiry"):
        created = opt_in(
            client,
            owner,
            recording["id"],
            [coach],
            purpose=f"{canary} purpose {end}",
            note=f"{canary} note {end}",
        )
        shares[end] = created["id"]
    for sid in shares.values():
        client.get(f"/api/v1/shares/{sid}", headers=coach.headers)
    needles = {
        "canary": canary.encode(),
        "media sha256": hashlib.sha256(audio).hexdigest().encode(),
        "media sha256 (raw)": hashlib.sha256(audio).digest(),
        **{f"receipt signature {e}": _signature(client, owner, sid) for e, sid in shares.items()},
    }
    prefixes = [f"shares/{sid}/" for sid in shares.values()]
    # Live: sealed already (the receipt and the purpose the coach reads are decrypted on demand).
    assert found(underneath(rt, stack_env, prefixes), needles) == []
    assert (
        client.get(f"/api/v1/shares/{shares['revoke']}", headers=coach.headers).get_json()[
            "purpose"
        ]
        == f"{canary} purpose revoke"
    )

    response = client.post(f"/api/v1/shares/{shares['revoke']}/revoke", headers=owner.headers)
    assert response.status_code == 200
    with rt.db.session() as session:
        session.execute(
            update(Share)
            .where(Share.id == uuid.UUID(shares["expiry"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    shredding.end_share(rt, uuid.UUID(shares["expiry"]), reason="expired", actor_id=None)
    assert found(underneath(rt, stack_env, prefixes), needles) == []
    with rt.db.session() as session:
        for sid in shares.values():
            row = session.get(Share, uuid.UUID(sid))
            assert row.purpose_sealed is None and row.receipt_sealed is None
            assert row.title_sealed is None and row.note_sealed is None

    # The recording goes too: its title and its hashes were sealed under its own key.
    deleted = client.delete(f"/api/v1/recordings/{recording['id']}", headers=owner.headers)
    assert deleted.status_code == 200
    assert found(underneath(rt, stack_env, [f"recordings/{recording['id']}/"]), needles) == []
    assert deleted.get_json()["media_sha256"] is None


def _signature(client, owner: Person, share_id: str) -> bytes:
    receipt = client.get(f"/api/v1/shares/{share_id}", headers=owner.headers).get_json()["receipt"]
    return receipt.split(".")[2].encode()
