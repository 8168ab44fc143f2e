"""SPEC §2, the invariants that must never be false — each with a test that would catch a breach.

Where an invariant's main test lives elsewhere, it is named here:

1. No capture without the employee's action ........ this file; tests/browser/test_capture.py
2. No sharing without a specific opt-in ............ this file; tests/app/test_shares_api.py
3. No plaintext media at rest ...................... tests/worker/test_pipeline.py,
                                                       tests/proof/test_privacy.py
4. Withdrawal is immediate and final ............... tests/app/test_revocation.py
5. Running the system is not watching it ........... tests/app/test_access_matrix.py, this file
6. Every access recorded, append-only, chained ..... tests/app/test_audit.py, this file
7. Declining is invisible .......................... this file
"""

from __future__ import annotations

import io
import json
import uuid

from sqlalchemy import func, select

from app.models import Recording, Share, User
from app.services import users

# --- 1. no capture without the employee's action -----------------------------------------------


def test_scheduled_jobs_only_clean_up(rt, make_person, client, make_recording):
    """The scheduler runs clean-up jobs only; running each creates no recording and no share."""
    import worker.tasks  # noqa: F401 - registers the task code
    from worker.celery_app import create_celery

    celery = create_celery(rt.settings)  # the worker's app: the one that carries the schedule
    scheduled = {entry["task"] for entry in celery.conf.beat_schedule.values()}
    assert scheduled == {
        "worker.tasks.expire_shares",
        "worker.tasks.delete_expired_drafts",
        "worker.tasks.delete_expired_uploads",
        "worker.tasks.resume_stalled_shares",
        "worker.tasks.sweep_scratch",
        "worker.tasks.reconcile_store",
        "worker.tasks.purge_expired_credentials",
        # Tells employees that a share ends in two days (SPEC §13): e-mail only, no capture.
        "worker.tasks.notify_ending_shares",
    }
    make_recording(make_person("employee"))
    with rt.db.session() as session:
        before = (
            session.scalar(select(func.count()).select_from(Recording)),
            session.scalar(select(func.count()).select_from(Share)),
        )
    try:
        for name in scheduled:
            celery.tasks[name]()  # the body, here, on the worker app's own runtime
    finally:
        celery.runtime.db.dispose()
    with rt.db.session() as session:
        after = (
            session.scalar(select(func.count()).select_from(Recording)),
            session.scalar(select(func.count()).select_from(Share)),
        )
    assert after == before


def test_only_the_employee_themself_can_create_a_recording(
    client, make_person, samples, make_recording
):
    for role in ("coach", "admin", "representative"):
        someone = make_person(role)
        response = client.post(
            "/api/v1/recordings",
            data={"screen": (io.BytesIO(samples.screen_webm.read_bytes()), "s.webm")},
            headers=someone.headers,
            content_type="multipart/form-data",
        )
        assert response.status_code == 403, role
    employee = make_person("employee")
    recording = make_recording(employee)
    other = make_person("employee")
    listed = client.get("/api/v1/recordings", headers=other.headers).get_json()["recordings"]
    assert recording["id"] not in {r["id"] for r in listed}


def test_no_route_offers_live_capture(stack_app):
    """No live view or capture stream: every route is a plain request/response endpoint and
    the only way content enters is the employee's own upload."""
    creating = [
        (rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}))
        for rule in stack_app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/recordings") and "POST" in rule.methods
    ]
    assert sorted(creating) == [
        ("/api/v1/recordings", ["POST"]),
        # a job that reads the draft already uploaded (SPEC §12); it takes no content
        ("/api/v1/recordings/<string:recording_id>/redaction-suggestions", ["POST"]),
        ("/api/v1/recordings/<string:recording_id>/shares", ["POST"]),
    ]
    for rule in stack_app.url_map.iter_rules():
        path = rule.rule.lower()
        assert not any(word in path for word in ("live", "socket", "monitor", "watch")), path


# --- 2. no sharing without a specific opt-in ----------------------------------------------------


def test_a_share_needs_coaches_purpose_and_end_date(client, make_person, make_recording):
    employee, coach = make_person("employee"), make_person("coach")
    recording = make_recording(employee)
    url = f"/api/v1/recordings/{recording['id']}/shares"
    complete = {"coach_ids": [str(coach.id)], "purpose": "Greeting", "expires_in_days": 3}
    for missing in complete:
        body = {k: v for k, v in complete.items() if k != missing}
        response = client.post(url, json=body, headers=employee.headers)
        assert response.status_code == 400, missing
        assert response.get_json()["error"]["code"] == "invalid_request"
    too_long = {**complete, "expires_in_days": 365}
    assert client.post(url, json=too_long, headers=employee.headers).status_code == 400
    not_a_coach = {**complete, "coach_ids": [str(make_person("admin").id)]}
    response = client.post(url, json=not_a_coach, headers=employee.headers)
    assert response.get_json()["error"]["code"] == "unknown_coach"
    # Nobody else can opt in for the employee: not the coach, not an admin, not a colleague.
    for someone in (coach, make_person("admin"), make_person("employee")):
        assert client.post(url, json=complete, headers=someone.headers).status_code in (403, 404)


def test_only_named_coaches_see_a_share(client, make_person, make_recording, make_share, rt):
    employee, named, other = make_person("employee"), make_person("coach"), make_person("coach")
    recording = make_recording(employee)
    share = make_share(employee, recording, named, purpose="Closing", expires_in_days=2)
    assert client.get(f"/api/v1/shares/{share['id']}", headers=named.headers).status_code == 200
    assert client.get(f"/api/v1/shares/{share['id']}", headers=other.headers).status_code == 404
    listed = client.get("/api/v1/shares", headers=other.headers).get_json()["shares"]
    assert share["id"] not in {s["id"] for s in listed}
    import jwt

    claims = jwt.decode(share["receipt"], options={"verify_signature": False})
    assert claims["grantees"] == [str(named.id)]
    assert claims["purpose"] == "Closing" and claims["recording"] == recording["id"]


# --- 5. running is not watching -------------------------------------------------------------


def test_admin_cannot_grant_itself_access(client, make_person, make_recording, make_share, rt):
    employee, coach, admin = make_person("employee"), make_person("coach"), make_person("admin")
    recording = make_recording(employee, title="Invariant check")
    share = make_share(employee, recording, coach, purpose="Tone", expires_in_days=2)
    # An admin can make accounts, but gets no credential for them (issue 12), and an account
    # made after the share — even once its owner holds a token — sees nothing of it.
    made = client.post(
        "/api/v1/admin/users",
        json={"login": f"x-{uuid.uuid4().hex[:6]}", "name": "Sneaky", "role": "coach"},
        headers=admin.headers,
    )
    assert made.status_code == 201 and "token" not in made.get_json()
    with rt.db.session() as session:
        token = users.issue_token(session, session.get(User, uuid.UUID(made.get_json()["id"])))
    sneaky = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/shares/{share['id']}", headers=sneaky).status_code == 404
    assert client.get(f"/media/shares/{share['id']}/video", headers=sneaky).status_code == 404
    assert client.get(f"/api/v1/shares/{share['id']}", headers=admin.headers).status_code == 403
    for rule in ("/api/v1/admin/users", "/api/v1/admin/policy", "/api/v1/admin/keys"):
        body = client.get(rule, headers=admin.headers).get_data(as_text=True)
        assert recording["id"] not in body and share["id"] not in body
        assert "Invariant check" not in body


# --- 6. every access is recorded ------------------------------------------------------------


def test_audit_log_refuses_edits(rt):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from app.services import audit

    with rt.db.session() as session:
        audit.append(session, "test.event", detail={"n": 1})
    for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        try:
            with rt.db.session() as session:
                session.execute(text(statement))
        except DBAPIError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")


# --- 7. declining is invisible ------------------------------------------------------------------


def test_drafts_and_discards_are_invisible_to_others(client, make_person, make_recording):
    employee = make_person("employee")
    watchers = {
        "admin": (make_person("admin"), ["/api/v1/admin/users", "/api/v1/admin/keys"]),
        "representative": (
            make_person("representative"),
            ["/api/v1/oversight/summary", "/api/v1/oversight/policy-history"],
        ),
        "coach": (make_person("coach"), ["/api/v1/shares"]),
    }

    def snapshot():
        return {
            f"{role} {url}": client.get(url, headers=person.headers).get_json()
            for role, (person, urls) in watchers.items()
            for url in urls
        }

    # Someone else's draft exists already, as in any deployment that is in use.
    make_recording(make_person("employee"), title="someone else")
    before = snapshot()
    drafts = [make_recording(employee, title=f"draft {i}") for i in range(3)]
    for draft in drafts[:2]:
        assert (
            client.delete(f"/api/v1/recordings/{draft['id']}", headers=employee.headers).status_code
            == 200
        )
    after = snapshot()
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
