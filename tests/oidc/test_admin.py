"""Admins and people of the identity provider (SPEC §15): where each user comes from is shown;
no password, enrolment or reset link can be made for a provider's user, by any way in."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.models import User
from app.services import account_links, users
from app.services.errors import Conflict
from tests.conftest import create_person
from tests.oidc.conftest import http_sign_in


@pytest.fixture
def provider_person(app_server, person, rt):
    sub = person(["cc-agents"], email="agent@example.org")
    http, _ = http_sign_in(app_server.url, sub)
    user_id = http.get(f"{app_server.url}/api/v1/me", timeout=10).json()["id"]
    return http, user_id


def test_admin_sees_where_each_user_comes_from(app_server, rt, provider_person):
    _, user_id = provider_person
    admin, local = create_person(rt, "admin"), create_person(rt, "employee")
    listed = requests.get(f"{app_server.url}/api/v1/admin/users", headers=admin.headers, timeout=10)
    source = {u["id"]: u["source"] for u in listed.json()["users"]}
    assert source[user_id] == "provider" and source[str(local.id)] == "local"


@pytest.mark.parametrize("action", ["enrolment-link", "reset"])
def test_admin_cannot_send_a_link_to_a_providers_user(app_server, rt, provider_person, action):
    http, user_id = provider_person
    admin = create_person(rt, "admin")
    answer = requests.post(
        f"{app_server.url}/api/v1/admin/users/{user_id}/{action}", headers=admin.headers, timeout=10
    )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "provider_account"
    assert http.get(f"{app_server.url}/api/v1/me", timeout=10).ok  # nothing was ended


def test_no_password_or_link_for_a_providers_user_by_any_way_in(app_server, rt, provider_person):
    http, user_id = provider_person
    page = http.get(f"{app_server.url}/account", timeout=10).text
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    answer = http.post(
        f"{app_server.url}/api/v1/me/password",
        json={"new_password": "a-long-enough-password"},
        headers={"X-CSRFToken": csrf},
        timeout=10,
    )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "provider_account"
    with rt.db.session() as db:
        user = db.scalar(select(User).where(User.id == user_id))
        with pytest.raises(Conflict):
            users.set_password(db, user, "a-long-enough-password", actor_id=None)
        with pytest.raises(Conflict):
            account_links.issue(db, user, "reset")  # the operator's CLI
        assert user.password_hash is None
