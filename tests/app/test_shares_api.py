"""``/api/v1/shares``: the opt-in and its signed receipt, listing and reading shares, viewing
sessions with heartbeats, the owner's access log, and the error shape of every refusal."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from datetime import datetime

import pytest

import crypto
from app.models import Share
from tests.conftest import create_person
from tests.media_helpers import (
    assert_documented,
    error_code,
    jwks,
    make_ready_share,
    openapi,
    small_files,
    upload_recording,
)


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def share(client, rt, worker, samples):
    coaches = [create_person(rt, "coach", name="Coach Åse Ålesund"), create_person(rt, "coach")]
    return make_ready_share(
        client,
        rt,
        files=small_files(samples),
        coaches=coaches,
        purpose="Handling an angry customer",
        expires_in_days=5,
        note="Look at minute one",
        trim={"start_s": 1, "end_s": 11},
    )


@pytest.fixture(scope="module")
def spec(client):
    return openapi(client)


def receipt_claims(client, token: str) -> dict:
    return crypto.verify(
        token, jwks(client), typ=crypto.RECEIPT_TYP, required=crypto.RECEIPT_CLAIMS
    )


# --- the receipt ---------------------------------------------------------------------------------


def test_the_receipt_verifies_and_says_what_was_agreed(client, rt, share):
    created = share.created
    assert created["status"] == "processing" and created["progress"] == 0
    claims = receipt_claims(client, created["receipt"])
    assert claims["jti"] == share.id
    assert claims["sub"] == str(share.owner.id)
    assert claims["recording"] == share.recording_id
    assert sorted(claims["grantees"]) == sorted(str(c.id) for c in share.coaches)
    assert claims["purpose"] == "Handling an angry customer"
    assert claims["scope"] == ["view", "comment"]
    expires_at = datetime.fromisoformat(share.body["expires_at"])
    assert claims["exp"] == int(expires_at.timestamp())
    assert 5 * 86400 - 120 <= claims["exp"] - claims["iat"] <= 5 * 86400 + 1
    assert claims["media_sha256"] == {
        name: hashlib.sha256(data).hexdigest() for name, data in share.uploads.items()
    }
    assert claims["revocation_url"].endswith(f"/api/v1/shares/{share.id}/revoke")
    assert claims["channels"]["customer_audio"] is False
    assert claims["trim"] == {"start_s": 1.0, "end_s": 11.0}
    assert claims["policy"]["version"] >= 1
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share.id))
        assert claims["key_id"] == str(row.key_id)
        # Stored sealed under the share's key (shredded with it), never as readable text.
        assert row.receipt_sealed is not None
        assert created["receipt"].encode() not in row.receipt_sealed
        assert b"Handling an angry customer" not in row.purpose_sealed
    # The owner can fetch it again; coaches are not shown it.
    mine = client.get(f"/api/v1/shares/{share.id}", headers=share.owner.headers).get_json()
    assert mine["receipt"] == created["receipt"]
    theirs = client.get(f"/api/v1/shares/{share.id}", headers=share.coach.headers).get_json()
    assert "receipt" not in theirs


def test_the_receipt_of_an_untrimmed_share_verifies(client, rt, share, samples):
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    recording = upload_recording(client, owner, {"audio": samples.mono_wav})
    created = client.post(
        f"/api/v1/recordings/{recording['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "Whole call", "expires_in_days": 1},
        headers=owner.headers,
    )
    assert created.status_code == 202
    body = created.get_json()
    revoked = client.post(f"/api/v1/shares/{body['id']}/revoke", headers=owner.headers)
    assert revoked.status_code == 200
    unverified = json.loads(_b64decode(body["receipt"].split(".")[1]))
    assert "trim" in unverified and unverified["trim"] is None
    claims = receipt_claims(client, body["receipt"])
    assert claims["trim"] is None


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_receipt_is_refused(client, share):
    token = share.created["receipt"]
    header, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload))
    wider = _b64({**claims, "grantees": [*claims["grantees"], str(uuid.uuid4())]})
    refusals = {
        f"{header}.{wider}.{signature}": "bad_signature",
        f"{_b64({'alg': 'none', 'typ': 'consent+jwt'})}.{payload}.": "algorithm_not_allowed",
        f"{header}.{payload}.{signature[:-4]}AAAA": "bad_signature",
        "not.a.jwt": "malformed",
    }
    for token_variant, reason in refusals.items():
        with pytest.raises(crypto.TokenError) as refused:
            receipt_claims(client, token_variant)
        assert refused.value.reason == reason
    with pytest.raises(crypto.TokenError) as refused:
        crypto.verify(
            token, jwks(client), typ=crypto.CERTIFICATE_TYP, required=crypto.CERTIFICATE_CLAIMS
        )
    assert refused.value.reason == "wrong_type"
    with pytest.raises(crypto.TokenError) as refused:
        crypto.verify(token, {"keys": []}, typ=crypto.RECEIPT_TYP, required=[])
    assert refused.value.reason == "unknown_kid"


def test_the_jwks_holds_only_public_keys(client):
    keys = jwks(client)["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["kid"]
        assert "d" not in key


# --- reading shares ------------------------------------------------------------------------------


def test_owner_and_grantees_read_the_share(client, spec, share):
    for who in (share.owner, *share.coaches):
        response = client.get(f"/api/v1/shares/{share.id}", headers=who.headers)
        assert response.status_code == 200
        assert_documented(spec, "GET", "/api/v1/shares/{share_id}", response)
        body = response.get_json()
        assert body["id"] == share.id and body["recording_id"] == share.recording_id
        assert body["status"] == "ready" and body["progress"] == 100 and body["error"] is None
        assert sorted(body["coach_ids"]) == sorted(str(c.id) for c in share.coaches)
        assert body["purpose"] == "Handling an angry customer"
        assert body["media"]["video"] == f"/media/shares/{share.id}/video"
        assert body["employee"]["id"] == str(share.owner.id)
        assert body["note"] == "Look at minute one"
        assert 9.5 <= body["duration_s"] <= 10.5
        assert body["trim"] == {"start_s": 1.0, "end_s": 11.0}


def test_lists(client, spec, rt, share):
    mine = client.get("/api/v1/shares", headers=share.owner.headers)
    assert_documented(spec, "GET", "/api/v1/shares", mine)
    assert [s["id"] for s in mine.get_json()["shares"]] == [share.id]
    for coach in share.coaches:
        granted = client.get("/api/v1/shares", headers=coach.headers).get_json()["shares"]
        assert [s["id"] for s in granted] == [share.id]
    for role in ("coach", "employee"):
        stranger = create_person(rt, role)
        assert client.get("/api/v1/shares", headers=stranger.headers).get_json() == {"shares": []}


def test_strangers_cannot_tell_the_share_exists(client, rt, share):
    reference = client.get(f"/api/v1/shares/{uuid.uuid4()}", headers=share.owner.headers)
    assert error_code(reference, 404) == "not_found"
    for role in ("coach", "employee"):
        stranger = create_person(rt, role)
        for path in ("", "/comments"):
            response = client.get(f"/api/v1/shares/{share.id}{path}", headers=stranger.headers)
            assert error_code(response, 404) == "not_found"
            assert response.get_json() == reference.get_json()
    for role in ("admin", "representative"):
        response = client.get(f"/api/v1/shares/{share.id}", headers=create_person(rt, role).headers)
        assert error_code(response, 403) == "forbidden"
    assert error_code(client.get(f"/api/v1/shares/{share.id}"), 401) == "unauthenticated"
    for garbage in ("x", "1" * 3000, "%00", "null"):
        response = client.get(f"/api/v1/shares/{garbage}", headers=share.owner.headers)
        assert error_code(response, 404) == "not_found"


# --- viewing sessions and the access log ---------------------------------------------------------


def test_views_heartbeats_and_the_access_log(client, spec, share):
    coach = share.coaches[0]
    began = time.monotonic()
    started = client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers)
    assert started.status_code == 201
    view_id = started.get_json()["id"]
    video = client.get(
        f"{share.url()}?view={view_id}", headers={**coach.headers, "Range": "bytes=0-4095"}
    )
    assert video.status_code == 206 and len(video.data) == 4096
    for position in (1.0, 2.0, 3.0):
        time.sleep(0.4)
        beat = client.post(
            f"/api/v1/shares/{share.id}/views/{view_id}/heartbeat",
            json={"watched_s": 0.4, "position_s": position},
            headers=coach.headers,
        )
        assert beat.status_code == 200 and beat.get_json() == {"id": view_id}
    elapsed = time.monotonic() - began

    log = client.get(f"/api/v1/shares/{share.id}/access-log", headers=share.owner.headers)
    assert log.status_code == 200
    assert_documented(spec, "GET", "/api/v1/shares/{share_id}/access-log", log)
    body = log.get_json()
    assert body["share_id"] == share.id
    view = next(v for v in body["views"] if v["id"] == view_id)
    assert view["viewer_id"] == str(coach.id) and view["viewer_name"] == coach.name
    assert view["seconds_watched"] == pytest.approx(1.2, abs=0.11)
    assert view["ranges"] == [[0, 4096]] and view["bytes_served"] == 4096
    first, last = (datetime.fromisoformat(view[k]) for k in ("started_at", "last_seen_at"))
    assert 0 < (last - first).total_seconds() <= elapsed + 1
    plays = [e for e in body["events"] if e["action"] == "media.play"]
    assert any(e["actor_id"] == str(coach.id) and e["actor_name"] == coach.name for e in plays)
    assert [e["action"] for e in body["events"]][:1] == ["share.created"]
    assert "share.ready" in [e["action"] for e in body["events"]]
    for event in body["events"]:
        assert {"at", "actor_id", "action"} <= set(event)
        datetime.fromisoformat(event["at"])


def test_heartbeats_cannot_claim_more_time_than_has_passed(client, share):
    coach = share.coaches[1]
    view_id = client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers).get_json()[
        "id"
    ]
    began = time.monotonic()
    for _ in range(5):
        beat = client.post(
            f"/api/v1/shares/{share.id}/views/{view_id}/heartbeat",
            json={"watched_s": 60, "position_s": 1},
            headers=coach.headers,
        )
        assert beat.status_code == 200
    elapsed = time.monotonic() - began
    log = client.get(f"/api/v1/shares/{share.id}/access-log", headers=share.owner.headers)
    view = next(v for v in log.get_json()["views"] if v["id"] == view_id)
    assert 0 < view["seconds_watched"] <= elapsed + 10, view


def test_heartbeat_refusals(client, rt, share):
    coach, other = share.coaches
    view_id = client.post(f"/api/v1/shares/{share.id}/views", headers=coach.headers).get_json()[
        "id"
    ]
    url = f"/api/v1/shares/{share.id}/views/{view_id}/heartbeat"
    for payload in (
        {"watched_s": 500, "position_s": 1},
        {"watched_s": -1, "position_s": 1},
        {"watched_s": 1},
        {"watched_s": 1, "position_s": 1, "extra": True},
        {"watched_s": "lots", "position_s": 1},
    ):
        response = client.post(url, json=payload, headers=coach.headers)
        assert error_code(response, 400) == "invalid_request", payload
    broken = client.post(
        url, data="{not json", headers={**coach.headers, "Content-Type": "application/json"}
    )
    assert error_code(broken, 400) in {"invalid_request", "bad_request"}
    good = {"json": {"watched_s": 1, "position_s": 1}}
    # Someone else's view, an unknown one, a stranger, the wrong share.
    assert error_code(client.post(url, headers=other.headers, **good), 404) == "not_found"
    unknown = f"/api/v1/shares/{share.id}/views/{uuid.uuid4()}/heartbeat"
    assert error_code(client.post(unknown, headers=coach.headers, **good), 404) == "not_found"
    garbage = f"/api/v1/shares/{share.id}/views/nope/heartbeat"
    assert error_code(client.post(garbage, headers=coach.headers, **good), 404) == "not_found"
    stranger = create_person(rt, "coach")
    assert error_code(client.post(url, headers=stranger.headers, **good), 404) == "not_found"
    assert error_code(client.post(url, **good), 401) == "unauthenticated"


def test_only_the_owner_reads_the_access_log(client, rt, share):
    url = f"/api/v1/shares/{share.id}/access-log"
    for coach in share.coaches:
        assert error_code(client.get(url, headers=coach.headers), 403) == "forbidden"
    stranger = create_person(rt, "employee")
    assert error_code(client.get(url, headers=stranger.headers), 404) == "not_found"
    assert error_code(client.get(url), 401) == "unauthenticated"


# --- the opt-in refuses what it must ------------------------------------------------------------


def test_opt_in_refusals_use_the_error_shape(client, rt, share, samples):
    owner, coach = share.owner, share.coach
    recording = upload_recording(client, owner, {"audio": samples.mono_wav})
    url = f"/api/v1/recordings/{recording['id']}/shares"
    base = {"coach_ids": [str(coach.id)], "purpose": "Tone", "expires_in_days": 3}
    cases = [
        ({**base, "expires_in_days": 10_000}, 400),
        ({**base, "expires_in_days": 0}, 400),
        ({**base, "coach_ids": []}, 400),
        ({**base, "coach_ids": [str(owner.id)]}, 400),  # not a coach
        ({**base, "coach_ids": [str(uuid.uuid4())]}, 400),
        ({**base, "coach_ids": ["not-a-uuid"]}, 400),
        ({**base, "purpose": "   "}, 400),
        ({**base, "purpose": "x" * 501}, 400),
        ({**base, "surprise": 1}, 400),
        ({k: v for k, v in base.items() if k != "purpose"}, 400),
        ({**base, "include_customer_audio": True}, 422),  # the customer was not informed
        ({**base, "trim": {"start_s": 5, "end_s": 2}}, 400),
    ]
    for payload, status in cases:
        response = client.post(url, json=payload, headers=owner.headers)
        error_code(response, status)
    stranger = create_person(rt, "employee")
    foreign = client.post(url, json=base, headers=stranger.headers)
    unknown = client.post(
        f"/api/v1/recordings/{uuid.uuid4()}/shares", json=base, headers=owner.headers
    )
    assert error_code(foreign, 404) == error_code(unknown, 404) == "not_found"
    assert foreign.get_json() == unknown.get_json()
    assert error_code(client.post(url, json=base, headers=coach.headers), 403) == "forbidden"
    not_json = client.post(url, data="coach_ids=1", headers=owner.headers)
    assert not_json.status_code in {400, 415}
    error_code(not_json, not_json.status_code)
    # None of that made a share.
    listed = client.get("/api/v1/shares", headers=owner.headers).get_json()["shares"]
    assert [s["id"] for s in listed] == [share.id]
