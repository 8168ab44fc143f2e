"""Coaching feedback (SPEC §13) over the API: forms the representative approves, feedback a
grantee writes on a ready share, sealed under a key of the employee's, kept by the employee
after the share ends (and lost by the coach), deleted by shredding, exported, notified by
e-mail with a link only — and nobody else ever gets a rating per person."""

from __future__ import annotations

import email
import email.policy
import io
import json
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from babel import dates as babel_dates
from sqlalchemy import select

from app.models import DataKey, Feedback, User
from tests.app.db_scan import text_columns_holding
from tests.conftest import create_person, wait_for
from tests.media_helpers import (
    ReadyShare,
    assert_documented,
    error_code,
    finish,
    make_ready_share,
    openapi,
    start_shares,
)

CRITERIA = [
    {
        "id": "empathy",
        "title": "Shows empathy",
        "description": "Acknowledges how the customer feels.",
        "scale": {"min": 1, "max": 4, "labels": ["Not yet", "Sometimes", "Often", "Always"]},
    },
    {"id": "resolution", "title": "Resolves the issue", "scale": "yes_no"},
]


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def people(rt):
    return {
        "admin": create_person(rt, "admin"),
        "rep": create_person(rt, "representative"),
    }


@pytest.fixture(scope="module")
def shares(client, rt, worker, samples) -> list[ReadyShare]:
    """Three ready shares of one employee, granted to one coach (audio only: quick)."""
    return finish(client, start_shares(client, rt, files={"audio": samples.call_wav}, count=3))


def propose(client, admin, name="Call coaching", criteria=None, **extra):
    return client.post(
        "/api/v1/admin/feedback-forms",
        json={
            "name": name,
            "language": "en",
            "criteria": CRITERIA if criteria is None else criteria,
            **extra,
        },
        headers=admin.headers,
    )


def decide(client, rep, form_id, verb, **body):
    return client.post(
        f"/api/v1/oversight/feedback-forms/{form_id}/{verb}", json=body, headers=rep.headers
    )


@pytest.fixture(scope="module")
def form(client, people) -> dict:
    proposed = propose(client, people["admin"], name=f"Form {uuid.uuid4().hex[:6]}")
    assert proposed.status_code == 201, proposed.get_json()
    approved = decide(client, people["rep"], proposed.get_json()["id"], "approve")
    assert approved.status_code == 200
    return approved.get_json()


def ratings(empathy=3, resolution=True, **extra):
    return [
        {"criterion_id": "empathy", "value": empathy, "comment": "Warm opening", "at_s": [2.5]},
        {"criterion_id": "resolution", "value": resolution, **extra},
    ]


def draft(client, share, form, coach=None, **fields):
    body = {"form_id": form["id"], **fields}
    return client.post(
        f"/api/v1/shares/{share.id}/feedback", json=body, headers=(coach or share.coach).headers
    )


def sent_feedback(client, share, form, **fields) -> dict:
    created = draft(
        client, share, form, ratings=ratings(), next_step="Summarise at the end", **fields
    )
    assert created.status_code == 201, created.get_json()
    sent = client.post(
        f"/api/v1/feedback/{created.get_json()['id']}/send", headers=share.coach.headers
    )
    assert sent.status_code == 200, sent.get_json()
    return sent.get_json()


def audit_actions(rt, form_id: str) -> list[str]:
    from app.models import AuditEvent

    with rt.db.session() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        return [r.action for r in rows if (r.detail or {}).get("form") == form_id]


# --- forms ------------------------------------------------------------------------------------


def test_a_form_is_used_only_once_the_representative_approves_it(client, rt, people, shares):
    admin, rep = people["admin"], people["rep"]
    spec = openapi(client)
    proposed = propose(client, admin, name=f"Proposal {uuid.uuid4().hex[:6]}")
    assert proposed.status_code == 201
    assert_documented(spec, "POST", "/api/v1/admin/feedback-forms", proposed)
    body = proposed.get_json()
    assert body["status"] == "proposed" and body["version"] == 1
    offered = client.get("/api/v1/feedback-forms", headers=shares[0].coach.headers)
    assert body["id"] not in [f["id"] for f in offered.get_json()["forms"]]
    refused = draft(client, shares[0], body, ratings=ratings())
    assert error_code(refused, 422) == "form_not_approved"

    approved = decide(client, rep, body["id"], "approve")
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert error_code(decide(client, rep, body["id"], "approve"), 409) == "form_already_decided"
    for who in (shares[0].coach, shares[0].owner, rep):
        listed = client.get("/api/v1/feedback-forms", headers=who.headers)
        assert body["id"] in [f["id"] for f in listed.get_json()["forms"]]

    # A change is a new version: the representative sees what changed, and approving it
    # retires the version it replaces.
    changed = [
        {**CRITERIA[0], "title": "Shows real empathy"},
        {"id": "next", "title": "Agrees a next step", "scale": "yes_no"},
    ]
    second = propose(client, admin, name=body["name"], criteria=changed, replaces=body["id"])
    assert second.status_code == 201 and second.get_json()["version"] == 2
    review = client.get("/api/v1/oversight/feedback-forms", headers=rep.headers)
    assert review.status_code == 200
    assert_documented(spec, "GET", "/api/v1/oversight/feedback-forms", review)
    entry = next(f for f in review.get_json()["forms"] if f["id"] == second.get_json()["id"])
    changes = entry["changes"]
    assert changes["previous_version"] == 1 and changes["name"] is None
    assert [c["id"] for c in changes["added"]] == ["next"]
    assert [c["id"] for c in changes["removed"]] == ["resolution"]
    assert [(c["id"], c["fields"]) for c in changes["changed"]] == [("empathy", ["title"])]
    assert decide(client, rep, second.get_json()["id"], "approve").status_code == 200
    offered = {
        f["id"]
        for f in client.get("/api/v1/feedback-forms", headers=rep.headers).get_json()["forms"]
    }
    assert second.get_json()["id"] in offered and body["id"] not in offered

    # Rejected with a reason, which the admin reads.
    third = propose(client, admin, name=body["name"], replaces=body["id"]).get_json()
    assert third["version"] == 3
    assert error_code(decide(client, rep, third["id"], "reject"), 400) == "invalid_request"
    blank = decide(client, rep, third["id"], "reject", reason="   ")
    assert error_code(blank, 400) == "reason_required"
    rejected = decide(client, rep, third["id"], "reject", reason="Too many criteria at once")
    assert rejected.get_json()["status"] == "rejected"
    listed = client.get("/api/v1/admin/feedback-forms", headers=admin.headers).get_json()["forms"]
    assert (
        next(f for f in listed if f["id"] == third["id"])["reason"] == "Too many criteria at once"
    )
    assert error_code(decide(client, rep, third["id"], "approve"), 409) == "form_already_decided"

    retired = client.post(
        f"/api/v1/admin/feedback-forms/{second.get_json()['id']}/retire", headers=admin.headers
    )
    assert retired.status_code == 200 and retired.get_json()["status"] == "retired"
    assert audit_actions(rt, body["id"]) == [
        "feedback_form.proposed",
        "feedback_form.approved",
        "feedback_form.retired",
    ]
    assert audit_actions(rt, second.get_json()["id"]) == [
        "feedback_form.proposed",
        "feedback_form.approved",
        "feedback_form.retired",
    ]
    assert audit_actions(rt, third["id"]) == ["feedback_form.proposed", "feedback_form.rejected"]


@pytest.mark.parametrize(
    ("criteria", "code"),
    [
        ([], "invalid_form"),
        ([{"id": "a", "title": "A"}], "invalid_form"),
        ([{"id": "A B", "title": "A", "scale": "yes_no"}], "invalid_form"),
        ([{"id": "a", "title": "A", "scale": "yes_no"}] * 2, "invalid_form"),
        (
            [{"id": "a", "title": "A", "scale": {"min": 1, "max": 3, "labels": ["x"]}}],
            "invalid_form",
        ),
        ([{"id": "a", "title": "A", "scale": {"min": 3, "max": 1, "labels": []}}], "invalid_form"),
        ([{"id": "a", "title": "A", "scale": {"min": 0, "max": 99, "labels": []}}], "invalid_form"),
        ([{"id": "a", "title": "", "scale": "yes_no"}], "invalid_form"),
        ([{"id": "a", "title": "A", "scale": "stars"}], "invalid_form"),
        ([{"id": "a", "title": "A\u202e", "scale": "yes_no"}], "invalid_characters"),
        ("not a list", "invalid_form"),
    ],
)
def test_bad_forms_are_refused(client, people, criteria, code):
    assert error_code(propose(client, people["admin"], criteria=criteria), 400) == code


def test_bad_form_requests(client, people):
    admin, rep = people["admin"], people["rep"]
    assert error_code(propose(client, admin, replaces=str(uuid.uuid4())), 400) == "unknown_form"
    assert error_code(propose(client, admin, language="xx"), 400) == "invalid_form"
    assert error_code(propose(client, admin, owner="me"), 400) == "invalid_request"
    assert error_code(decide(client, rep, uuid.uuid4(), "approve"), 404) == "not_found"
    assert error_code(decide(client, rep, "not-an-id", "approve"), 404) == "not_found"
    # Who may: only admins propose, only representatives decide.
    for who in (rep, create_person(client.application.extensions["consent_replay"], "coach")):
        assert error_code(propose(client, who), 403) == "forbidden"
    form = propose(client, admin).get_json()
    assert error_code(decide(client, admin, form["id"], "approve"), 403) == "forbidden"
    assert error_code(client.post(f"/api/v1/oversight/feedback-forms/{form['id']}/approve"), 401)
    retire_proposed = client.post(
        f"/api/v1/admin/feedback-forms/{form['id']}/retire", headers=admin.headers
    )
    assert error_code(retire_proposed, 409) == "form_not_approved"
    assert error_code(client.get("/api/v1/admin/feedback-forms", headers=rep.headers), 403)


# --- feedback ---------------------------------------------------------------------------------


def test_coach_drafts_and_sends_the_employee_reads_acknowledges_and_replies(
    client, rt, form, shares
):
    share = shares[0]
    spec = openapi(client)
    created = draft(client, share, form, ratings=ratings()[:1], summary="First thoughts")
    assert created.status_code == 201, created.get_json()
    assert_documented(spec, "POST", "/api/v1/shares/{share_id}/feedback", created)
    item = created.get_json()
    assert item["status"] == "draft" and item["share_id"] == share.id
    url = f"/api/v1/feedback/{item['id']}"
    # A draft is the coach's alone.
    assert error_code(client.get(url, headers=share.owner.headers), 404) == "not_found"
    mine = client.get("/api/v1/feedback", headers=share.owner.headers).get_json()["feedback"]
    assert item["id"] not in [f["id"] for f in mine]
    incomplete = client.post(f"{url}/send", headers=share.coach.headers)
    assert error_code(incomplete, 422) == "feedback_incomplete"

    patched = client.patch(
        url,
        json={"ratings": ratings(), "strengths": "Calm voice", "next_step": "Summarise the call"},
        headers=share.coach.headers,
    )
    assert patched.status_code == 200
    assert_documented(spec, "PATCH", "/api/v1/feedback/{feedback_id}", patched)
    body = patched.get_json()
    assert body["summary"] == "First thoughts" and body["strengths"] == "Calm voice"
    assert body["ratings"][0] == {
        "criterion_id": "empathy",
        "value": 3,
        "comment": "Warm opening",
        "at_s": [2.5],
    }
    sent = client.post(f"{url}/send", headers=share.coach.headers)
    assert sent.status_code == 200 and sent.get_json()["status"] == "sent"
    assert sent.get_json()["sent_at"]
    assert (
        error_code(client.post(f"{url}/send", headers=share.coach.headers), 409) == "already_sent"
    )
    late = client.patch(url, json={"summary": "changed"}, headers=share.coach.headers)
    assert error_code(late, 409) == "already_sent"

    received = client.get(url, headers=share.owner.headers)
    assert received.status_code == 200
    assert_documented(spec, "GET", "/api/v1/feedback/{feedback_id}", received)
    assert received.get_json()["share_playable"] is True
    assert received.get_json()["form"]["criteria"][0]["scale"]["labels"][2] == "Often"
    acknowledged = client.post(
        f"{url}/acknowledge",
        json={"reply": "Thanks — will do", "agree": True},
        headers=share.owner.headers,
    )
    assert acknowledged.status_code == 200
    assert_documented(spec, "POST", "/api/v1/feedback/{feedback_id}/acknowledge", acknowledged)
    assert acknowledged.get_json()["status"] == "acknowledged"
    again = client.post(f"{url}/acknowledge", json={}, headers=share.owner.headers)
    assert error_code(again, 409) == "already_acknowledged"
    seen_by_coach = client.get(url, headers=share.coach.headers).get_json()
    assert (seen_by_coach["reply"], seen_by_coach["agree"]) == ("Thanks — will do", True)

    progress = client.get("/api/v1/me/progress", headers=share.owner.headers)
    assert progress.status_code == 200
    assert_documented(spec, "GET", "/api/v1/me/progress", progress)
    lines = {line["criterion_id"]: line for line in progress.get_json()["criteria"]}
    assert [p["value"] for p in lines["empathy"]["points"]] == [3]
    assert lines["resolution"]["labels"] == ["No", "Yes"]
    assert progress.get_json()["next_steps"][0]["next_step"] == "Summarise the call"


def test_bad_feedback_is_refused_and_changes_nothing(client, rt, form, shares):
    share = shares[0]
    cases = [
        ({"ratings": ratings(empathy=5)}, 400, "rating_out_of_scale"),
        ({"ratings": ratings(empathy=0)}, 400, "rating_out_of_scale"),
        ({"ratings": ratings(empathy=2.5)}, 400, "rating_out_of_scale"),
        ({"ratings": ratings(empathy=True)}, 400, "rating_out_of_scale"),
        ({"ratings": ratings(resolution=1)}, 400, "rating_out_of_scale"),
        ({"ratings": [{"criterion_id": "speed", "value": 1}]}, 400, "unknown_criterion"),
        ({"ratings": [ratings()[0], ratings()[0]]}, 400, "invalid_rating"),
        ({"ratings": [{"value": 1}]}, 400, "invalid_rating"),
        ({"ratings": "great"}, 400, "invalid_rating"),
        ({"ratings": [{**ratings()[0], "at_s": [-1]}]}, 400, "invalid_time"),
        ({"ratings": [{**ratings()[0], "at_s": [99999]}]}, 400, "invalid_time"),
        ({"ratings": [{**ratings()[0], "at_s": ["soon"]}]}, 400, "invalid_time"),
        ({"summary": "x" * 4001}, 400, "text_too_long"),
        ({"strengths": "bad\u202etext"}, 400, "invalid_characters"),
        ({"summary": "x" * 70000}, 413, "payload_too_large"),
        ({"author_id": "me"}, 400, "invalid_request"),
    ]
    with rt.db.session() as session:
        before = len(session.scalars(select(Feedback.id)).all())
    for fields, status, code in cases:
        assert error_code(draft(client, share, form, **fields), status) == code, fields
    # The message in the reader's language (SPEC §14); the code stays English.
    norwegian = client.post(
        f"/api/v1/shares/{share.id}/feedback",
        json={"form_id": form["id"], "ratings": ratings(empathy=9)},
        headers={**share.coach.headers, "Accept-Language": "nb"},
    )
    assert error_code(norwegian, 400) == "rating_out_of_scale"
    assert "må være et helt tall fra 1 til 4" in norwegian.get_json()["error"]["message"]
    assert error_code(draft(client, share, {"id": str(uuid.uuid4())}), 422) == "unknown_form"
    assert error_code(draft(client, share, {"id": "nope"}), 422) == "unknown_form"
    with rt.db.session() as session:
        assert len(session.scalars(select(Feedback.id)).all()) == before

    item = draft(client, share, form).get_json()
    url = f"/api/v1/feedback/{item['id']}"
    for fields, status, code in cases[:3]:
        assert (
            error_code(client.patch(url, json=fields, headers=share.coach.headers), status) == code
        )
    unchanged = client.get(url, headers=share.coach.headers).get_json()
    assert unchanged["ratings"] == [] and unchanged["updated_at"] == item["updated_at"]


def test_who_may_reach_feedback(client, rt, form, shares):
    share = shares[0]
    item = sent_feedback(client, share, form, summary="For the owner only")
    url = f"/api/v1/feedback/{item['id']}"
    reference = client.get(f"/api/v1/feedback/{uuid.uuid4()}", headers=share.owner.headers)
    assert error_code(reference, 404) == "not_found"
    other_employee = create_person(rt, "employee")
    other_coach = create_person(rt, "coach")
    for stranger in (other_employee, other_coach):
        got = client.get(url, headers=stranger.headers)
        assert error_code(got, 404) == "not_found" and got.get_json() == reference.get_json()
        listed = client.get("/api/v1/feedback", headers=stranger.headers).get_json()["feedback"]
        assert item["id"] not in [f["id"] for f in listed]
    assert error_code(draft(client, share, form, coach=other_coach), 404) == "not_found"
    assert error_code(
        client.post(f"{url}/acknowledge", json={}, headers=other_employee.headers), 404
    )
    assert error_code(client.delete(url, headers=other_employee.headers), 404) == "not_found"
    assert error_code(client.patch(url, json={}, headers=other_coach.headers), 404) == "not_found"
    assert error_code(client.post(f"{url}/send", headers=other_coach.headers), 404) == "not_found"
    # The employee cannot write feedback on their own share, nor the coach act as employee.
    assert error_code(draft(client, share, form, coach=share.owner), 403) == "forbidden"
    assert error_code(client.post(f"{url}/acknowledge", json={}, headers=share.coach.headers), 403)
    assert error_code(client.delete(url, headers=share.coach.headers), 403) == "forbidden"
    assert error_code(client.get("/api/v1/me/progress", headers=share.coach.headers), 403)
    for role in ("admin", "representative"):
        person = create_person(rt, role)
        for method, path in (
            ("GET", url),
            ("GET", "/api/v1/feedback"),
            ("GET", "/api/v1/me/progress"),
            ("POST", f"/api/v1/shares/{share.id}/feedback"),
            ("DELETE", url),
        ):
            answer = client.open(path, method=method, json={}, headers=person.headers)
            assert error_code(answer, 403) == "forbidden", (role, method, path)
    assert error_code(client.get(url), 401) == "unauthenticated"
    assert error_code(client.get("/api/v1/me/progress"), 401) == "unauthenticated"
    assert client.get(url, headers=share.owner.headers).status_code == 200


def test_retiring_a_form_keeps_the_feedback_written_on_it_readable(client, people, shares):
    admin, rep, share = people["admin"], people["rep"], shares[0]
    own = propose(client, admin, name=f"Retiring {uuid.uuid4().hex[:6]}").get_json()
    assert decide(client, rep, own["id"], "approve").status_code == 200
    item = sent_feedback(client, share, own, summary="Written on a form that retires")
    retired = client.post(f"/api/v1/admin/feedback-forms/{own['id']}/retire", headers=admin.headers)
    assert retired.status_code == 200
    kept = client.get(f"/api/v1/feedback/{item['id']}", headers=share.owner.headers).get_json()
    assert kept["summary"] == "Written on a form that retires"
    assert kept["form"]["status"] == "retired" and kept["ratings"][0]["value"] == 3
    offered = client.get("/api/v1/feedback-forms", headers=share.coach.headers).get_json()
    assert own["id"] not in [f["id"] for f in offered["forms"]]
    assert error_code(draft(client, share, own), 422) == "form_not_approved"


def test_feedback_is_sealed_at_rest(client, rt, form, shares):
    marker = f"canary-{uuid.uuid4().hex}"
    item = sent_feedback(client, shares[0], form, summary=marker, strengths=marker)
    client.post(
        f"/api/v1/feedback/{item['id']}/acknowledge",
        json={"reply": marker + "-reply"},
        headers=shares[0].owner.headers,
    )
    assert text_columns_holding(rt, marker) == []
    with rt.db.session() as session:
        row = session.get(Feedback, uuid.UUID(item["id"]))
        assert marker.encode() not in bytes(row.content_sealed)
        assert marker.encode() not in bytes(row.reply_sealed)
        key = session.get(DataKey, row.key_id)
        assert key is not None and key.owner_id == shares[0].owner.id  # the employee's key


def test_the_share_ends_the_coach_loses_it_the_employee_keeps_it_until_deleted(
    client, rt, form, shares
):
    share = shares[1]
    item = sent_feedback(client, share, form, summary="Kept by the employee")
    unsent = draft(client, share, form, summary="never sent").get_json()
    url = f"/api/v1/feedback/{item['id']}"
    revoked = client.post(f"/api/v1/shares/{share.id}/revoke", headers=share.owner.headers)
    assert revoked.status_code == 200

    assert error_code(client.get(url, headers=share.coach.headers), 404) == "not_found"
    given = client.get("/api/v1/feedback", headers=share.coach.headers).get_json()["feedback"]
    assert item["id"] not in [f["id"] for f in given]
    assert error_code(draft(client, share, form), 410) == "share_ended"
    # The coach's unsent draft reached nobody: it is shredded with the share.
    with rt.db.session() as session:
        assert session.get(Feedback, uuid.UUID(unsent["id"])) is None

    kept = client.get(url, headers=share.owner.headers)
    assert kept.status_code == 200
    assert kept.get_json()["summary"] == "Kept by the employee"
    assert kept.get_json()["share_playable"] is False
    ack = client.post(f"{url}/acknowledge", json={"agree": False}, headers=share.owner.headers)
    assert ack.status_code == 200 and ack.get_json()["agree"] is False

    exported = client.get("/api/v1/export", headers=share.owner.headers)
    assert exported.status_code == 200
    with zipfile.ZipFile(io.BytesIO(exported.get_data())) as archive:
        data = json.loads(archive.read(f"feedback/{item['id']}.json"))
    assert data["summary"] == "Kept by the employee" and data["ratings"][0]["value"] == 3

    with rt.db.session() as session:
        key_id = session.get(Feedback, uuid.UUID(item["id"])).key_id
    deleted = client.delete(url, headers=share.owner.headers)
    assert deleted.status_code == 204
    assert error_code(client.get(url, headers=share.owner.headers), 404) == "not_found"
    assert error_code(client.delete(url, headers=share.owner.headers), 404) == "not_found"
    with rt.db.session() as session:
        assert session.get(DataKey, key_id) is None  # crypto-shredded


def test_sending_feedback_emails_the_employee_a_link_and_no_content(
    client, rt, worker, form, shares
):
    share = shares[2]
    outbox = rt.settings.instance_dir / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    address = f"fb-{uuid.uuid4().hex[:6]}@example.org"
    with rt.db.session() as session:
        session.get(User, share.owner.id).email = address
    marker = f"secret-summary-{uuid.uuid4().hex[:6]}"
    sent_feedback(client, share, form, summary=marker)

    def written() -> list[Path]:
        new = set(outbox.glob("*.eml")) - before if outbox.exists() else set()
        return [p for p in new if address in p.read_text()]

    (path,) = wait_for(written, 60, "the feedback e-mail")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_content()
    assert f"{rt.settings.public_url}/feedback" in text
    for secret in (marker, share.coach.name, "Summarise", "Shows empathy"):
        assert secret not in path.read_text()

    # Turned off on their account: no more e-mail.
    with rt.db.session() as session:
        session.get(User, share.owner.id).email_notifications = False
    before = set(outbox.glob("*.eml"))
    sent_feedback(client, share, form)
    from app.models import OutgoingMail

    with rt.db.session() as session:
        rows = session.scalars(select(OutgoingMail).where(OutgoingMail.user_id == share.owner.id))
        assert len(list(rows)) == 1
    assert not [p for p in set(outbox.glob("*.eml")) - before if address in p.read_text()]


def test_a_ready_share_emails_its_coaches_a_link_and_no_content(client, rt, worker, samples):
    outbox = rt.settings.instance_dir / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    wants, declines = create_person(rt, "coach"), create_person(rt, "coach")
    addresses = {}
    with rt.db.session() as session:
        for person, on in ((wants, True), (declines, False)):
            user = session.get(User, person.id)
            user.email = addresses[person.id] = f"coach-{uuid.uuid4().hex[:6]}@example.org"
            user.email_notifications = on
    share = make_ready_share(
        client, rt, files={"audio": samples.call_wav}, coaches=[wants, declines], purpose="Secret"
    )

    def written() -> list[Path]:
        new = set(outbox.glob("*.eml")) - before if outbox.exists() else set()
        return [p for p in new if addresses[wants.id] in p.read_text()]

    (path,) = wait_for(written, 60, "the share-ready e-mail")
    text = path.read_text()
    assert f"{rt.settings.public_url}/coach" in text
    for secret in ("Secret", share.owner.name, share.id):
        assert secret not in text
    new = set(outbox.glob("*.eml")) - before
    assert not [p for p in new if addresses[declines.id] in p.read_text()]


def test_two_days_before_a_share_ends_its_employee_is_told_once(client, rt, worker, shares):
    from datetime import timedelta

    from app.models import AuditEvent, Share, utcnow
    from app.services import shares as share_service

    share = shares[2]
    outbox = rt.settings.instance_dir / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    address = f"ending-{uuid.uuid4().hex[:6]}@example.org"
    with rt.db.session() as session:
        user = session.get(User, share.owner.id)
        user.email, user.email_notifications = address, True
        row = session.get(Share, uuid.UUID(share.id))
        row.expires_at = utcnow() + timedelta(days=1, hours=20)
        row.created_at = utcnow() - timedelta(days=5)
    with rt.db.session() as session:
        assert share_service.notify_ending(session, rt) >= 1
    with rt.db.session() as session:
        assert share_service.notify_ending(session, rt) == 0  # once
        marks = session.scalars(
            select(AuditEvent).where(
                AuditEvent.share_id == uuid.UUID(share.id),
                AuditEvent.action == share_service.ENDING_NOTIFIED,
            )
        )
        assert len(list(marks)) == 1

    def written() -> list[Path]:
        new = set(outbox.glob("*.eml")) - before if outbox.exists() else set()
        return [p for p in new if address in p.read_text()]

    (path,) = wait_for(written, 60, "the share-ending e-mail")
    text = path.read_text()
    assert f"{rt.settings.public_url}/shares" in text and "two days" in text
    assert share.coach.name not in text and share.id not in text


def test_nobody_else_gets_ratings_per_person(client, rt, people, form, shares):
    """Every admin and representative endpoint, and the other people's feedback endpoints,
    answered after feedback exists: no rating, comment or feedback id of anyone's."""
    marker = f"rating-comment-{uuid.uuid4().hex[:8]}"
    created = draft(
        client,
        shares[0],
        form,
        ratings=[
            {"criterion_id": "empathy", "value": 4, "comment": marker},
            {"criterion_id": "resolution", "value": False},
        ],
        next_step=marker,
    )
    item = client.post(
        f"/api/v1/feedback/{created.get_json()['id']}/send", headers=shares[0].coach.headers
    ).get_json()
    needles = [marker, item["id"], str(shares[0].owner.id)]
    app = client.application
    answers = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1/admin", "/api/v1/oversight", "/admin", "/oversight")):
            continue
        if "GET" not in rule.methods or rule.arguments - {"form_id"}:
            continue
        for who in (people["admin"], people["rep"]):
            path = rule.rule.replace("<string:form_id>", form["id"])
            answers.append((path, who, client.get(path, headers=who.headers)))
    assert len(answers) >= 8
    for path, who, answer in answers:
        assert answer.status_code < 500, path
        body = answer.get_data(as_text=True)
        for needle in needles:
            if needle == str(shares[0].owner.id) and who is people["admin"]:
                continue  # the admin's user list names every account: not a rating
            assert needle not in body, (path, who.role, needle)
        assert '"criterion_id"' not in body, path  # no rating of anyone's
    summary = client.get("/api/v1/oversight/summary", headers=people["rep"].headers).get_json()
    assert summary["forms_in_use"] >= 1
    this_week = summary["weeks"][-1]
    # Fewer than five sent this week in a fresh test database would be hidden; any figure
    # shown is at least five.
    assert this_week["feedback_sent"] is None or this_week["feedback_sent"] >= 5


# --- pages ------------------------------------------------------------------------------------

XSS = "<script>alert(1)</script>"


def page(client, person, path):
    return client.get(path, headers={**person.headers, "Accept": "text/html"})


def test_the_pages_show_feedback_to_the_employee_and_the_panel_to_the_coach(
    client, rt, form, shares
):
    share = shares[0]
    marker = f"page-{uuid.uuid4().hex[:6]}"
    sent_feedback(client, share, form, summary=f"{XSS} {marker}")
    received = page(client, share.owner, "/feedback")
    assert received.status_code == 200
    html = received.get_data(as_text=True)
    assert marker in html and XSS not in html and "&lt;script&gt;" in html
    assert "Often" in html and "Shows empathy" in html  # the label of 3 on its scale
    assert f'href="/coach/shares/{share.id}#t=2.5"' in html
    assert received.headers["Cache-Control"].startswith("no-store") or "private" in (
        received.headers.get("Cache-Control") or ""
    )

    progress = page(client, share.owner, "/progress")
    assert progress.status_code == 200
    html = progress.get_data(as_text=True)
    assert "<svg" in html and 'role="img"' in html and "<table>" in html
    assert "Shows empathy" in html and "Summarise" in html
    # The chart's dates in the reader's language (SPEC §14), not strftime's English months.
    lines = client.get("/api/v1/me/progress", headers=share.owner.headers).get_json()["criteria"]
    at = datetime.fromisoformat(lines[0]["points"][0]["at"])
    norsk = client.get(
        "/progress", headers={**share.owner.headers, "Accept": "text/html", "Accept-Language": "nb"}
    ).get_data(as_text=True)
    svg = norsk[norsk.index("<svg") : norsk.index("</svg>")]
    assert f"Fra {babel_dates.format_date(at, locale='nb')}:" in svg  # 7. des. 2026
    assert f"<title>{babel_dates.format_date(at, locale='nb')}:" in svg
    assert at.strftime("%b") not in svg and at.strftime("%b") not in norsk

    coach_view = page(client, share.coach, f"/coach/shares/{share.id}").get_data(as_text=True)
    assert 'id="feedback-panel"' in coach_view and "Link this moment" in coach_view
    assert "Sometimes" in coach_view  # the scale's labels, to choose from
    owner_view = page(client, share.owner, f"/coach/shares/{share.id}").get_data(as_text=True)
    assert 'id="feedback-panel"' not in owner_view

    stranger = create_person(rt, "employee")
    assert marker not in page(client, stranger, "/feedback").get_data(as_text=True)
    assert marker not in page(client, stranger, "/progress").get_data(as_text=True)
    assert page(client, share.coach, "/feedback").status_code == 403
