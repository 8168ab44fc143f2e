"""Every endpoint and page, as every role, against its own, a foreign and a random id.

The routes come from ``app.url_map``, so a route added later is walked too: it is either in
:data:`EXPECTED_ROLES` (reviewed), or tested against the roles its ``require`` decorator
declares, or — if it has no ``require`` at all — it must be in :data:`PUBLIC`.

The rules (SPEC §5, §2, §11):

* a wrong role gets 403, anonymous gets 401 (API) or a redirect to /login (pages);
* an id that belongs to someone else answers 404, byte for byte like an id that does not exist;
* one's own id works;
* no response carries the other side's recording id, share id, title, purpose, comments or
  name; admins and representatives get no content at all, representatives no names either;
* an HTML response never carries the XSS probe title unescaped.

Two people "sides" are set up: employee A with recording RA and a ready share SA granted to
coach CA; employee B with RB and SB granted to coach CB. A's title is the XSS probe.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import pytest
from sqlalchemy import select

from app.models import ApiToken, User
from app.services import users
from tests.conftest import Person, create_person, wait_for
from tests.media_helpers import opt_in, small_files, upload_recording

XSS = "<script>alert(1)</script>"
ROLES = ("employee", "other_employee", "coach", "other_coach", "admin", "representative")
ACTORS = (*ROLES, "anonymous")
ROLE_OF = {
    "employee": "employee",
    "other_employee": "employee",
    "coach": "coach",
    "other_coach": "coach",
    "admin": "admin",
    "representative": "representative",
}
SIDE = {"employee": "a", "coach": "a", "other_employee": "b", "other_coach": "b"}
PAGE_BLUEPRINTS = ("pages.", "employee_pages.", "admin_pages.", "coach_pages.", "account_pages.")

# Routes anyone may call, signed in or not. Anything else must carry a ``require`` decorator.
PUBLIC = {
    "static",
    "pages.index",
    "pages.login",
    "pages.logout",
    "pages.account_link",
    "ops.healthz",
    "ops.readyz",
    "ops.metrics",
    "ops.jwks",
    "api-docs.openapi_json",
    # Answers only for a receipt this deployment signed (tests/app/test_receipt_status.py).
    "receipts.receipt_status",
    # Sign-in with the identity provider (SPEC §15): 404 where none is set up; the flows and
    # their adversaries are in tests/oidc/.
    "oidc.login",
    "oidc.callback",
    "oidc.backchannel_logout",
    # The language (SPEC §14): the scripts' catalog, and the switch (the CSRF check still
    # applies to a browser; a signed-in person's choice is their own).
    "i18n.script_catalog",
    "i18n.switch_language",
}

E, C, A, R = "employee", "coach", "admin", "representative"
EVERYONE = {E, C, A, R}
EXPECTED_ROLES: dict[str, set[str]] = {
    "me.get_me": EVERYONE,
    "me.update_me": EVERYONE,
    "me.list_tokens": EVERYONE,
    "me.create_token": EVERYONE,
    "me.revoke_token": EVERYONE,
    "me.change_password": EVERYONE,
    "me.list_sessions": EVERYONE,
    "me.end_sessions": EVERYONE,
    "me.security_log": EVERYONE,
    "me.upload_credential": {E},
    "account_pages.account": EVERYONE,
    "shares.get_policy": EVERYONE,
    "recordings.upload": {E},
    "recordings.list_recordings": {E},
    "recordings.get_recording": {E},
    "recordings.delete_recording": {E},
    "recordings.request_suggestions": {E},
    "recordings.get_suggestions": {E},
    "uploads.create_upload": {E},
    "uploads.list_uploads": {E},
    "uploads.get_upload": {E},
    "uploads.append": {E},
    "uploads.terminate": {E},
    "shares.create_share": {E},
    "shares.list_shares": {E, C},
    "shares.get_share": {E, C},
    "shares.access_log": {E},
    "shares.list_comments": {E, C},
    "shares.add_comment": {E, C},
    "shares.revoke_share": {E},
    "shares.start_view": {E, C},
    "shares.heartbeat": {E, C},
    "shares.list_coaches": {E},
    "export.export": {E},
    "media.media": {E, C},
    "media.recording_media": {E},
    "admin.list_users": {A},
    "admin.create_user": {A},
    "admin.update_user": {A},
    "admin.send_enrolment_link": {A},
    "admin.reset_user": {A},
    "admin.mail_overview": {A},
    "admin.list_teams": {A},
    "admin.create_team": {A},
    "admin.get_policy": {A},
    "admin.update_policy": {A},
    "admin.key_status": {A},
    "admin.rotate_keys": {A},
    "admin.retire_keys": {A},
    "oversight.summary": {R},
    "oversight.policy_history": {R},
    "oversight.audit_chain": {R, A},
    "oversight.data_map": {R, A},
    "employee_pages.recordings": {E},
    "employee_pages.capture": {E},
    "employee_pages.shares": {E},
    "employee_pages.my_data": {E},
    "employee_pages.embed_example": {E},
    "employee_pages.feedback": {E},
    "employee_pages.progress": {E},
    "admin_pages.users": {A},
    "admin_pages.policy": {A},
    "admin_pages.keys": {A},
    "admin_pages.feedback_forms": {A},
    "admin_pages.oversight": {R},
    "admin_pages.records": {R, A},
    "admin_pages.data_map_download": {R, A},
    "coach_pages.shared_with_me": {C},
    "coach_pages.playback": {C, E},
    "feedback.list_forms": {E, C, R},
    "feedback.create_feedback": {C},
    "feedback.list_feedback": {E, C},
    "feedback.get_feedback": {E, C},
    "feedback.update_feedback": {C},
    "feedback.send_feedback": {C},
    "feedback.acknowledge_feedback": {E},
    "feedback.delete_feedback": {E},
    "feedback.my_progress": {E},
    "feedback_forms_admin.admin_list_forms": {A},
    "feedback_forms_admin.propose_form": {A},
    "feedback_forms_admin.retire_form": {A},
    "feedback_forms_oversight.review_forms": {R},
    "feedback_forms_oversight.approve_form": {R},
    "feedback_forms_oversight.reject_form": {R},
}
# Only the person in their browser (the session cookie) may do these: the walk's bearer
# tokens must get 403 "session_required" even where the role allows it.
SESSION_ONLY = {"me.create_token", "me.change_password", "me.upload_credential"}
# Authorised by the grant, not the role (any signed-in user may ask, only owner and grantees
# get an answer): for other roles a refusal is 404 as well as 403 — never content.
GRANT_CHECKED = {"media.media"}
# Calls that would destroy or change the fixture's objects get a fresh object as "own" id.
DESTRUCTIVE = {
    "recordings.delete_recording",
    "uploads.append",
    "uploads.terminate",
    "shares.revoke_share",
    "admin.update_user",
    "admin.send_enrolment_link",
    "admin.reset_user",
    "me.revoke_token",
    "feedback.send_feedback",
    "feedback.acknowledge_feedback",
    "feedback.delete_feedback",
    "feedback_forms_admin.retire_form",
    "feedback_forms_oversight.approve_form",
    "feedback_forms_oversight.reject_form",
}
# Path ids with no owner (accounts, feedback forms): a real one, or none.
UNOWNED_IDS = ("user_id", "form_id")
VALUES = {
    "kind": ["video", "poster.jpg", "thumbnails.jpg", "waveform.json"],
    "part": ["screen", "audio"],
    "fmt": ["md", "json"],
    "lang": ["en", "nb"],
}


def upload(client, person: Person, samples, title: str, *, full: bool = True) -> dict:
    files = small_files(samples) if full else {"audio": samples.call_wav}
    return upload_recording(client, person, files, title=title, customer_informed=True)


TUS = {"Tus-Resumable": "1.0.0"}


def tus_upload(client, person: Person, samples, *, send: bool = True) -> str:
    """An unfinished resumable upload of the person's, with its first chunks sent."""
    data = samples.screen_webm.read_bytes()
    created = client.post(
        "/api/v1/uploads", headers={**person.headers, **TUS, "Upload-Length": str(len(data))}
    )
    assert created.status_code == 201, created.get_json()
    url = created.headers["Location"]
    if send:
        sent = client.patch(url, data=data[:40000], headers={**person.headers, **tus_patch(0)})
        assert sent.status_code == 204
    return url.rsplit("/", 1)[1]


def tus_patch(offset: int) -> dict[str, str]:
    return {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}


def make_share(client, person: Person, recording_id: str, coach: Person, purpose: str) -> dict:
    return opt_in(client, person, recording_id, [coach], purpose=purpose, expires_in_days=2)


@dataclass
class Side:
    employee: Person
    coach: Person
    recording: dict
    share: dict
    title: str
    purpose: str
    comment: str
    views: dict[str, str] = field(default_factory=dict)  # actor → own view id on the share
    spare_recording: dict | None = None  # small, for throwaway shares
    employee_token_id: str = ""  # the employee's API token's id (someone else's, to others)
    upload_id: str = ""  # an unfinished resumable upload
    feedback_sent: str = ""  # feedback the coach sent the employee (SPEC §13)
    feedback_draft: str = ""  # the coach's unsent draft
    feedback_text: str = ""  # words of that feedback: its summary and a rating's comment

    @property
    def needles(self) -> list[str]:
        return [
            self.recording["id"],
            self.share["id"],
            self.title,
            self.purpose,
            self.comment,
            self.feedback_sent,
            self.feedback_draft,
            self.feedback_text,
        ]


@dataclass
class World:
    people: dict[str, Person]
    sides: dict[str, Side]
    client: Any
    samples: Any
    form_id: str = ""  # an approved feedback form
    counter: int = 0

    def side_of(self, actor: str) -> Side | None:
        return self.sides.get(SIDE.get(actor, ""))

    def other_side(self, actor: str) -> Side | None:
        side = SIDE.get(actor)
        return None if side is None else self.sides["b" if side == "a" else "a"]


@pytest.fixture(scope="module")
def world(stack_app, rt, worker, samples) -> World:
    client = stack_app.test_client()
    tag = uuid.uuid4().hex[:6]
    people = {
        "employee": create_person(rt, "employee", name=f"Alice Alpha {tag}"),
        "other_employee": create_person(rt, "employee", name=f"Bob Bravo {tag}"),
        "coach": create_person(rt, "coach", name=f"Carol Coach {tag}"),
        "other_coach": create_person(rt, "coach", name=f"Dave Coach {tag}"),
        "admin": create_person(rt, "admin", name=f"Erin Admin {tag}"),
        "representative": create_person(rt, "representative", name=f"Rita Rep {tag}"),
    }
    sides = {}
    for key, owner, coach, title in (
        ("a", "employee", "coach", f"{XSS} alpha {tag}"),
        ("b", "other_employee", "other_coach", f"Bravo secret {tag}"),
    ):
        recording = upload(client, people[owner], samples, title)
        purpose = f"Purpose {key} {tag}"
        share = make_share(client, people[owner], recording["id"], people[coach], purpose)
        sides[key] = Side(
            employee=people[owner],
            coach=people[coach],
            recording=recording,
            share=share,
            title=title,
            purpose=purpose,
            comment=f"Comment {key} {tag}",
        )
    for key, side in sides.items():

        def ready(side=side):
            body = client.get(f"/api/v1/shares/{side.share['id']}", headers=side.coach.headers)
            body = body.get_json()
            assert body["status"] != "failed", body
            return body["status"] == "ready"

        wait_for(ready, 120, f"share {key} to be ready")
        comment = client.post(
            f"/api/v1/shares/{side.share['id']}/comments",
            json={"at_s": 1, "body": side.comment},
            headers=side.coach.headers,
        )
        assert comment.status_code == 201
        for actor, person in (
            ("employee" if key == "a" else "other_employee", side.employee),
            ("coach" if key == "a" else "other_coach", side.coach),
        ):
            view = client.post(f"/api/v1/shares/{side.share['id']}/views", headers=person.headers)
            assert view.status_code == 201, view.get_json()
            side.views[actor] = view.get_json()["id"]
        side.spare_recording = upload(client, side.employee, samples, "spare", full=False)
        side.upload_id = tus_upload(client, side.employee, samples)
        # Suggestions asked for, so that reading them is a success to the owner (SPEC §12).
        asked = client.post(
            f"/api/v1/recordings/{side.recording['id']}/redaction-suggestions",
            headers=side.employee.headers,
        )
        assert asked.status_code == 202, asked.get_json()
    world = World(people=people, sides=sides, client=client, samples=samples)
    world.form_id = make_form(rt, people["admin"], people["representative"])
    for key, side in sides.items():
        side.employee_token_id = token_id_of(world, side.employee)
        side.feedback_text = f"Feedback {key} {tag}"
        side.feedback_sent = give_feedback(world, side, send=True)
        side.feedback_draft = give_feedback(world, side, send=False)
    return world


def make_form(rt, admin: Person, representative: Person | None) -> str:
    """A feedback form the admin proposed and, given a representative, they approved."""
    from app.services import forms

    with rt.db.session() as session:
        form = forms.propose(
            session,
            name="Matrix form",
            language="en",
            criteria=[{"id": "clear", "title": "Speaks clearly", "scale": "yes_no"}],
            actor_id=admin.id,
        )
        if representative is not None:
            forms.approve(session, form.id, actor_id=representative.id)
        return str(form.id)


def give_feedback(world: World, side: Side, *, send: bool) -> str:
    """Feedback by the side's coach on its share: sent to the employee, or a draft."""
    rating = {"criterion_id": "clear", "value": True, "comment": side.feedback_text}
    created = world.client.post(
        f"/api/v1/shares/{side.share['id']}/feedback",
        json={
            "form_id": world.form_id,
            "ratings": [rating],
            "next_step": "Pause more",
            "summary": side.feedback_text,
        },
        headers=side.coach.headers,
    )
    assert created.status_code == 201, created.get_json()
    feedback_id = created.get_json()["id"]
    if send:
        sent = world.client.post(f"/api/v1/feedback/{feedback_id}/send", headers=side.coach.headers)
        assert sent.status_code == 200, sent.get_json()
    return feedback_id


# --- building the calls -----------------------------------------------------------------------


def roles_for(app, endpoint: str) -> set[str] | None:
    """The roles that may call an endpoint; None for a public one."""
    if endpoint in EXPECTED_ROLES:
        return EXPECTED_ROLES[endpoint]
    declared = getattr(app.view_functions[endpoint], "required_roles", None)
    if declared is None:
        return None
    return {r.value for r in declared} if declared else set(EVERYONE)


def is_page(endpoint: str) -> bool:
    return endpoint.startswith(PAGE_BLUEPRINTS)


def throwaway(world: World, endpoint: str, actor: str) -> dict[str, str]:
    """A fresh object for a destructive call, on the actor's side (side A for the others)."""
    side = world.side_of(actor) or world.sides["a"]
    client = world.client
    world.counter += 1
    if endpoint == "recordings.delete_recording":
        recording = upload(client, side.employee, world.samples, "throwaway", full=False)
        return {"recording_id": recording["id"]}
    if endpoint in ("uploads.append", "uploads.terminate"):
        return {"upload_id": tus_upload(client, side.employee, world.samples, send=False)}
    if endpoint == "shares.revoke_share":
        share = make_share(
            client, side.employee, side.spare_recording["id"], side.coach, "throwaway"
        )
        return {"share_id": share["id"]}
    rt = world.client.application.extensions["consent_replay"]
    if endpoint.startswith("feedback."):
        return {
            "feedback_id": give_feedback(world, side, send=endpoint != "feedback.send_feedback")
        }
    if endpoint.startswith("feedback_forms_"):
        approver = world.people["representative"] if endpoint.endswith("retire_form") else None
        return {"form_id": make_form(rt, world.people["admin"], approver)}
    if endpoint == "me.revoke_token":
        with rt.db.session() as session:
            user = session.get(User, world.people[actor].id)
            row, _token = users.create_token(session, user, "throwaway")
            return {"token_id": str(row.id)}
    if endpoint in ("admin.send_enrolment_link", "admin.reset_user"):
        # Someone with an address of their own; for the enrolment link, not yet enrolled.
        with rt.db.session() as session:
            user = users.create_user(
                session,
                login=f"tw-{uuid.uuid4().hex[:8]}",
                name="Throwaway",
                role="employee",
                email=f"throwaway-{uuid.uuid4().hex[:6]}@example.org",
            )
            if endpoint == "admin.reset_user":
                users.issue_token(session, user, "throwaway")
            return {"user_id": str(user.id)}
    person = create_person(rt, "employee", name="Throwaway")
    return {"user_id": str(person.id)}


def token_id_of(world: World, person: Person) -> str:
    rt = world.client.application.extensions["consent_replay"]
    with rt.db.session() as session:
        return str(
            session.scalar(
                select(ApiToken.id).where(ApiToken.token_hash == users.hash_token(person.token))
            )
        )


def ids_for(world: World, actor: str, kind: str) -> dict[str, str]:
    """The path ids for an actor: its own, the other side's, or random ones."""
    if kind == "random":
        return {
            "recording_id": str(uuid.uuid4()),
            "share_id": str(uuid.uuid4()),
            "view_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()),
            "token_id": str(uuid.uuid4()),
            "upload_id": str(uuid.uuid4()),
            "feedback_id": str(uuid.uuid4()),
            "form_id": str(uuid.uuid4()),
        }
    if kind == "own":
        side = world.side_of(actor)
        if side is None:
            return {}
        ids = {"share_id": side.share["id"], "view_id": side.views.get(actor, "")}
        if ROLE_OF.get(actor) == "employee":
            ids["recording_id"] = side.recording["id"]
            ids["upload_id"] = side.upload_id
            ids["feedback_id"] = side.feedback_sent
        else:
            ids["feedback_id"] = side.feedback_draft
        return ids
    # foreign: for people on a side, the other side's; for admin, representative and
    # anonymous, side A's and side B's are both someone else's (two kinds: foreign-a/-b).
    side = world.other_side(actor) or world.sides[kind[-1]]
    viewer = next(iter(side.views))
    return {
        "recording_id": side.recording["id"],
        "share_id": side.share["id"],
        "view_id": side.views[viewer],
        "token_id": side.employee_token_id,
        "upload_id": side.upload_id,
        "feedback_id": side.feedback_sent,
    }


def id_kinds(actor: str) -> list[str]:
    if actor in SIDE:
        return ["own", "foreign", "random"]
    return ["foreign-a", "foreign-b", "random"]


def body_for(world: World, endpoint: str, actor: str) -> dict[str, Any]:
    side = world.side_of(actor) or world.sides["a"]
    if endpoint == "uploads.create_upload":
        return {"headers": {**TUS, "Upload-Length": "1000"}}
    if endpoint == "uploads.append":
        data = world.samples.screen_webm.read_bytes()[:40000]
        return {"headers": tus_patch(0), "data": data}
    if endpoint == "uploads.terminate":
        return {"headers": TUS}
    if endpoint == "recordings.upload":
        return {
            "data": {"audio": (io.BytesIO(world.samples.mono_wav.read_bytes()), "call.wav")},
            "content_type": "multipart/form-data",
        }
    bodies = {
        "shares.create_share": {
            "coach_ids": [str(side.coach.id)],
            "purpose": "matrix",
            "expires_in_days": 1,
        },
        "shares.add_comment": {"at_s": 1, "body": "matrix comment"},
        "shares.heartbeat": {"position_s": 1, "watched_s": 1},
        "admin.create_user": {
            "login": f"mx-{uuid.uuid4().hex[:8]}",
            "name": "Matrix Person",
            "role": "employee",
        },
        "admin.update_user": {"active": True},
        "me.update_me": {"email_notifications": True},
        "me.create_token": {"label": "matrix"},
        "me.change_password": {"new_password": "a matrix password that is long"},
        "admin.create_team": {"name": f"Matrix team {uuid.uuid4().hex[:6]}"},
        "admin.update_policy": {"draft_lifetime_hours": 72},
        "feedback.create_feedback": {"form_id": world.form_id},
        "feedback.update_feedback": {"summary": "matrix"},
        "feedback.acknowledge_feedback": {"reply": "matrix", "agree": True},
        "feedback_forms_admin.propose_form": {
            "name": "Matrix proposal",
            "criteria": [{"id": "x", "title": "X", "scale": "yes_no"}],
        },
        "feedback_forms_oversight.reject_form": {"reason": "matrix"},
    }
    return {"json": bodies[endpoint]} if endpoint in bodies else {}


@dataclass
class Call:
    endpoint: str
    method: str
    actor: str
    kind: str  # own, foreign, foreign-a, foreign-b, random or none
    url: str
    ids: dict[str, str]
    status: int
    location: str
    mimetype: str
    body: bytes
    headers: dict[str, str]


def fill(rule, ids: dict[str, str], extra: dict[str, str]) -> str | None:
    values = {}
    for name in rule.arguments:
        if name in extra:
            values[name] = extra[name]
        elif ids.get(name):
            values[name] = ids[name]
        elif name.endswith("_id"):
            return None
        else:
            values[name] = "x"
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, path)
    return path


def walk(app, world: World) -> list[Call]:
    calls: list[Call] = []
    clients = {actor: app.test_client() for actor in ACTORS}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        roles = roles_for(app, rule.endpoint)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        if rule.endpoint in ("pages.login", "pages.account_link"):
            methods = ["GET"]  # POST is rate limited and tested in test_auth / test_account
        extras = [
            dict(zip(choice_names, combo, strict=True))
            for choice_names in [[n for n in rule.arguments if n in VALUES]]
            for combo in _product([VALUES[n] for n in choice_names])
        ]
        has_ids = any(name.endswith("_id") for name in rule.arguments)
        for method in methods:
            for actor in ACTORS:
                if any(name in rule.arguments for name in UNOWNED_IDS):
                    kinds = ["own", "random"]
                elif has_ids:
                    kinds = id_kinds(actor)
                else:
                    kinds = ["none"]
                for kind in kinds:
                    for extra in extras:
                        ids = ids_for(world, actor, kind) if has_ids else {}
                        if kind == "own" and rule.endpoint in DESTRUCTIVE and roles is not None:
                            ids = {**ids, **throwaway(world, rule.endpoint, actor)}
                        if "user_id" in rule.arguments and kind == "own" and "user_id" not in ids:
                            ids = {**ids, **throwaway(world, "admin.update_user", actor)}
                        url = fill(rule, ids, extra)
                        if url is None:
                            continue
                        headers = {}
                        if actor != "anonymous":
                            headers.update(world.people[actor].headers)
                        if is_page(rule.endpoint):
                            headers["Accept"] = "text/html,application/xhtml+xml"
                        kwargs = body_for(world, rule.endpoint, actor) if method != "GET" else {}
                        headers.update(kwargs.pop("headers", {}))
                        response = clients[actor].open(
                            url, method=method, headers=headers, **kwargs
                        )
                        calls.append(
                            Call(
                                endpoint=rule.endpoint,
                                method=method,
                                actor=actor,
                                kind=kind,
                                url=url,
                                ids=ids,
                                status=response.status_code,
                                location=response.headers.get("Location", ""),
                                mimetype=response.mimetype or "",
                                body=response.get_data(),
                                headers=dict(response.headers),
                            )
                        )
                        response.close()
    return calls


def _product(lists: list[list[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for values in lists:
        out = [(*prefix, value) for prefix in out for value in values]
    return out


@pytest.fixture(scope="module")
def calls(stack_app, world) -> list[Call]:
    return walk(stack_app, world)


def describe(call: Call) -> str:
    return f"{call.method} {call.url} as {call.actor} ({call.kind}) → {call.status}"


# --- the rules --------------------------------------------------------------------------------


def test_every_route_is_protected_or_known_public(stack_app):
    unprotected = [
        rule.endpoint
        for rule in stack_app.url_map.iter_rules()
        if rule.endpoint not in PUBLIC
        and getattr(stack_app.view_functions[rule.endpoint], "required_roles", None) is None
    ]
    assert unprotected == [], f"routes without @require and not declared public: {unprotected}"


def test_the_walk_covers_every_route(stack_app, calls):
    walked = {call.endpoint for call in calls}
    routes = {rule.endpoint for rule in stack_app.url_map.iter_rules()} - {"static"}
    assert routes <= walked, f"not walked: {sorted(routes - walked)}"
    assert len(calls) > 500


def test_roles_and_ownership(stack_app, calls):
    problems = []
    for call in calls:
        roles = roles_for(stack_app, call.endpoint)
        if roles is None:
            if call.status >= 500 and call.endpoint != "ops.readyz":
                problems.append(f"{describe(call)}: server error on a public route")
            continue
        role = ROLE_OF.get(call.actor)
        if call.actor == "anonymous":
            if is_page(call.endpoint):
                ok = call.status == 302 and "/login" in call.location
                want = "a redirect to /login"
            else:
                ok, want = call.status == 401, "401"
        elif role not in roles:
            allowed = {403, 404} if call.endpoint in GRANT_CHECKED else {403}
            ok, want = call.status in allowed, "/".join(map(str, sorted(allowed)))
        elif call.kind in ("foreign", "random", "foreign-a", "foreign-b"):
            ok, want = call.status == 404, "404"
        elif call.endpoint in SESSION_ONLY:
            ok = call.status == 403 and b'"session_required"' in call.body
            want = "403 session_required (a bearer token)"
        else:
            ok, want = call.status < 400, "success"
        if not ok:
            detail = call.body[:160].decode("utf-8", "replace")
            problems.append(f"{describe(call)}; want {want}: {detail}")
    assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems[:80])


def _normalised(call: Call) -> bytes:
    body = call.body
    for value in call.ids.values():
        body = body.replace(value.encode(), b"<id>")
    body = re.sub(rb'name="csrf-token" content="[^"]*"', b"", body)
    body = re.sub(rb'name="csrf_token" value="[^"]*"', b"", body)
    return body


def test_foreign_ids_answer_exactly_like_random_ids(calls):
    by_key: dict[tuple, dict[str, Call]] = {}
    for call in calls:
        if call.kind == "none":
            continue
        key = (call.endpoint, call.method, call.actor, re.sub(r"[0-9a-f-]{36}", "", call.url))
        by_key.setdefault(key, {})[call.kind] = call
    problems = []
    compared = 0
    for kinds in by_key.values():
        random = kinds.get("random")
        if random is None:
            continue
        for name, call in kinds.items():
            if not name.startswith("foreign"):
                continue
            compared += 1
            same = (call.status, call.mimetype, _normalised(call)) == (
                random.status,
                random.mimetype,
                _normalised(random),
            )
            if not same:
                problems.append(
                    f"{describe(call)} differs from a random id ({random.status}): "
                    f"{call.body[:120]!r} vs {random.body[:120]!r}"
                )
    assert compared > 100
    assert not problems, "\n".join(problems[:40])


def _texts(call: Call) -> list[bytes]:
    """The body, and for a ZIP every member too (a leak inside a deflated file counts)."""
    texts = [call.body]
    if call.mimetype == "application/zip" and call.body:
        with zipfile.ZipFile(io.BytesIO(call.body)) as archive:
            texts += [archive.read(name) for name in archive.namelist()]
    return texts


def test_no_response_carries_someone_elses_data(world, calls):
    content = [n for side in world.sides.values() for n in side.needles]
    names = [world.people[a].name for a in ("employee", "other_employee", "coach", "other_coach")]
    problems = []
    for call in calls:
        if call.actor in SIDE:
            other = world.other_side(call.actor)
            needles = [*other.needles, other.employee.name]
        elif call.actor == "admin":
            needles = content  # admins manage accounts (names) but see no content
        else:  # representative and anonymous: neither content nor names
            needles = content + names
        # An id the caller sent itself may be echoed back (e.g. in a sign-in redirect).
        needles = [n for n in needles if n not in call.url]
        for text in _texts(call):
            for needle in needles:
                if needle.encode() in text:
                    problems.append(f"{describe(call)} contains {needle!r}")
    assert not problems, "\n".join(sorted(set(problems))[:60])


def test_admin_and_representative_reach_no_content(world, calls):
    content_endpoints = {
        "media.media",
        "media.recording_media",
        "recordings.get_recording",
        "recordings.list_recordings",
        "shares.get_share",
        "shares.list_shares",
        "shares.list_comments",
        "shares.access_log",
        "export.export",
        "coach_pages.playback",
        "coach_pages.shared_with_me",
        "employee_pages.recordings",
        "employee_pages.shares",
        "uploads.list_uploads",
        "uploads.get_upload",
        "feedback.get_feedback",
        "feedback.list_feedback",
        "feedback.my_progress",
        "employee_pages.feedback",
        "employee_pages.progress",
    }
    seen = set()
    for call in calls:
        if call.actor in ("admin", "representative") and call.endpoint in content_endpoints:
            seen.add(call.endpoint)
            assert call.status in (403, 404), describe(call)
    assert seen == content_endpoints & {c.endpoint for c in calls}


def test_html_never_carries_the_probe_unescaped(world, calls):
    html = [c for c in calls if c.mimetype == "text/html"]
    assert html
    for call in html:
        assert XSS.encode() not in call.body, describe(call)
    owner_pages = [
        c
        for c in html
        if c.actor == "employee"
        and c.endpoint in ("employee_pages.recordings", "employee_pages.shares")
        and c.status == 200
    ]
    assert len(owner_pages) == 2 and all(
        b"&lt;script&gt;alert(1)&lt;/script&gt;" in c.body for c in owner_pages
    )


def test_pages_send_a_strict_content_security_policy(calls):
    pages = [c for c in calls if c.mimetype == "text/html" and c.status == 200]
    assert pages
    for call in pages:
        policy = call.headers.get("Content-Security-Policy", "")
        directives = dict(
            [*part.strip().split(" ", 1), ""][:2] for part in policy.split(";") if part.strip()
        )
        assert directives.get("script-src") == "'self'", describe(call)
        assert directives.get("style-src") == "'self'", describe(call)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert directives.get("object-src") == "'none'"
        assert call.headers.get("X-Content-Type-Options") == "nosniff"
        # Pages carry personal data (at the least, who is signed in): never cached.
        assert "no-store" in call.headers.get("Cache-Control", ""), describe(call)


# --- cookies and CSRF -------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"
_addresses = iter(range(1, 250))


def signed_in(app, rt, role: str) -> tuple[Any, Person, str]:
    """A browser-like client signed in with a password; returns it, the person and the CSRF
    token of its session, and checks the session cookie's flags on the way."""
    person = create_person(rt, role, password=PASSWORD)
    web = app.test_client()
    web.environ_base["REMOTE_ADDR"] = f"127.0.77.{next(_addresses)}"
    page = web.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = web.post(
        "/login", data={"login": person.login, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies, "no session cookie"
    for raw in cookies:
        morsel = next(iter(SimpleCookie(raw).values()))
        assert morsel["httponly"], raw
        assert morsel["samesite"].lower() == "lax", raw
    home = web.get("/", follow_redirects=True).get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', home).group(1)
    return web, person, csrf


@pytest.fixture(scope="module")
def cookie_employee(stack_app, rt, world):
    web, person, csrf = signed_in(stack_app, rt, "employee")
    coach = world.people["coach"]
    recording = upload(stack_app.test_client(), person, world.samples, "mine", full=False)
    share = make_share(stack_app.test_client(), person, recording["id"], coach, "csrf")
    return {"web": web, "person": person, "csrf": csrf, "recording": recording, "share": share}


def _refused_then_accepted(send: Callable[[dict], Any], csrf: str, accepted: set[int]) -> None:
    without = send({})
    assert without.status_code in (400, 403), without.get_data(as_text=True)[:200]
    forged = send({"X-CSRFToken": "not-the-token"})
    assert forged.status_code in (400, 403)
    with_token = send({"X-CSRFToken": csrf})
    assert with_token.status_code in accepted, with_token.get_data(as_text=True)[:300]


def test_csrf_guards_the_opt_in_comments_revoke_and_delete(cookie_employee, world, stack_app):
    web, csrf, person = cookie_employee["web"], cookie_employee["csrf"], cookie_employee["person"]
    recording, share = cookie_employee["recording"], cookie_employee["share"]
    coach = world.people["coach"]
    before = len(web.get("/api/v1/shares").get_json()["shares"])
    _refused_then_accepted(
        lambda h: web.post(
            f"/api/v1/recordings/{recording['id']}/shares",
            json={"coach_ids": [str(coach.id)], "purpose": "x", "expires_in_days": 1},
            headers=h,
        ),
        csrf,
        {202},
    )
    assert len(web.get("/api/v1/shares").get_json()["shares"]) == before + 1
    _refused_then_accepted(
        lambda h: web.post(
            f"/api/v1/shares/{share['id']}/comments", json={"at_s": 0, "body": "hi"}, headers=h
        ),
        csrf,
        {201},
    )
    _refused_then_accepted(
        lambda h: web.post(f"/api/v1/shares/{share['id']}/revoke", headers=h), csrf, {200}
    )
    _refused_then_accepted(
        lambda h: web.delete(f"/api/v1/recordings/{recording['id']}", headers=h), csrf, {200}
    )
    # The refused attempts changed nothing before the accepted ones: one comment, one revoke.
    log = web.get(f"/api/v1/shares/{share['id']}/access-log").get_json()["events"]
    assert [e["action"] for e in log].count("comment.added") == 1
    assert [e["action"] for e in log].count("share.revoked") == 1
    assert person.id


def test_csrf_guards_admin_actions(stack_app, rt):
    web, _admin, csrf = signed_in(stack_app, rt, "admin")
    target = create_person(rt, "employee")
    policy_before = web.get("/api/v1/admin/policy").get_json()["version"]
    _refused_then_accepted(
        lambda h: web.post(
            "/api/v1/admin/users",
            json={"login": f"c-{uuid.uuid4().hex[:8]}", "name": "C", "role": "coach"},
            headers=h,
        ),
        csrf,
        {201},
    )
    with rt.db.session() as session:
        session.get(User, target.id).email = f"target-{uuid.uuid4().hex[:6]}@example.org"
    _refused_then_accepted(
        lambda h: web.post(f"/api/v1/admin/users/{target.id}/reset", headers=h), csrf, {202}
    )
    _refused_then_accepted(
        lambda h: web.patch(f"/api/v1/admin/users/{target.id}", json={"active": False}, headers=h),
        csrf,
        {200},
    )
    _refused_then_accepted(
        lambda h: web.post(
            "/api/v1/admin/teams", json={"name": f"T {uuid.uuid4().hex[:6]}"}, headers=h
        ),
        csrf,
        {201},
    )
    _refused_then_accepted(
        lambda h: web.put("/api/v1/admin/policy", json={"max_share_days": 30}, headers=h),
        csrf,
        {200},
    )
    assert web.get("/api/v1/admin/policy").get_json()["version"] == policy_before + 1
    _refused_then_accepted(lambda h: web.post("/api/v1/admin/keys/rotate", headers=h), csrf, {200})


def test_csrf_guards_the_account(stack_app, rt):
    web, person, csrf = signed_in(stack_app, rt, "employee")
    _refused_then_accepted(
        lambda h: web.post("/api/v1/me/tokens", json={"label": "csrf"}, headers=h), csrf, {201}
    )
    _refused_then_accepted(
        lambda h: web.patch("/api/v1/me", json={"email_notifications": False}, headers=h),
        csrf,
        {200},
    )
    _refused_then_accepted(
        lambda h: web.post("/api/v1/me/upload-credentials", headers=h), csrf, {201}
    )
    tokens = web.get("/api/v1/me/tokens").get_json()["tokens"]
    made = next(t for t in tokens if t["label"] == "csrf")
    _refused_then_accepted(
        lambda h: web.delete(f"/api/v1/me/tokens/{made['id']}", headers=h), csrf, {200}
    )
    _refused_then_accepted(
        lambda h: web.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": PASSWORD + " again"},
            headers=h,
        ),
        csrf,
        {200},
    )
    # The password change gave this browser a new session (and so a new CSRF token).
    home = web.get("/account").get_data(as_text=True)
    fresh = re.search(r'<meta name="csrf-token" content="([^"]+)"', home).group(1)
    _refused_then_accepted(lambda h: web.delete("/api/v1/me/sessions", headers=h), fresh, {200})
    assert web.get("/api/v1/me").status_code == 401
    assert person.id


def test_cookie_upload_with_the_csrf_header_is_accepted(stack_app, rt, world):
    """The capture page uploads with the session cookie and the X-CSRFToken header. The CSRF
    check must find the header without parsing (and so consuming) the multipart body."""
    web, _person, csrf = signed_in(stack_app, rt, "employee")
    data = {
        "title": "From the capture page",
        "audio": (io.BytesIO(world.samples.mono_wav.read_bytes()), "call.wav"),
    }
    refused = web.post("/api/v1/recordings", data=dict(data), content_type="multipart/form-data")
    assert refused.status_code in (400, 403, 413)
    data["audio"] = (io.BytesIO(world.samples.mono_wav.read_bytes()), "call.wav")
    response = web.post(
        "/api/v1/recordings",
        data=data,
        headers={"X-CSRFToken": csrf},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()


# --- the end of a share, metrics and receipt status, as every role (issue 12) ------------------

ENDED_CALLS = {
    "GET share": ("GET", "/api/v1/shares/{sid}", None),
    "GET comments": ("GET", "/api/v1/shares/{sid}/comments", None),
    "POST comment": ("POST", "/api/v1/shares/{sid}/comments", {"at_s": 1, "body": "late"}),
    "POST views": ("POST", "/api/v1/shares/{sid}/views", None),
    "POST heartbeat": (
        "POST",
        "/api/v1/shares/{sid}/views/{vid}/heartbeat",
        {"watched_s": 1, "position_s": 1},
    ),
    **{f"GET media {k}": ("GET", f"/media/shares/{{sid}}/{k}", None) for k in VALUES["kind"]},
    "GET playback page": ("GET", "/coach/shares/{sid}", None),
}
# What each actor gets for a share that has ended (revoked), by call: the owner keeps reading
# it (its status, its certificate; comments are gone), the grantee learns only that it ended,
# everyone else gets what they would get for no share at all.
OWNER_ENDED = {
    "GET share": 200,
    "GET comments": 200,
    "GET playback page": 200,
}


def _expected_for_ended(actor: str, call: str) -> set[int]:
    page = call == "GET playback page"
    if actor == "anonymous":
        return {302} if page else {401}
    if actor == "employee":
        return {OWNER_ENDED.get(call, 410)}
    if actor == "coach":
        return {410}
    if actor in ("other_employee", "other_coach"):
        return {404}
    return {403, 404} if call.startswith("GET media") else {403}


@pytest.fixture(scope="module")
def ended_share(world) -> dict[str, str]:
    side = world.sides["a"]
    client = world.client
    share = make_share(client, side.employee, side.spare_recording["id"], side.coach, "ending")
    response = client.post(f"/api/v1/shares/{share['id']}/revoke", headers=side.employee.headers)
    assert response.status_code == 200
    return {"sid": share["id"], "vid": str(uuid.uuid4()), "purpose": "ending"}


@pytest.mark.parametrize("actor", ACTORS)
def test_an_ended_share_as_every_role(stack_app, world, ended_share, actor):
    client = stack_app.test_client()
    headers = {} if actor == "anonymous" else dict(world.people[actor].headers)
    problems = []
    for call, (method, template, body) in ENDED_CALLS.items():
        url = template.format(**ended_share)
        extra = {"Accept": "text/html"} if call == "GET playback page" else {}
        response = client.open(url, method=method, headers={**headers, **extra}, json=body)
        want = _expected_for_ended(actor, call)
        if response.status_code not in want:
            problems.append(f"{call} as {actor}: {response.status_code}, want {want}")
        ended_json = response.status_code == 410 and "json" in (response.mimetype or "")
        if ended_json and response.get_json()["error"]["code"] != "share_ended":
            problems.append(f"{call} as {actor}: {response.get_json()}")
        text = response.get_data(as_text=True)
        if actor != "employee":
            for secret in (world.sides["a"].employee.name, ended_share["purpose"], "withdrew"):
                if secret in text:
                    problems.append(f"{call} as {actor} carries {secret!r}")
    listing = client.get("/api/v1/shares", headers=headers)
    if actor == "coach":
        items = [i for i in listing.get_json()["shares"] if i["id"] == ended_share["sid"]]
        if items != [{"id": ended_share["sid"], "status": "ended"}]:
            problems.append(f"the coach's list shows {items}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("actor", ACTORS)
def test_metrics_answer_no_role_only_the_metrics_token(stack_app, world, actor):
    from tests.conftest import METRICS_TOKEN

    client = stack_app.test_client()
    headers = {} if actor == "anonymous" else dict(world.people[actor].headers)
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401, response.get_data(as_text=True)[:200]
    assert b"consent_replay" not in response.get_data()
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200


@pytest.mark.parametrize("actor", ACTORS)
def test_receipt_status_answers_whoever_holds_the_receipt_and_no_one_else(stack_app, world, actor):
    client = stack_app.test_client()
    headers = {} if actor == "anonymous" else dict(world.people[actor].headers)
    receipt = world.sides["a"].share["receipt"]
    held = client.post("/api/v1/receipts/status", json={"receipt": receipt}, headers=headers)
    assert held.status_code == 200 and held.get_json()["status"] == "active"
    for guess in (world.sides["a"].share["id"], receipt[:-4] + "AAAA"):
        refused = client.post("/api/v1/receipts/status", json={"receipt": guess}, headers=headers)
        assert refused.status_code == 400
        assert world.sides["a"].share["id"] not in refused.get_data(as_text=True)
