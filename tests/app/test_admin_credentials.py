"""No admin request yields a credential, a session or a link that acts as someone else
(finding 1 of issue 12, SPEC §2.5).

The walk takes every route of the app's url_map (so a route added later is walked too) and
calls it as an admin — by session cookie with CSRF, and by API token — with ids of another
person. Every string in every answer and every cookie it sets is hashed and looked up among
the stored credentials (API tokens, upload credentials, sessions, enrolment and reset links):
any that belongs to someone other than the admin fails the test.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import select, update

from app.models import AccountLink, ApiToken, AuditEvent, User, WebSession, utcnow
from app.services import users
from tests.app.browsing import PASSWORD, browser, csrf_of, sign_in, signed_in_browser
from tests.app.test_access_matrix import fill
from tests.conftest import app_for, create_person, fresh_database

CANDIDATE = re.compile(rb"[A-Za-z0-9_.~-]{20,}")
ORDER_LAST = ("me.change_password", "me.end_sessions")  # they change the admin's own session


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Owners:
    """Which user each stored credential hash belongs to, read fresh from the database."""

    by_hash: dict[str, tuple[str, uuid.UUID]]

    @classmethod
    def load(cls, rt) -> Owners:
        found: dict[str, tuple[str, uuid.UUID]] = {}
        with rt.db.session() as session:
            for kind, model in (
                ("api token", ApiToken),
                ("session", WebSession),
                ("account link", AccountLink),
            ):
                for digest, user_id in session.execute(select(model.token_hash, model.user_id)):
                    found[digest] = (kind, user_id)
        return cls(found)

    def foreign(self, text: bytes, caller: uuid.UUID) -> list[str]:
        hits = []
        for candidate in set(CANDIDATE.findall(text)):
            owner = self.by_hash.get(hashlib.sha256(candidate).hexdigest())
            if owner is not None and owner[1] != caller:
                hits.append(f"{owner[0]} of {owner[1]}")
        return hits


def _body(endpoint: str) -> dict | None:
    return {
        "admin.create_user": {
            "login": unique("walk"),
            "name": "Walk Person",
            "role": "coach",
            "email": f"{unique('walk')}@example.org",
        },
        "admin.update_user": {"team_id": None},
        "admin.create_team": {"name": unique("Walk team")},
        "admin.update_policy": {"draft_lifetime_hours": 72},
        "me.update_me": {"email_notifications": True},
        "me.create_token": {"label": "admin's own"},
        "me.change_password": {
            "current_password": PASSWORD,
            "new_password": PASSWORD + " changed",
        },
    }.get(endpoint, {})


@pytest.fixture
def people(stack_app, rt):
    admin = create_person(rt, "admin", password=PASSWORD)
    victim = create_person(rt, "employee", password=PASSWORD)
    with rt.db.session() as session:
        session.get(User, victim.id).email = f"{unique('victim')}@example.org"
    victim_web, _ = signed_in_browser(stack_app, victim)  # a live session of the victim's
    return admin, victim, victim_web


def fresh_unenrolled(rt) -> str:
    with rt.db.session() as session:
        user = users.create_user(
            session,
            login=unique("new"),
            name="Not Yet Enrolled",
            role="coach",
            email=f"{unique('new')}@example.org",
        )
        return str(user.id)


def path_for(rule, rt, victim) -> str:
    """The rule's path with the victim's id (a fresh not-yet-enrolled person's for the
    enrolment link) and random ids of everything else."""
    ids = {name: str(uuid.uuid4()) for name in rule.arguments if name.endswith("_id")}
    if "user_id" in ids:
        ids["user_id"] = (
            fresh_unenrolled(rt) if rule.endpoint == "admin.send_enrolment_link" else str(victim.id)
        )
    return fill(rule, ids, {"kind": "video"})


def leaks(response, owners: Owners, caller: uuid.UUID) -> list[str]:
    """Someone else's credential in an answer: its body, a cookie it sets, a link, a token."""
    found = []
    text = response.get_data()
    found += [f"the answer holds the {hit}" for hit in owners.foreign(text, caller)]
    for raw in response.headers.getlist("Set-Cookie"):
        for morsel in SimpleCookie(raw).values():
            hits = owners.foreign(morsel.value.encode(), caller)
            found += [f"a cookie holds the {hit}" for hit in hits]
    # A link's secret follows "#"; the page's own address (the language switch returns to it)
    # is no link to anyone's account.
    if b"/account/link#" in text or b"crl_" in text:
        found.append("the answer holds a sign-in link")
    for token in re.findall(rb"cr_[A-Za-z0-9_-]{20,}", text):
        owner = owners.by_hash.get(hashlib.sha256(token).hexdigest())
        if owner is None or owner[1] != caller:
            found.append("the answer holds a token that is not the caller's own")
    return found


class AdminCaller:
    """The admin, by session cookie (with CSRF) or by API token; signs in again when the walk
    ended the admin's own session (sign out everywhere, a password change)."""

    def __init__(self, app, admin) -> None:
        self.app, self.admin, self.password = app, admin, PASSWORD
        self.web, _ = signed_in_browser(app, admin)

    def call(self, via: str, method: str, path: str, body: dict | None):
        if self.web.get("/api/v1/me").status_code == 401:
            assert sign_in(self.web, self.admin.login, self.password).status_code == 302
        if via == "token":
            client, headers = self.app.test_client(), dict(self.admin.headers)
        else:
            client, headers = self.web, {}
            if method != "GET":
                page = self.web.get("/account").get_data(as_text=True)
                headers["X-CSRFToken"] = csrf_of(page)
        response = client.open(path, method=method, headers=headers, json=body)
        if path == "/api/v1/me/password" and response.status_code == 200:
            self.password = body["new_password"]
        return response


def test_no_admin_request_returns_a_credential_for_someone_else(stack_app, rt, people):
    admin, victim, victim_web = people
    rules = sorted(
        (r for r in stack_app.url_map.iter_rules() if r.endpoint != "static"),
        key=lambda r: (r.endpoint in ORDER_LAST, r.endpoint),
    )
    caller = AdminCaller(stack_app, admin)
    problems: list[str] = []
    walked: set[str] = set()
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            body = _body(rule.endpoint) if method != "GET" else None
            for via in ("session", "token"):
                response = caller.call(via, method, path_for(rule, rt, victim), body)
                walked.add(rule.endpoint)
                where = f"{method} {rule.rule} ({rule.endpoint}) by {via}"
                problems += [
                    f"{where}: {leak}" for leak in leaks(response, Owners.load(rt), admin.id)
                ]
    everything = {r.endpoint for r in stack_app.url_map.iter_rules()} - {"static"}
    assert walked == everything
    assert not problems, "\n".join(problems)
    # The walk did reset the victim (admin.reset_user): their session and token ended, and
    # the link went to their own address — not to the admin.
    assert victim_web.get("/api/v1/me").status_code == 401
    assert stack_app.test_client().get("/api/v1/me", headers=victim.headers).status_code == 401


def test_the_token_endpoints_of_old_are_gone(client, rt):
    admin = create_person(rt, "admin")
    victim = create_person(rt, "employee")
    old = client.post(f"/api/v1/admin/users/{victim.id}/token", headers=admin.headers)
    assert old.status_code in (404, 405)
    created = client.post(
        "/api/v1/admin/users",
        json={"login": unique("c"), "name": "Cleo", "role": "coach", "password": "x" * 20},
        headers=admin.headers,
    )
    assert created.status_code == 400  # an admin sets nobody's password
    assert "password" in created.get_json()["error"]["message"]
    made = client.post(
        "/api/v1/admin/users",
        json={"login": unique("c"), "name": "Cleo", "role": "coach"},
        headers=admin.headers,
    )
    assert made.status_code == 201
    body = made.get_json()
    assert "token" not in body and body["enrolment_link_sent"] is False
    assert body["enrolled"] is False


def test_an_admin_sets_the_email_only_before_the_person_signs_in(client, rt):
    admin = create_person(rt, "admin")
    made = client.post(
        "/api/v1/admin/users",
        json={"login": unique("e"), "name": "Eve", "role": "employee"},
        headers=admin.headers,
    ).get_json()
    first = client.patch(
        f"/api/v1/admin/users/{made['id']}",
        json={"email": "eve@example.org"},
        headers=admin.headers,
    )
    assert first.status_code == 200 and first.get_json()["email"] == "eve@example.org"
    enrolled = create_person(rt, "employee", password=PASSWORD)  # has a password and a token
    locked = client.patch(
        f"/api/v1/admin/users/{enrolled.id}",
        json={"email": "admin-controlled@example.org"},
        headers=admin.headers,
    )
    assert locked.status_code == 409 and locked.get_json()["error"]["code"] == "email_locked"
    with rt.db.session() as session:
        assert session.get(User, enrolled.id).email is None


def test_without_an_address_the_admin_is_told_to_ask_the_operator(client, rt, stack_app):
    admin = create_person(rt, "admin")
    victim = create_person(rt, "employee", password=PASSWORD)
    web, _ = signed_in_browser(stack_app, victim)
    for action in ("reset", "enrolment-link"):
        response = client.post(f"/api/v1/admin/users/{victim.id}/{action}", headers=admin.headers)
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert error["code"] in ("no_email", "already_enrolled")
        if action == "reset":
            assert error["code"] == "no_email"
            assert f"consent-replay users reset {victim.login}" in error["message"]
    # Nothing was ended by the refused reset.
    assert web.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/me", headers=victim.headers).status_code == 200


def test_a_reset_ends_everything_and_is_audited(client, rt, stack_app):
    admin = create_person(rt, "admin")
    victim = create_person(rt, "coach", password=PASSWORD)
    with rt.db.session() as session:
        session.get(User, victim.id).email = f"{unique('v')}@example.org"
    web, _ = signed_in_browser(stack_app, victim)
    response = client.post(f"/api/v1/admin/users/{victim.id}/reset", headers=admin.headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["queued"] is True
    assert web.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=victim.headers).status_code == 401
    with rt.db.session() as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "user.reset")
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).one()
        assert event.actor_id == admin.id and event.detail["user"] == str(victim.id)
        assert session.scalar(select(WebSession).where(WebSession.user_id == victim.id)) is None
    # The password still signs in, and the first thing shown is the reset.
    again = browser(stack_app)
    assert sign_in(again, victim.login).headers["Location"].endswith("/account")


def test_resets_are_counted_in_oversight_and_small_counts_suppressed(stack_env, pg_server):
    with (
        fresh_database(pg_server, prefix="cr_resets") as url,
        app_for({**stack_env, "CR_DATABASE_URL": url}) as app,
    ):
        runtime = app.extensions["consent_replay"]
        rep = create_person(runtime, "representative")
        client = app.test_client()

        def this_week():
            summary = client.get("/api/v1/oversight/summary?weeks=2", headers=rep.headers)
            return summary.get_json()["weeks"][-1]["account_resets"]

        with runtime.db.session() as session:
            people = [
                users.create_user(session, login=unique("r"), name="R", role="employee")
                for _ in range(5)
            ]
        for index, person in enumerate(people):
            with runtime.db.session() as session:
                users.reset(session, session.get(User, person.id), actor_id=None)
            assert this_week() == (None if index < 4 else 5)


def test_the_coach_list_tells_coaches_apart(client, rt, make_person):
    """A second coach made with an existing coach's name cannot pass as the first: the list
    shows login and team, marks accounts made in the last 14 days and shared names."""
    employee = make_person("employee")
    name = f"Cleo Coach {uuid.uuid4().hex[:4]}"
    original = make_person("coach", name=name)
    lookalike = make_person("coach", name=name)
    with rt.db.session() as session:
        team = users.create_team(session, unique("North"))
        session.execute(
            update(User)
            .where(User.id == original.id)
            .values(created_at=utcnow().replace(year=utcnow().year - 1), team_id=team.id)
        )
        team_name = team.name
    coaches = client.get("/api/v1/coaches", headers=employee.headers).get_json()["coaches"]
    by_id = {c["id"]: c for c in coaches}
    first, second = by_id[str(original.id)], by_id[str(lookalike.id)]
    assert first["name"] == second["name"] == name
    assert (first["login"], first["team"]) == (original.login, team_name)
    assert (second["login"], second["team"]) == (lookalike.login, None)
    assert first["login"] != second["login"]
    assert (first["new_account"], second["new_account"]) == (False, True)
    assert first["name_shared"] and second["name_shared"]
    # Nothing else about a coach: no e-mail address, no activity.
    assert set(first) == {"id", "name", "login", "team", "created_at", "new_account", "name_shared"}
