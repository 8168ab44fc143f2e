"""Admin and representative in a real browser: users and teams, policy, keys; the oversight view."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

from app.models import User
from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def api(live_server, method: str, path: str, person, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{live_server.url}{path}", headers=person.headers, timeout=30, **kwargs
    )


def me_status(live_server, token: str) -> int:
    return requests.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


@pytest.fixture
def activity(live_server, make_person, samples):
    """Five shares this week (enough to be shown) by employees whose names must never appear
    (two of them: one person may have only three shares in preparation at once)."""
    employee = make_person("employee", name=f"Private Person {uuid.uuid4().hex[:4]}")
    other = make_person("employee", name=f"Private Other {uuid.uuid4().hex[:4]}")
    coach = make_person("coach")
    recordings = {}
    for person in (employee, other):
        response = api(
            live_server,
            "POST",
            "/api/v1/recordings",
            person,
            files={"audio": ("call.wav", io.BytesIO(samples.mono_wav.read_bytes()), "audio/wav")},
            data={"title": "Title admins must not see", "agent_channel": "mono"},
        )
        assert response.status_code == 201, response.text
        recordings[person.id] = response.json()
    recording = recordings[employee.id]
    for n in range(5):
        person = employee if n < 3 else other
        made = api(
            live_server,
            "POST",
            f"/api/v1/recordings/{recordings[person.id]['id']}/shares",
            person,
            json={"coach_ids": [str(coach.id)], "purpose": "Opening", "expires_in_days": 1},
        )
        assert made.status_code == 202, made.text
    return {"employee": employee, "recording": recording}


def test_admin_runs_the_system_and_the_representative_oversees_it(
    page, live_server, make_person, activity, rt
):
    admin = make_person("admin", password=PASSWORD)
    representative = make_person("representative", password=PASSWORD)
    secrets = [activity["recording"]["id"], "Title admins must not see"]

    sign_in(page, admin.login, PASSWORD)
    assert page.url.endswith("/admin/users")
    expect(page.locator("#user-rows tr[data-user-id]").first).to_be_visible()

    # A team, then a person in it with an e-mail address: an enrolment link goes there, and the
    # admin sees no token, no password field and no link (issue 12, finding 1).
    team = f"Team North {uuid.uuid4().hex[:4]}"
    page.locator("#new-team-name").fill(team)
    page.get_by_role("button", name="Add team").click()
    expect(page.locator("#team-list")).to_contain_text(team)
    name = f"New Coach {uuid.uuid4().hex[:4]}"
    login = f"nc-{uuid.uuid4().hex[:6]}"
    address = f"{login}@example.org"
    expect(page.locator("#new-password")).to_have_count(0)
    page.locator("#new-name").fill(name)
    page.locator("#new-login").fill(login)
    page.locator("#new-role").select_option("coach")
    page.locator("#new-team").select_option(label=team)
    page.locator("#new-email").fill(address)
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".toast").last).to_contain_text(f"on its way to {address}")
    row = page.locator("#user-rows tr", has_text=login)
    expect(row).to_contain_text(name)
    expect(row).to_contain_text(address)
    expect(row).to_contain_text("Not signed in yet")
    expect(row.get_by_role("button", name="Send enrolment link")).to_be_visible()
    expect(row.get_by_role("combobox")).to_have_value(
        next(
            t["id"]
            for t in api(live_server, "GET", "/api/v1/admin/teams", admin).json()["teams"]
            if t["name"] == team
        )
    )
    created = next(
        u
        for u in api(live_server, "GET", "/api/v1/admin/users", admin).json()["users"]
        if u["login"] == login
    )
    assert created["role"] == "coach" and created["team"]["name"] == team
    assert created["email"] == address and created["enrolled"] is False
    assert "cr_" not in page.content() and "/account/link" not in page.content()

    # Someone without an address: the answer says to ask the operator, and sends nothing.
    nomail = make_person("employee", name=f"No Mail {uuid.uuid4().hex[:4]}")
    page.reload()
    nomail_row = page.locator("#user-rows tr", has_text=nomail.login)
    nomail_row.get_by_role("button", name="Reset…").click()
    page.locator("dialog.confirm-dialog").get_by_role(
        "button", name="Reset and send the link"
    ).click()
    expect(page.locator("#users-error")).to_contain_text(
        f"consent-replay users reset {nomail.login}"
    )
    assert me_status(live_server, nomail.token) == 200  # nothing was ended

    # Reset someone who has signed in: their token stops working at once.
    member = make_person("employee", name=f"Reset Me {uuid.uuid4().hex[:4]}")
    with rt.db.session() as session:
        session.get(User, member.id).email = f"{member.login}@example.org"
    page.reload()
    member_row = page.locator("#user-rows tr", has_text=member.login)
    member_row.get_by_role("button", name="Reset…").click()
    expect(page.locator("dialog.confirm-dialog")).to_contain_text("you do not see it")
    page.locator("dialog.confirm-dialog").get_by_role(
        "button", name="Reset and send the link"
    ).click()
    expect(page.locator(".toast").last).to_contain_text("a reset link is on its way")
    assert me_status(live_server, member.token) == 401

    # Deactivate: confirmed, shown; reactivate.
    row.get_by_role("button", name="Deactivate").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("Deactivated")
    page.locator("#user-filter").fill(login)
    expect(page.locator("#user-rows tr[data-user-id]")).to_have_count(1)
    page.locator("#user-filter").fill("")
    row.get_by_role("button", name="Reactivate").click()
    expect(row).to_contain_text("Active")
    page.evaluate("window.scrollTo(0, 0); document.getElementById('toasts')?.remove()")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "admin-users")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "admin-users-390")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the users page is {width} px wide at 390 px"
    page.set_viewport_size({"width": 1366, "height": 900})
    for secret in secrets:
        assert secret not in page.content()

    # Policy: a new version, visible through the API.
    before = api(live_server, "GET", "/api/v1/policy", admin).json()
    page.get_by_role("link", name="Policy").click()
    expect(page.locator("#policy-version")).to_have_text(f"Version {before['version']}")
    new_days = 21 if before["max_share_days"] != 21 else 14
    page.locator("#max-share-days").fill(str(new_days))
    consent = before["consent_text"] + "\n\nAsk your representative if anything is unclear."
    page.locator("#consent-text").fill(consent)
    # The Norwegian text beside it (SPEC §14): both are kept in the new version.
    consent_nb = before["consent_texts"]["nb"] + "\n\nSpør den tillitsvalgte om noe er uklart."
    page.locator("#consent-text-nb").fill(consent_nb)
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#policy-version")).to_have_text(f"Version {before['version'] + 1}")
    after = api(live_server, "GET", "/api/v1/policy", admin).json()
    assert after["version"] == before["version"] + 1
    assert after["max_share_days"] == new_days
    assert after["consent_text"] == consent.strip()
    assert after["consent_texts"] == {"en": consent.strip(), "nb": consent_nb.strip()}
    assert after["draft_lifetime_hours"] == before["draft_lifetime_hours"]
    page.locator("#draft-hours").fill("0")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#policy-error")).to_contain_text("1 to 720 hours")
    assert api(live_server, "GET", "/api/v1/policy", admin).json()["version"] == after["version"]
    page.reload()
    screenshot(page, "admin-policy")

    # Keys: status, then a rotation.
    page.get_by_role("link", name="Keys").click()
    status = api(live_server, "GET", "/api/v1/admin/keys", admin).json()["versions"]
    current = next(v for v in status if v["current"])
    expect(page.locator("#stat-current")).to_have_text(f"v{current['version']}")
    expect(page.locator(f"#key-rows tr[data-version='{current['version']}']")).to_contain_text(
        "current"
    )
    page.get_by_role("button", name="Rotate now").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Rotate now").click()
    expect(page.locator("#key-result")).to_contain_text(
        f"version {current['version'] + 1} is current", timeout=30_000
    )
    expect(page.locator("#stat-current")).to_have_text(f"v{current['version'] + 1}")
    rotated = api(live_server, "GET", "/api/v1/admin/keys", admin).json()["versions"]
    newest = next(v for v in rotated if v["current"])
    assert newest["version"] == current["version"] + 1
    assert newest["in_use"] is True  # the recording and its five shares were rewrapped
    expect(
        page.locator(f"#key-rows tr[data-version='{newest['version']}'] td.in-use")
    ).to_have_text("Yes")
    expect(page.locator("#key-rows")).not_to_contain_text("data keys")
    screenshot(page, "admin-keys")
    for secret in secrets:
        assert secret not in page.content()

    # The representative: figures (small counts suppressed), policy history, a verified chain.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, representative.login, PASSWORD)
    assert page.url.endswith("/oversight")
    summary = api(live_server, "GET", "/api/v1/oversight/summary?weeks=12", representative).json()
    this_week = summary["weeks"][-1]
    assert this_week["shares_made"] is not None and this_week["shares_made"] >= 5
    rows = page.locator("#figure-rows tr")
    expect(rows).to_have_count(12)
    first = rows.first  # newest week first
    expect(first.locator("td").nth(1)).to_have_text(f"{this_week['shares_made']:,}")
    older = summary["weeks"][0]
    assert older["shares_made"] is None  # nothing happened twelve weeks ago in this database
    expect(rows.last.locator("td").nth(1)).to_have_text("< 5")
    week_start = datetime.fromisoformat(this_week["week_start"]).replace(tzinfo=UTC)
    assert datetime.now(UTC) - week_start < timedelta(days=7)
    expect(page.locator("#chart .week")).to_have_count(12)
    expect(page.locator("#chart .bar.suppressed").first).to_be_visible()
    expect(page.locator("#history-rows tr[data-version]").first).to_contain_text(
        f"v{after['version']}"
    )
    expect(page.locator("#history-rows")).to_contain_text(f"{new_days} days")
    page.get_by_role("button", name="Verify the audit chain").click()
    result = page.locator("#chain-result")
    expect(result).to_contain_text("Intact")
    chain = api(live_server, "GET", "/api/v1/oversight/audit-chain", representative).json()
    assert chain["ok"] is True
    expect(result).to_contain_text("events verified")
    content = page.content()
    for secret in [*secrets, activity["employee"].name]:
        assert secret not in content
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar, where it belongs
    screenshot(page, "representative-oversight")
