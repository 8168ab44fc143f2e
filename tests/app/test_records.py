"""Records of processing on the oversight console: the data map and the policy with its
history, for the representative and the admin, and for nobody else."""

from __future__ import annotations

import json

import pytest

from app.services import datamap, policy
from tests.app.browsing import PASSWORD, signed_in_browser


@pytest.fixture
def changed_policy(rt, make_person):
    admin = make_person("admin", password=PASSWORD)
    with rt.db.session() as session:
        before = policy.current_policy(session).version
        policy.update_policy(
            session,
            actor_id=admin.id,
            hard_upload_limit=rt.settings.max_upload_bytes,
            consent_text="Records test: version two of the consent text.",
        )
        session.commit()
    return before


@pytest.mark.parametrize("role", ["representative", "admin"])
def test_the_records_page_shows_the_map_the_policy_and_its_history(
    stack_app, rt, make_person, changed_policy, role
):
    person = make_person(role, password=PASSWORD)
    web, _csrf = signed_in_browser(stack_app, person)
    page = web.get("/oversight/records")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Records test: version two of the consent text." in html
    assert f"<td>{changed_policy}</td>" in html  # the earlier version is in the history
    for name in ("shares.purpose_sealed", "users.email", "recordings/", "access.remote_address"):
        assert f"<code>{name}</code>" in html
    assert page.headers["Cache-Control"].startswith("no-store")


@pytest.mark.parametrize("role", ["representative", "admin"])
def test_the_data_map_downloads(stack_app, rt, make_person, role):
    browser, _csrf = signed_in_browser(stack_app, make_person(role, password=PASSWORD))
    md = browser.get("/oversight/records/data-map.md")
    assert md.status_code == 200 and md.mimetype == "text/markdown"
    assert "attachment" in md.headers["Content-Disposition"]
    assert md.get_data(as_text=True) == datamap.markdown()
    js = browser.get("/oversight/records/data-map.json")
    assert json.loads(js.get_data()) == datamap.as_json()
    assert browser.get("/oversight/records/data-map.exe").status_code == 404


@pytest.mark.parametrize("role", ["employee", "coach"])
def test_other_roles_get_neither_page_nor_map(stack_app, rt, make_person, client, role):
    person = make_person(role, password=PASSWORD)
    browser, _csrf = signed_in_browser(stack_app, person)
    assert browser.get("/oversight/records").status_code == 403
    assert browser.get("/oversight/records/data-map.md").status_code == 403
    assert client.get("/api/v1/oversight/data-map", headers=person.headers).status_code == 403
    assert client.get("/api/v1/oversight/data-map").status_code == 401


def test_the_api_answers_the_map_to_the_representative(client, make_person):
    rep = make_person("representative", password=PASSWORD)
    answer = client.get("/api/v1/oversight/data-map", headers=rep.headers)
    assert answer.status_code == 200
    assert answer.get_json() == json.loads(json.dumps(datamap.as_json()))
