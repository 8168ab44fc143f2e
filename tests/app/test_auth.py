"""Accounts and authentication: API tokens, passwords, the sign-in page, CSRF, roles."""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid

import pytest
from sqlalchemy import select

from app.models import ApiToken, User
from app.services import users
from tests.app.db_scan import text_columns_holding
from tests.conftest import create_person

_addresses = itertools.count(10)


def own_client(stack_app):
    """A test client with its own loopback address, so sign-in rate limits stay per test."""
    web = stack_app.test_client()
    web.environ_base["REMOTE_ADDR"] = f"127.0.{next(_addresses)}.1"
    return web


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def csrf_token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


PASSWORD = "correct horse battery staple"


# --- API tokens -------------------------------------------------------------------------------


def test_me_with_an_issued_token(client, rt):
    with rt.db.session() as session:
        user = users.create_user(
            session, login=f"tok-{uuid.uuid4().hex[:8]}", name="Token Tester", role="employee"
        )
        token = users.issue_token(session, user, label="test")
        user_id = user.id
    assert token.startswith(users.TOKEN_PREFIX)
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["name"], body["role"]) == (str(user_id), "Token Tester", "employee")
    # The scheme is case-insensitive, as HTTP says.
    again = client.get("/api/v1/me", headers={"Authorization": f"bearer {token}"})
    assert again.get_json()["id"] == str(user_id)


@pytest.mark.parametrize("role", ["coach", "admin", "representative"])
def test_me_answers_every_role(client, make_person, role):
    person = make_person(role)
    body = client.get("/api/v1/me", headers=person.headers).get_json()
    assert (body["id"], body["name"], body["role"]) == (str(person.id), person.name, role)


def test_no_token_is_401_in_the_error_shape(client):
    error = assert_error(client.get("/api/v1/me"), 401)
    assert error["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "token",
    [
        "cr_" + "A" * 43,
        "not-even-prefixed",
        "cr_" + "x" * 500,
    ],
    ids=["unknown", "no-prefix", "too-long"],
)
def test_a_wrong_token_is_401_invalid_token(client, token):
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")


def test_a_tampered_token_is_refused(client, make_person):
    person = make_person("employee")
    tampered = person.token[:-1] + ("A" if person.token[-1] != "A" else "B")
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tampered}"})
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize("header", ["Basic x", "Bearer", "Bearer ", "Token abc", "cr_abc"])
def test_a_malformed_authorization_header_is_401(client, header):
    assert_error(client.get("/api/v1/me", headers={"Authorization": header}), 401)


def test_a_deactivated_users_token_stops_working(client, rt, make_person):
    person = make_person("employee")
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200
    with rt.db.session() as session:
        users.set_active(session, session.get(User, person.id), False)
    assert_error(client.get("/api/v1/me", headers=person.headers), 401, "invalid_token")
    # Reactivating does not bring the old token back.
    with rt.db.session() as session:
        users.set_active(session, session.get(User, person.id), True)
    assert_error(client.get("/api/v1/me", headers=person.headers), 401, "invalid_token")


def test_an_inactive_user_with_a_surviving_token_is_refused(client, rt, make_person):
    # Even if a token row outlived the deactivation, the user's state decides.
    person = make_person("coach")
    with rt.db.session() as session:
        session.get(User, person.id).active = False
    assert_error(client.get("/api/v1/me", headers=person.headers), 401, "invalid_token")


def test_tokens_are_stored_only_as_sha256(rt, make_person):
    person = make_person("employee")
    secret = person.token[len(users.TOKEN_PREFIX) :]
    with rt.db.session() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == person.id)).all()
        assert [r.token_hash for r in rows] == [hashlib.sha256(person.token.encode()).hexdigest()]
    # No text column of any table holds the plaintext token.
    assert text_columns_holding(rt, secret) == []


def test_passwords_are_hashed_with_argon2id(rt):
    password = "a long enough passphrase " + uuid.uuid4().hex
    person = create_person(rt, "employee", password=password)
    with rt.db.session() as session:
        stored = session.get(User, person.id).password_hash
    assert stored.startswith("$argon2id$")
    assert password not in stored
    with rt.db.session() as session:
        assert users.authenticate_password(session, person.login, password).id == person.id
        assert users.authenticate_password(session, person.login, password + "x") is None
        assert users.authenticate_password(session, "no-such-login", password) is None


# --- the sign-in page -------------------------------------------------------------------------


def sign_in(web, login: str, password: str):
    page = web.get("/login")
    assert page.status_code == 200
    token = csrf_token_of(page.get_data(as_text=True))
    return web.post("/login", data={"login": login, "password": password, "csrf_token": token})


def test_sign_in_with_the_right_password(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web = own_client(stack_app)
    response = sign_in(web, person.login, PASSWORD)
    assert response.status_code == 302
    cookie = response.headers.get("Set-Cookie", "")
    assert cookie.startswith("cr_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    me = web.get("/api/v1/me")
    assert me.status_code == 200
    assert me.get_json()["id"] == str(person.id)
    # Without the cookie, the same request is anonymous.
    assert own_client(stack_app).get("/api/v1/me").status_code == 401


def test_sign_in_with_the_wrong_password(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web = own_client(stack_app)
    wrong = sign_in(web, person.login, PASSWORD + "!")
    unknown = sign_in(web, "nobody-" + uuid.uuid4().hex[:8], PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.mimetype == "text/html"
        assert "do not match" in response.get_data(as_text=True)
    assert web.get("/api/v1/me").status_code == 401


def test_a_deactivated_users_session_ends(stack_app, rt):
    person = create_person(rt, "coach", password=PASSWORD)
    web = own_client(stack_app)
    assert sign_in(web, person.login, PASSWORD).status_code == 302
    assert web.get("/api/v1/me").status_code == 200
    with rt.db.session() as session:
        users.set_active(session, session.get(User, person.id), False)
    assert_error(web.get("/api/v1/me"), 401, "unauthenticated")
    assert sign_in(web, person.login, PASSWORD).status_code == 401


def test_sign_in_without_csrf_token_is_refused(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web = own_client(stack_app)
    web.get("/login")
    response = web.post("/login", data={"login": person.login, "password": PASSWORD})
    assert_error(response, 400, "csrf_failed")
    forged = web.post(
        "/login", data={"login": person.login, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert_error(forged, 400, "csrf_failed")
    assert web.get("/api/v1/me").status_code == 401


def test_cookie_requests_that_change_state_need_the_csrf_token(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web = own_client(stack_app)
    assert sign_in(web, person.login, PASSWORD).status_code == 302
    target = f"/api/v1/recordings/{uuid.uuid4()}/shares"
    body = {"coach_ids": [str(uuid.uuid4())], "purpose": "x", "expires_in_days": 1}
    assert_error(web.post(target, json=body), 400, "csrf_failed")
    token = csrf_token_of(web.get("/login").get_data(as_text=True))
    # With the token the request goes through to the view (which finds no such recording).
    assert_error(web.post(target, json=body, headers={"X-CSRFToken": token}), 404)


def test_bearer_requests_need_no_csrf_token(client, make_person):
    person = make_person("employee")
    response = client.post(
        f"/api/v1/recordings/{uuid.uuid4()}/shares",
        json={"coach_ids": [str(uuid.uuid4())], "purpose": "x", "expires_in_days": 1},
        headers=person.headers,
    )
    assert_error(response, 404)


def test_sign_in_is_rate_limited(stack_app):
    web = own_client(stack_app)
    token = csrf_token_of(web.get("/login").get_data(as_text=True))
    statuses = []
    for attempt in range(12):
        # A different login each time: the per-account limit (test_sessions) stays out of it.
        response = web.post(
            "/login",
            data={"login": f"guess-{attempt}", "password": "guess", "csrf_token": token},
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    error = assert_error(response, 429, "rate_limited")
    assert "network address" in error["message"]
    # Another address is not affected.
    other = own_client(stack_app)
    other_token = csrf_token_of(other.get("/login").get_data(as_text=True))
    response = other.post(
        "/login", data={"login": "guess", "password": "guess", "csrf_token": other_token}
    )
    assert response.status_code == 401


def test_colleagues_behind_one_address_do_not_lock_each_other_out(stack_app, make_person):
    """An office's agents share one address (its NAT): at a shift's start, their sign-ins that
    succeed never use up the address's limit; the failed ones still do."""
    address = own_client(stack_app).environ_base["REMOTE_ADDR"]

    def from_the_office():
        web = stack_app.test_client()  # a colleague's own browser, at the office's address
        web.environ_base["REMOTE_ADDR"] = address
        return web

    colleagues = [make_person("employee", password=PASSWORD) for _ in range(12)]
    for person in colleagues:
        response = sign_in(from_the_office(), person.login, PASSWORD)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
    office = from_the_office()
    failures = [sign_in(office, f"guess-{n}", "guess").status_code for n in range(11)]
    assert failures == [401] * 10 + [429]
    # Now the address waits, whoever signs in from it.
    assert sign_in(from_the_office(), colleagues[0].login, PASSWORD).status_code == 429


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["coach", "admin", "representative"])
def test_only_employees_upload(client, make_person, role):
    person = make_person(role)
    response = client.post(
        "/api/v1/recordings",
        data={"title": "not mine to make"},
        headers=person.headers,
        content_type="multipart/form-data",
    )
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("role", ["admin", "representative"])
def test_admins_and_representatives_see_no_shares(client, make_person, role):
    person = make_person(role)
    assert_error(client.get("/api/v1/shares", headers=person.headers), 403, "forbidden")
