"""The account page and ``/api/v1/me/…``: people make and revoke their own tokens, change
their password and e-mail settings, and read their own security log; the embed button's
upload credential can only upload (findings 1 and 8 of issue 12)."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.models import ApiToken, User, utcnow
from app.services import users
from tests.app.browsing import PASSWORD, browser, sign_in, signed_in_browser
from tests.conftest import create_person


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    return response.get_json()["error"]["code"]


# --- tokens -----------------------------------------------------------------------------------


def test_people_make_list_and_revoke_their_own_tokens(stack_app, rt):
    person = create_person(rt, "coach", password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, person)
    made = web.post("/api/v1/me/tokens", json={"label": "softphone"}, headers={"X-CSRFToken": csrf})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    token = body["token"]
    assert token.startswith(users.TOKEN_PREFIX) and body["label"] == "softphone"
    client = stack_app.test_client()
    assert client.get("/api/v1/me", headers=bearer(token)).get_json()["id"] == str(person.id)

    listed = web.get("/api/v1/me/tokens").get_json()["tokens"]
    assert {t["label"] for t in listed} == {"test", "softphone"}
    assert token not in web.get("/api/v1/me/tokens").get_data(as_text=True)  # shown once
    mine = next(t for t in listed if t["id"] == body["id"])
    assert mine["last_used_at"] is not None  # the call above used it

    revoked = web.delete(f"/api/v1/me/tokens/{body['id']}", headers={"X-CSRFToken": csrf})
    assert revoked.status_code == 200 and revoked.get_json()["revoked"] is True
    assert error_code(client.get("/api/v1/me", headers=bearer(token)), 401) == "invalid_token"
    # The person's other token is untouched.
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200
    log = [e["action"] for e in web.get("/api/v1/me/security-log").get_json()["events"]]
    assert log[:2] == ["user.token_revoked", "user.token_created"]


def test_nobody_else_can_revoke_or_list_my_tokens(stack_app, rt):
    owner = create_person(rt, "employee")
    other = create_person(rt, "employee")
    admin = create_person(rt, "admin")
    client = stack_app.test_client()
    with rt.db.session() as session:
        token_id = session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == users.hash_token(owner.token))
        )
    for intruder in (other, admin):
        listed = client.get("/api/v1/me/tokens", headers=intruder.headers).get_json()["tokens"]
        assert str(token_id) not in {t["id"] for t in listed}
        refused = client.delete(f"/api/v1/me/tokens/{token_id}", headers=intruder.headers)
        random = client.delete(f"/api/v1/me/tokens/{uuid.uuid4()}", headers=intruder.headers)
        assert (refused.status_code, refused.get_json()) == (404, random.get_json())
    assert client.get("/api/v1/me", headers=owner.headers).status_code == 200


def test_a_bearer_token_cannot_make_itself_permanent(stack_app, rt):
    """A leaked token must not mint more tokens, change the password or the e-mail address,
    or mint upload credentials: those need the person's browser session."""
    person = create_person(rt, "employee", password=PASSWORD)
    client = stack_app.test_client()
    calls = [
        ("POST", "/api/v1/me/tokens", {"label": "x"}),
        ("POST", "/api/v1/me/password", {"new_password": "a new password here"}),
        ("PATCH", "/api/v1/me", {"email": "thief@example.org"}),
        ("POST", "/api/v1/me/upload-credentials", None),
    ]
    for method, path, body in calls:
        response = client.open(path, method=method, json=body, headers=person.headers)
        assert error_code(response, 403) == "session_required", path
    with rt.db.session() as session:
        user = session.get(User, person.id)
        assert user.email is None
        assert len(users.list_tokens(session, user)) == 1
    assert sign_in(browser(stack_app), person.login).status_code == 302


# --- e-mail settings --------------------------------------------------------------------------


def test_the_person_sets_their_own_email_with_their_password(stack_app, rt):
    person = create_person(rt, "coach", password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, person)
    headers = {"X-CSRFToken": csrf}
    wanted = f"coach-{uuid.uuid4().hex[:6]}@Example.ORG"
    missing = web.patch("/api/v1/me", json={"email": wanted}, headers=headers)
    assert error_code(missing, 400) == "wrong_password"
    wrong = web.patch(
        "/api/v1/me", json={"email": wanted, "current_password": "nope"}, headers=headers
    )
    assert error_code(wrong, 400) == "wrong_password"
    bad = web.patch(
        "/api/v1/me",
        json={"email": "not an address", "current_password": PASSWORD},
        headers=headers,
    )
    assert error_code(bad, 400) == "invalid_email"
    done = web.patch(
        "/api/v1/me", json={"email": wanted, "current_password": PASSWORD}, headers=headers
    )
    assert done.status_code == 200
    assert done.get_json()["email"] == wanted.split("@")[0] + "@example.org"
    notify = web.patch("/api/v1/me", json={"email_notifications": False}, headers=headers)
    assert notify.get_json()["email_notifications"] is False
    with rt.db.session() as session:
        assert session.get(User, person.id).email_notifications is False
    # The notification preference alone needs no password, and works with a token too.
    again = stack_app.test_client().patch(
        "/api/v1/me", json={"email_notifications": True}, headers=person.headers
    )
    assert again.get_json()["email_notifications"] is True


# --- the security log -------------------------------------------------------------------------


def test_the_security_log_is_mine_only(stack_app, rt):
    me = create_person(rt, "employee", password=PASSWORD)
    someone = create_person(rt, "employee", password=PASSWORD)
    admin = create_person(rt, "admin", name=f"Admin {uuid.uuid4().hex[:4]}")
    signed_in_browser(stack_app, someone)
    web, _csrf = signed_in_browser(stack_app, me)
    with rt.db.session() as session:
        users.reset(session, session.get(User, me.id), actor_id=admin.id)
    assert web.get("/api/v1/me").status_code == 401  # the reset ended this session
    again = browser(stack_app)
    first = sign_in(again, me.login)
    assert first.headers["Location"].endswith("/account")  # the reset is shown first
    page = again.get("/account").get_data(as_text=True)
    assert "Your account was reset" in page
    assert "Your account was reset" not in again.get("/account").get_data(as_text=True)  # once
    events = again.get("/api/v1/me/security-log").get_json()["events"]
    actions = [e["action"] for e in events]
    assert actions[:2] == ["user.signed_in", "user.reset"]
    assert events[1]["by"] == f"{admin.name} (admin)"
    assert actions.count("user.signed_in") == 2 and "user.created" in actions
    text = again.get("/api/v1/me/security-log").get_data(as_text=True)
    assert str(someone.id) not in text and someone.name not in text


# --- the account page -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["employee", "coach", "admin", "representative"])
def test_every_role_has_an_account_page(stack_app, rt, role):
    person = create_person(rt, role, password=PASSWORD)
    web, _csrf = signed_in_browser(stack_app, person)
    response = web.get("/account")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    for marker in (
        'id="token-form"',
        'id="password-form"',
        'id="sign-out-everywhere"',
        'id="log-rows"',
        'id="email-notifications"',
        "js/account.js",
        person.login,
    ):
        assert marker in page, marker
    home = web.get("/", follow_redirects=True).get_data(as_text=True)
    assert 'href="/account"' in home  # reachable from every page's header


def test_a_providers_user_is_told_where_the_password_is_kept(stack_app, rt):
    """An account from the identity provider (SPEC §15) has no password here: no form to set
    one, and words that say where it is managed, in the page's language."""
    person = create_person(rt, "employee", password=PASSWORD)
    web, _csrf = signed_in_browser(stack_app, person)
    local = web.get("/account").get_data(as_text=True)
    assert 'id="password-form"' in local and 'id="provider-password"' not in local
    with rt.db.session() as session:
        session.execute(
            update(User)
            .where(User.id == person.id)
            .values(
                oidc_issuer="https://idp.example", oidc_subject=uuid.uuid4().hex, password_hash=None
            )
        )
    provider = rt.settings.oidc_name
    page = web.get("/account").get_data(as_text=True)
    assert 'id="password-form"' not in page and 'id="new-password"' not in page
    assert 'id="email-password"' not in page  # no password to ask for when the address changes
    assert f"You sign in with {provider}, so your password is managed there" in page
    norsk = web.get("/account", headers={"Accept-Language": "nb"}).get_data(as_text=True)
    assert 'id="password-form"' not in norsk
    assert f"Du logger inn med {provider}, så passordet ditt" in norsk


# --- the embed button's upload credential (finding 8) -----------------------------------------


@pytest.fixture
def upload_credential(stack_app, rt):
    employee = create_person(rt, "employee", password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, employee)
    made = web.post("/api/v1/me/upload-credentials", headers={"X-CSRFToken": csrf})
    assert made.status_code == 201, made.get_json()
    return employee, made.get_json()


def test_the_upload_credential_is_short_lived_and_uploads(stack_app, upload_credential, samples):
    employee, body = upload_credential
    assert body["scope"] == "upload" and body["upload_url"] == "/api/v1/recordings"
    left = datetime.fromisoformat(body["expires_at"]) - utcnow()
    assert timedelta(minutes=10) < left <= timedelta(minutes=15)
    client = stack_app.test_client()
    uploaded = client.post(
        "/api/v1/recordings",
        data={"audio": (io.BytesIO(samples.mono_wav.read_bytes()), "call.wav"), "title": "Mine"},
        headers=bearer(body["credential"]),
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    listing = client.get("/api/v1/recordings", headers=employee.headers).get_json()["recordings"]
    assert [r["id"] for r in listing] == [uploaded.get_json()["id"]]  # a draft of the employee


def test_the_upload_credential_reaches_nothing_else(
    stack_app, rt, upload_credential, make_person, samples
):
    """Not even the employee's own draft and share: the credential can read, list, share and
    revoke nothing, and reaches no admin endpoint and no page."""
    employee, body = upload_credential
    client = stack_app.test_client()
    coach = make_person("coach")
    draft = client.post(
        "/api/v1/recordings",
        data={"audio": (io.BytesIO(samples.mono_wav.read_bytes()), "call.wav")},
        headers=employee.headers,
        content_type="multipart/form-data",
    ).get_json()
    shared = client.post(
        f"/api/v1/recordings/{draft['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "scope test", "expires_in_days": 1},
        headers=employee.headers,
    )
    assert shared.status_code == 202, shared.get_json()
    recording_id, share_id = draft["id"], shared.get_json()["id"]
    headers = bearer(body["credential"])
    with rt.db.session() as session:
        token_id = session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == users.hash_token(employee.token))
        )
    attempts = [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/recordings"),
        ("GET", f"/api/v1/recordings/{recording_id}"),
        ("DELETE", f"/api/v1/recordings/{recording_id}"),
        ("POST", f"/api/v1/recordings/{recording_id}/shares"),
        ("GET", "/api/v1/shares"),
        ("GET", f"/api/v1/shares/{share_id}"),
        ("POST", f"/api/v1/shares/{share_id}/revoke"),
        ("GET", f"/api/v1/shares/{share_id}/comments"),
        ("GET", f"/media/shares/{share_id}/video"),
        ("GET", "/api/v1/export"),
        ("GET", "/api/v1/coaches"),
        ("GET", "/api/v1/me/tokens"),
        ("DELETE", f"/api/v1/me/tokens/{token_id}"),
        ("POST", "/api/v1/me/upload-credentials"),
        ("DELETE", "/api/v1/me/sessions"),
        ("GET", "/api/v1/admin/users"),
        ("POST", "/api/v1/admin/users"),
        ("GET", "/recordings"),
        ("GET", "/account"),
        ("GET", "/no/such/route"),
    ]
    for method, path in attempts:
        response = client.open(path, method=method, headers=headers, json={})
        assert error_code(response, 403) == "insufficient_scope", (method, path)
    assert client.get("/api/v1/me", headers=employee.headers).status_code == 200
    still = client.get(f"/api/v1/shares/{share_id}", headers=employee.headers).get_json()
    assert still["status"] != "revoked"
    mine = client.get(f"/api/v1/recordings/{recording_id}", headers=employee.headers)
    assert mine.status_code == 200 and mine.get_json()["status"] == "draft"


def test_the_upload_credential_expires(stack_app, rt, upload_credential, samples):
    employee, body = upload_credential
    with rt.db.session() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == users.hash_token(body["credential"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = stack_app.test_client().post(
        "/api/v1/recordings",
        data={"audio": (io.BytesIO(samples.mono_wav.read_bytes()), "call.wav")},
        headers=bearer(body["credential"]),
        content_type="multipart/form-data",
    )
    assert error_code(response, 401) == "invalid_token"
    assert "expired" in response.get_json()["error"]["message"]
    with rt.db.session() as session:  # the worker's purge removes it
        assert users.purge_expired_credentials(session) >= 1
        assert (
            session.scalar(
                select(ApiToken).where(ApiToken.token_hash == users.hash_token(body["credential"]))
            )
            is None
        )
    assert employee


@pytest.mark.parametrize("role", ["coach", "admin", "representative"])
def test_only_employees_get_upload_credentials(stack_app, rt, role):
    person = create_person(rt, role, password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, person)
    response = web.post("/api/v1/me/upload-credentials", headers={"X-CSRFToken": csrf})
    assert error_code(response, 403) == "forbidden"


def test_a_reset_ends_upload_credentials_too(stack_app, rt, upload_credential):
    employee, body = upload_credential
    headers = bearer(body["credential"])
    with rt.db.session() as session:
        users.reset(session, session.get(User, employee.id), actor_id=None)
        assert session.scalar(select(ApiToken).where(ApiToken.user_id == employee.id)) is None
    refused = stack_app.test_client().post("/api/v1/recordings", headers=headers)
    assert error_code(refused, 401) == "invalid_token"


@pytest.mark.parametrize(
    "address",
    ["a\x00b@example.org", "two words@example.org", "ådne@example.org", "x@", "@example.org",
     "x@-example.org", "x@example.org\r\nBcc: y@evil.example", "x" * 250 + "@example.org"],
)  # fmt: skip
def test_a_bad_address_is_refused_clearly(stack_app, rt, address):
    person = create_person(rt, "employee", password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, person)
    response = web.patch(
        "/api/v1/me",
        json={"email": address, "current_password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert error_code(response, 400) in ("invalid_email", "invalid_request")
    with rt.db.session() as session:
        assert session.get(User, person.id).email is None


def test_a_token_label_is_plain_text(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web, csrf = signed_in_browser(stack_app, person)
    for label in ("nul\x00here", "two\nlines", "bidi\u202eevil"):
        response = web.post(
            "/api/v1/me/tokens", json={"label": label}, headers={"X-CSRFToken": csrf}
        )
        assert error_code(response, 400) == "invalid_label"
    assert len(web.get("/api/v1/me/tokens").get_json()["tokens"]) == 1
