"""Sessions end when people end them (finding 5 of issue 12).

The cookie carries a random id and nothing else; the server keeps its hash and ends the
session at sign-out, "sign out everywhere", a password change, a reset, after the idle and the
absolute lifetime. Under https the cookie is ``__Host-``. Sign-in is limited per account as
well as per address.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import select, update

from app.models import User, WebSession, utcnow
from app.services import users
from tests.app.browsing import PASSWORD, browser, csrf_of, sign_in
from tests.conftest import app_for, create_person


def session_cookie(response) -> SimpleCookie:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if "cr_session=" in c]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return SimpleCookie(cookies[0])


def cookie_value(response) -> str:
    return next(iter(session_cookie(response).values())).value


def with_cookie(app, value: str, name: str = "cr_session"):
    """Another client that holds nothing but a copy of the cookie."""
    thief = browser(app)
    thief.set_cookie(name, value)
    return thief


@pytest.fixture
def signed_in(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    web = browser(stack_app)
    response = sign_in(web, person.login)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return web, person, cookie_value(response)


def test_the_cookie_is_a_random_id_kept_only_as_a_hash(signed_in, rt):
    _web, person, value = signed_in
    assert value.startswith("s1.") and len(value) >= 40
    with rt.db.session() as session:
        stored = session.get(User, person.id).password_hash
        rows = session.scalars(select(WebSession).where(WebSession.user_id == person.id)).all()
    # Nothing of the password hash in the cookie (it used to carry 16 characters of it).
    assert not any(stored[i : i + 8] in value for i in range(len(stored) - 8))
    assert [r.token_hash for r in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    assert all(value not in str(r.data) for r in rows)


def test_a_copied_cookie_stops_working_after_sign_out(signed_in, stack_app):
    web, person, value = signed_in
    thief = with_cookie(stack_app, value)
    assert thief.get("/api/v1/me").get_json()["id"] == str(person.id)
    csrf = csrf_of(web.get("/account").get_data(as_text=True))
    out = web.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 302
    assert "cr_session=;" in out.headers.get("Set-Cookie", "")  # deleted in the browser too
    assert web.get("/api/v1/me").status_code == 401
    assert thief.get("/api/v1/me").status_code == 401  # and ended on the server
    assert thief.get("/account").status_code == 302


def _age(rt, user_id, *, idle: timedelta | None = None, age: timedelta | None = None) -> None:
    values = {}
    if idle is not None:
        values["last_seen_at"] = utcnow() - idle
    if age is not None:
        values["created_at"] = utcnow() - age
    with rt.db.session() as session:
        session.execute(update(WebSession).where(WebSession.user_id == user_id).values(**values))


def test_idle_expiry(signed_in, rt, stack_app):
    web, person, _value = signed_in
    idle = rt.settings.session_idle_minutes
    _age(rt, person.id, idle=timedelta(minutes=idle - 2))
    assert web.get("/api/v1/me").status_code == 200  # used within the idle time: still on
    _age(rt, person.id, idle=timedelta(minutes=idle + 1))
    assert web.get("/api/v1/me").status_code == 401
    with rt.db.session() as session:  # and the row is gone
        assert session.scalar(select(WebSession).where(WebSession.user_id == person.id)) is None


def test_absolute_expiry_however_busy(signed_in, rt):
    web, person, _value = signed_in
    hours = rt.settings.session_max_hours
    _age(rt, person.id, idle=timedelta(0), age=timedelta(hours=hours, minutes=-5))
    assert web.get("/api/v1/me").status_code == 200
    _age(rt, person.id, idle=timedelta(0), age=timedelta(hours=hours, minutes=1))
    assert web.get("/api/v1/me").status_code == 401


def test_the_lifetimes_are_settings(stack_env, rt):
    """CR_SESSION_IDLE_MINUTES and CR_SESSION_MAX_HOURS are what the server checks."""
    env = {**stack_env, "CR_SESSION_IDLE_MINUTES": "5", "CR_SESSION_MAX_HOURS": "1"}
    with app_for(env) as app:
        person = create_person(rt, "coach", password=PASSWORD)
        web = browser(app)
        assert sign_in(web, person.login).status_code == 302
        _age(rt, person.id, idle=timedelta(minutes=4))
        assert web.get("/api/v1/me").status_code == 200
        _age(rt, person.id, idle=timedelta(minutes=6))
        assert web.get("/api/v1/me").status_code == 401
        assert sign_in(web, person.login).status_code == 302
        _age(rt, person.id, idle=timedelta(0), age=timedelta(minutes=61))
        assert web.get("/api/v1/me").status_code == 401


def test_sign_out_everywhere(stack_app, rt):
    person = create_person(rt, "coach", password=PASSWORD)
    laptop, phone = browser(stack_app), browser(stack_app)
    assert sign_in(laptop, person.login).status_code == 302
    assert sign_in(phone, person.login).status_code == 302
    listed = laptop.get("/api/v1/me/sessions").get_json()["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    csrf = csrf_of(laptop.get("/account").get_data(as_text=True))
    ended = laptop.delete("/api/v1/me/sessions", headers={"X-CSRFToken": csrf})
    assert ended.status_code == 200 and ended.get_json() == {"ended": 2}
    assert laptop.get("/api/v1/me").status_code == 401
    assert phone.get("/api/v1/me").status_code == 401
    # The API token is a separate credential and keeps working.
    assert laptop.get("/api/v1/me", headers=person.headers).status_code == 200
    log = laptop.get("/api/v1/me/security-log", headers=person.headers).get_json()["events"]
    assert log[0]["action"] == "user.signed_out_everywhere" and log[0]["by"] == "you"


def test_a_password_change_ends_every_session(stack_app, rt):
    person = create_person(rt, "employee", password=PASSWORD)
    here, elsewhere = browser(stack_app), browser(stack_app)
    first = sign_in(here, person.login)
    assert sign_in(elsewhere, person.login).status_code == 302
    old_cookie = cookie_value(first)
    csrf = csrf_of(here.get("/account").get_data(as_text=True))
    new = PASSWORD + " and more"
    changed = here.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers={"X-CSRFToken": csrf},
    )
    assert changed.status_code == 200, changed.get_json()
    assert cookie_value(changed) != old_cookie  # this browser got a fresh session
    assert here.get("/api/v1/me").status_code == 200
    assert elsewhere.get("/api/v1/me").status_code == 401
    assert with_cookie(stack_app, old_cookie).get("/api/v1/me").status_code == 401
    assert sign_in(browser(stack_app), person.login).status_code == 401
    assert sign_in(browser(stack_app), person.login, new).status_code == 302


def test_a_wrong_current_password_changes_nothing(signed_in, stack_app):
    web, person, _value = signed_in
    csrf = csrf_of(web.get("/account").get_data(as_text=True))
    refused = web.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "something else entirely"},
        headers={"X-CSRFToken": csrf},
    )
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "wrong_password"
    assert web.get("/api/v1/me").status_code == 200
    assert sign_in(browser(stack_app), person.login).status_code == 302


def test_a_deactivation_ends_sessions(signed_in, rt):
    web, person, _value = signed_in
    with rt.db.session() as session:
        users.set_active(session, session.get(User, person.id), False)
        assert session.scalar(select(WebSession).where(WebSession.user_id == person.id)) is None
    assert web.get("/api/v1/me").status_code == 401


def test_session_fixation_a_new_id_at_sign_in(stack_app, rt):
    """The id a browser holds before signing in (anonymous) is not the one after, and a
    browser signed in as one person that signs in as another keeps nothing of the first."""
    first = create_person(rt, "employee", password=PASSWORD)
    second = create_person(rt, "coach", password=PASSWORD)
    web = browser(stack_app)
    one = cookie_value(sign_in(web, first.login))
    two = cookie_value(sign_in(web, second.login))
    assert one != two
    assert web.get("/api/v1/me").get_json()["id"] == str(second.id)
    assert with_cookie(stack_app, one).get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_cookie_attributes(stack_env, rt, scheme):
    public = "https://coaching.example.org" if scheme == "https" else "http://127.0.0.1:8000"
    with app_for({**stack_env, "CR_PUBLIC_URL": public}) as app:
        person = create_person(rt, "employee", password=PASSWORD)
        web = browser(app)
        base = f"{scheme}://coaching.example.org"
        response = sign_in(web, person.login, base=base)
        assert response.status_code == 302
        raw = next(c for c in response.headers.getlist("Set-Cookie") if "cr_session=" in c)
        name, morsel = next(iter(SimpleCookie(raw).items()))
        parts = {p.strip().split("=", 1)[0].lower() for p in raw.split(";")}
        assert morsel["httponly"] and morsel["samesite"].lower() == "lax"
        assert morsel["path"] == "/"
        assert "domain" not in parts  # a __Host- cookie may carry no Domain
        assert "expires" not in parts and "max-age" not in parts  # ends with the browser too
        if scheme == "https":
            assert name == "__Host-cr_session"
            assert morsel["secure"]
            me = web.get(f"{base}/api/v1/me")
            assert me.status_code == 200 and me.get_json()["id"] == str(person.id)
        else:
            assert name == "cr_session"
            assert not morsel["secure"]


def test_the_per_account_sign_in_limit(stack_app, rt):
    """Failed sign-ins are limited per account, from however many addresses they come; the
    person's other address, and other accounts, are not locked out by it."""
    target = create_person(rt, "employee", password=PASSWORD)
    bystander = create_person(rt, "employee", password=PASSWORD)
    statuses = []
    for attempt in range(6):  # six addresses, one guess each: the per-address limit never bites
        response = sign_in(browser(stack_app), target.login, f"guess number {attempt}")
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    body = response.get_json() or {}
    message = body.get("error", {}).get("message", response.get_data(as_text=True))
    assert "failed sign-ins for this account" in message
    # Even the right password waits now: otherwise the limit would not stop guessing.
    assert sign_in(browser(stack_app), target.login).status_code == 429
    assert sign_in(browser(stack_app), bystander.login).status_code == 302
    # Successful sign-ins never count.
    for _ in range(7):
        assert sign_in(browser(stack_app), bystander.login).status_code == 302


def test_an_old_style_cookie_is_refused(stack_app, rt):
    """A signed cookie of the old kind ({uid, epoch}) grants nothing any more."""
    person = create_person(rt, "employee", password=PASSWORD)
    with stack_app.test_request_context():
        serializer = stack_app.session_interface.get_signing_serializer(stack_app)
        forged = serializer.dumps({"uid": str(person.id), "epoch": "x"})
    assert with_cookie(stack_app, forged).get("/api/v1/me").status_code == 401


def test_a_session_id_of_another_deployment_or_garbage_is_anonymous(stack_app):
    for value in ("s1." + uuid.uuid4().hex, "s1.", "garbage", "s1." + "A" * 500):
        assert with_cookie(stack_app, value).get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("login", ["nul\x00login", "x" * 500, "ÅSE", " "])
def test_an_impossible_login_is_just_a_failed_sign_in(stack_app, login):
    assert sign_in(browser(stack_app), login, "whatever it is").status_code == 401
