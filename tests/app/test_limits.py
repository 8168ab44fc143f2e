"""What one request or one user can cost (issue 12, finding 7).

- a JSON body over 64 KiB is answered 413 before it is read (declared or chunked);
- JSON nested deeper than the parser can recurse is a 400, not a 500;
- NUL, other controls and text-direction characters are refused in every field a person
  types, naming the field, and nothing is created;
- one employee has at most three shares in preparation at once (429);
- a video's total pixels (width × height × fps × seconds) are bounded (tests/worker).
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from app.request_limits import BODY_LIMIT, json_depth
from app.services.shares import MAX_PROCESSING_PER_USER
from tests.conftest import create_person
from tests.media_helpers import error_code, noise_screen, opt_in, upload_recording


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def people(rt):
    return {
        "employee": create_person(rt, "employee"),
        "coach": create_person(rt, "coach"),
        "admin": create_person(rt, "admin"),
    }


@pytest.fixture(scope="module")
def draft(client, people, samples):
    return upload_recording(client, people["employee"], {"audio": samples.mono_wav})


# --- the size and shape of a body ------------------------------------------------------------


def test_a_json_body_over_the_limit_is_413(client, people, draft):
    body = json.dumps({"coach_ids": [], "purpose": "x" * (BODY_LIMIT + 10), "expires_in_days": 1})
    response = client.post(
        f"/api/v1/recordings/{draft['id']}/shares",
        data=body,
        content_type="application/json",
        headers=people["employee"].headers,
    )
    assert error_code(response, 413) == "payload_too_large"
    assert "64 KiB" in response.get_json()["error"]["message"]


def test_413_comes_before_the_body_is_read(live_server, people, draft):
    """The headers announce 300 MB; not one byte of it is sent, and the answer comes."""
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /api/v1/recordings/{draft['id']}/shares HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {people['employee'].headers['Authorization']}\r\n"
                "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_json_body_is_cut_at_the_limit(live_server, people, draft):
    def chunks():
        yield b'{"purpose": "'
        for _ in range(40):
            yield b"y" * 4096
        yield b'", "coach_ids": [], "expires_in_days": 1}'

    response = requests.post(
        f"{live_server.url}/api/v1/recordings/{draft['id']}/shares",
        data=chunks(),
        headers={**people["employee"].headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert error_code(response, 413) == "payload_too_large"


def test_deeply_nested_json_is_a_clear_400_not_a_500(client, people, draft):
    nested = "[" * 20000 + "]" * 20000
    assert len(nested) < BODY_LIMIT and json_depth(nested.encode()) == 20000
    for url, body in (
        (f"/api/v1/recordings/{draft['id']}/shares", '{"purpose": ' + nested + "}"),
        ("/api/v1/coaches", nested),  # a route without a body schema
        (f"/api/v1/shares/{uuid.uuid4()}/comments", nested),
    ):
        response = client.post(
            url, data=body, content_type="application/json", headers=people["employee"].headers
        )
        assert response.status_code == 400, (url, response.status_code)
        assert error_code(response, 400) == "invalid_json"


def test_json_depth_skips_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "\\"]]]"}]}') == 3


# --- characters ------------------------------------------------------------------------------

REFUSED = {
    "NUL": "\x00",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "escape": "\x1b",
    "C1 control": "\x85",
    "line separator": "\u2028",
    "byte-order mark": "\ufeff",
}


def refused(response, field: str) -> None:
    assert error_code(response, 400) == "invalid_characters"
    error = response.get_json()["error"]
    assert field in error["message"] and error["details"]["field"] == field


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_controls_and_direction_characters_are_refused_in_the_opt_in(
    client, rt, people, draft, name
):
    char = REFUSED[name]
    owner, coach = people["employee"], people["coach"]
    url = f"/api/v1/recordings/{draft['id']}/shares"
    base = {"coach_ids": [str(coach.id)], "purpose": "Coaching", "expires_in_days": 1}
    before = len(client.get("/api/v1/shares", headers=owner.headers).get_json()["shares"])
    for field, body in (
        ("purpose", {**base, "purpose": f"Coach{char}ing"}),
        ("note", {**base, "note": f"a note {char}"}),
    ):
        refused(client.post(url, json=body, headers=owner.headers), field)
    after = len(client.get("/api/v1/shares", headers=owner.headers).get_json()["shares"])
    assert after == before  # nothing shared, no receipt signed


@pytest.mark.parametrize("name", ["NUL", "right-to-left override", "pop directional isolate"])
def test_controls_are_refused_in_titles_names_comments_teams_and_policy(
    client, rt, people, samples, name
):
    char = REFUSED[name]
    owner, admin = people["employee"], people["admin"]
    title = client.post(
        "/api/v1/recordings",
        data={"audio": (samples.mono_wav.open("rb"), "a.wav"), "title": f"Call {char}"},
        headers=owner.headers,
        content_type="multipart/form-data",
    )
    refused(title, "title")
    user = client.post(
        "/api/v1/admin/users",
        json={"login": f"u{uuid.uuid4().hex[:8]}", "name": f"Ada{char}", "role": "coach"},
        headers=admin.headers,
    )
    refused(user, "name")
    team = client.post("/api/v1/admin/teams", json={"name": f"Team {char}"}, headers=admin.headers)
    refused(team, "name")
    policy = client.put(
        "/api/v1/admin/policy",
        json={"consent_text": f"You agree to share this recording {char} for coaching."},
        headers=admin.headers,
    )
    refused(policy, "consent_text")


def test_a_lone_surrogate_is_refused_not_a_500(client, people, draft):
    coach = people["coach"].id
    body = '{"coach_ids": ["' + str(coach) + '"], "purpose": "x\\ud800y", "expires_in_days": 1}'
    response = client.post(
        f"/api/v1/recordings/{draft['id']}/shares",
        data=body,
        content_type="application/json",
        headers=people["employee"].headers,
    )
    refused(response, "purpose")


def test_ordinary_text_in_every_script_is_kept(client, people, draft):
    purpose = "Åpningen av samtalen — مرحبا — 你好 👩‍💻\nline two\ttab"
    created = opt_in(client, people["employee"], draft["id"], [people["coach"]], purpose=purpose)
    assert created["purpose"] == purpose


# --- jobs in flight per person ---------------------------------------------------------------


def test_at_most_three_shares_in_preparation_per_employee(client, rt, worker, samples, tmp_path):
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    # A rendition that takes a while (noise does not compress), so the three are still
    # being prepared when the fourth is asked for.
    recording = upload_recording(client, owner, {"screen": noise_screen(tmp_path, seconds=4)})
    made = [
        opt_in(client, owner, recording["id"], [coach])["id"]
        for _ in range(MAX_PROCESSING_PER_USER)
    ]
    fourth = client.post(
        f"/api/v1/recordings/{recording['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "one more", "expires_in_days": 1},
        headers=owner.headers,
    )
    assert error_code(fourth, 429) == "too_many_jobs"
    assert "3 shares being prepared" in fourth.get_json()["error"]["message"]
    # Another employee is not held up by it.
    other = create_person(rt, "employee")
    theirs = upload_recording(client, other, {"audio": samples.mono_wav})
    assert opt_in(client, other, theirs["id"], [coach])["status"] == "processing"
    # Once one of the three is no longer in preparation, the next one is accepted.
    assert client.post(f"/api/v1/shares/{made[0]}/revoke", headers=owner.headers).status_code == 200
    again = opt_in(client, owner, recording["id"], [coach])
    assert again["status"] == "processing"
    for share_id in [*made[1:], again["id"]]:
        client.post(f"/api/v1/shares/{share_id}/revoke", headers=owner.headers)
