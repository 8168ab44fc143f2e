"""Coaching feedback in a real browser (SPEC §13): the coach rates on an approved form beside the
player, links a moment, the draft saves itself, sends; the employee reads it, plays the moment,
acknowledges and replies, sees it in My progress; after the employee withdraws the share the
coach has lost it and the employee still has it."""

from __future__ import annotations

import uuid

import pytest

from app.services import forms
from tests.app.test_feedback import CRITERIA
from tests.browser.conftest import assert_accessible, screenshot, sign_in
from tests.browser.test_coach import api, open_player, until, wait_until_ready
from tests.conftest import create_person

PASSWORD = "feedback browser test password"


@pytest.fixture(scope="module")
def setting(live_server, rt, samples):
    employee = create_person(rt, "employee", name="Ingrid Berg", password=PASSWORD)
    coach = create_person(rt, "coach", name="Ola Hansen", password=PASSWORD)
    admin = create_person(rt, "admin")
    representative = create_person(rt, "representative")
    with rt.db.session() as session:
        form = forms.propose(
            session, name="Call coaching", language="en", criteria=CRITERIA, actor_id=admin.id
        )
        forms.approve(session, form.id, actor_id=representative.id)
    with samples.screen_webm.open("rb") as screen, samples.call_wav.open("rb") as audio:
        made = api(
            live_server,
            employee,
            "POST",
            "/api/v1/recordings",
            files={
                "screen": ("screen.webm", screen, "video/webm"),
                "audio": ("call.wav", audio, "audio/wav"),
            },
            data={"title": "Refund request"},
        )
    assert made.status_code == 201, made.text
    share = api(
        live_server,
        employee,
        "POST",
        f"/api/v1/recordings/{made.json()['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "Handling refunds", "expires_in_days": 7},
    )
    assert share.status_code == 202, share.text
    share_id = share.json()["id"]
    wait_until_ready(live_server, rt, coach, [share_id])
    return {"employee": employee, "coach": coach, "share": share_id, "form": str(form.id)}


def other_page(browser, live_server, width: int = 1280):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": width, "height": 900}
    )
    context.set_default_timeout(20_000)
    return context, context.new_page()


def at_width(page, width: int, name: str) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar belongs at the top
    page.wait_for_timeout(150)
    assert_accessible(page)
    screenshot(page, name)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name}: the page is {overflow} px wider than the window"


def test_coach_gives_feedback_and_the_employee_keeps_it(page, browser, live_server, setting):
    coach, employee, share_id = setting["coach"], setting["employee"], setting["share"]

    # The coach, beside the player.
    sign_in(page, coach.login, PASSWORD)
    open_player(page, share_id)
    panel = page.locator("#feedback-panel")
    assert panel.is_visible()
    # Other tests of the run approve forms too: choose this test's form.
    page.select_option("#feedback-form-id", setting["form"])
    panel = panel.locator(f'.form-criteria[data-form-id="{setting["form"]}"]')
    page.evaluate("document.getElementById('video').currentTime = 3.2")
    until(page, "Math.abs(document.getElementById('video').currentTime - 3.2) < 0.05")
    empathy = panel.locator('fieldset[data-criterion-id="empathy"]')
    empathy.get_by_label("Often").check()
    empathy.locator("textarea").fill("You named the customer's worry before explaining.")
    empathy.get_by_role("button", name="Link this moment").click()
    chip = empathy.locator(".moment .time-chip")
    assert chip.inner_text() == "0:03"
    panel.locator('fieldset[data-criterion-id="resolution"]').get_by_label("Yes").check()
    page.fill("#feedback-strengths", "Calm, clear voice.")
    page.fill("#feedback-next-step", "Summarise what happens next before you end the call.")
    page.fill("#feedback-summary", "A good refund call.")
    until(
        page,
        "document.getElementById('feedback-state').textContent.startsWith('Draft saved')",
        what="the draft to be saved",
    )
    assert page.is_disabled("#feedback-form-id")  # the draft is written on this form now
    # The draft survives a reload.
    page.reload()
    until(page, "document.getElementById('video').readyState >= 2")
    assert page.locator("#feedback-summary").input_value() == "A good refund call."
    assert empathy.get_by_label("Often").is_checked()
    assert empathy.locator(".moment .time-chip").inner_text() == "0:03"
    empathy.locator(".moment .time-chip").click()
    until(
        page,
        "Math.abs(document.getElementById('video').currentTime - 3.2) < 0.2",
        what="the linked moment to be played",
    )
    at_width(page, 1280, "feedback-coach-panel")
    at_width(page, 390, "feedback-coach-panel-390")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#feedback-send")
    page.wait_for_selector("#feedback-sent")

    # The employee reads it, plays the moment, acknowledges and replies.
    context, mine = other_page(browser, live_server)
    try:
        sign_in(mine, employee.login, PASSWORD)
        mine.goto("/feedback")
        item = mine.locator(".feedback-item").first
        assert "A good refund call." in item.inner_text()
        assert "Often" in item.inner_text()
        assert item.locator(".badge").inner_text() == "New"
        at_width(mine, 1280, "feedback-employee")
        at_width(mine, 390, "feedback-employee-390")
        mine.set_viewport_size({"width": 1280, "height": 900})
        link = item.locator("a.time-chip")
        assert link.get_attribute("href").endswith(f"/coach/shares/{share_id}#t=3.2")
        link.click()
        until(
            mine,
            "document.getElementById('video') && document.getElementById('video').readyState >= 1",
        )
        until(
            mine,
            "Math.abs(document.getElementById('video').currentTime - 3.2) < 0.2",
            what="the player to open at the linked moment",
        )
        mine.goto("/feedback")
        item = mine.locator(".feedback-item").first
        item.locator("textarea[name=reply]").fill("Thanks, I will try that on my next calls.")
        item.get_by_label("I agree").check()
        item.get_by_role("button", name="Acknowledge").click()
        mine.wait_for_selector(".ack-done")
        done = mine.locator(".feedback-item").first.inner_text()
        assert "Thanks, I will try that" in done and "you agree" in done

        # In Norwegian (the person's own choice), as accessible.
        assert api(live_server, employee, "PATCH", "/api/v1/me", json={"language": "nb"}).ok
        mine.goto("/feedback")
        assert mine.locator("h1").inner_text() == "Tilbakemelding"
        assert "Bekreftet lest" in mine.locator(".feedback-item").first.inner_text()
        at_width(mine, 1280, "feedback-employee-nb")
        assert api(live_server, employee, "PATCH", "/api/v1/me", json={"language": "en"}).ok
        mine.goto("/progress")
        assert mine.locator("svg.progress-chart").count() == 2
        assert "Summarise what happens next" in mine.locator("#checklist").inner_text()
        at_width(mine, 1280, "feedback-progress")
        at_width(mine, 390, "feedback-progress-390")

        # The employee withdraws the share: the coach loses the feedback, the employee keeps it.
        given = api(live_server, coach, "GET", "/api/v1/feedback").json()["feedback"]
        assert len(given) == 1 and given[0]["reply"].startswith("Thanks")
        revoked = api(live_server, employee, "POST", f"/api/v1/shares/{share_id}/revoke")
        assert revoked.status_code == 200
        assert api(live_server, coach, "GET", "/api/v1/feedback").json()["feedback"] == []
        gone = api(live_server, coach, "GET", f"/api/v1/feedback/{given[0]['id']}")
        assert gone.status_code == 404
        mine.goto("/feedback")
        kept = mine.locator(".feedback-item").first.inner_text()
        assert "A good refund call." in kept
        assert "no longer shared" in kept and mine.locator("a.time-chip").count() == 0
    finally:
        context.close()


def test_admin_proposes_and_the_representative_approves_seeing_the_change(
    page, browser, live_server, rt
):
    admin = create_person(rt, "admin", name="Astrid Admin", password=PASSWORD)
    representative = create_person(rt, "representative", name="Rune Rep", password=PASSWORD)
    name = f"Phone etiquette {uuid.uuid4().hex[:6]}"  # other tests of the run make forms too

    sign_in(page, admin.login, PASSWORD)
    page.goto("/admin/feedback-forms")
    page.fill("#form-name", name)
    first = page.locator(".criterion-row").first
    first.locator('[data-field="title"]').fill("Greets the customer")
    first.locator('[data-field="description"]').fill("Name, company, an offer to help.")
    page.click("#add-criterion")
    second = page.locator(".criterion-row").nth(1)
    second.locator('[data-field="title"]').fill("Confirms the next step")
    second.locator('[data-field="scale"]').select_option("yes_no")
    page.click("#propose")
    row = page.locator("#form-rows tr", has_text=name)
    row.locator(".badge.proposed").wait_for()
    at_width(page, 1280, "feedback-forms-admin")
    at_width(page, 390, "feedback-forms-admin-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    context, rep = other_page(browser, live_server)
    try:
        sign_in(rep, representative.login, PASSWORD)
        rep.goto("/oversight")
        proposal = rep.locator(".proposal", has_text=name)
        assert "A new form" in proposal.inner_text()
        proposal.get_by_role("button", name="Approve").click()
        rep.locator("#form-history tr", has_text=name).locator(".badge.approved").wait_for()

        # A change comes back as version 2, showing what changed; rejected with a reason.
        page.reload()
        page.locator("#form-rows tr", has_text=name).get_by_role(
            "button", name="Propose a change"
        ).first.click()
        page.locator(".criterion-row").nth(1).locator('[data-action="remove"]').click()
        page.locator(".criterion-row").first.locator('[data-field="scale"]').select_option("5")
        page.click("#propose")
        page.locator("#form-rows tr", has_text=f"{name} · version 2").locator(
            ".badge.proposed"
        ).wait_for()

        rep.reload()
        proposal = rep.locator(".proposal", has_text=f"{name} · version 2")
        changes = proposal.locator(".changes").inner_text()
        assert "Removed: Confirms the next step" in changes
        assert "Changed Greets the customer: scale 1–4" in changes
        at_width(rep, 1280, "feedback-forms-oversight")
        at_width(rep, 390, "feedback-forms-oversight-390")
        rep.set_viewport_size({"width": 1280, "height": 900})
        proposal.get_by_role("button", name="Reject").click()
        refusal = proposal.locator(".form-error")
        refusal.wait_for()
        assert "reason" in refusal.inner_text().lower()
        proposal.locator("textarea").fill("Keep the yes/no question about next steps.")
        proposal.get_by_role("button", name="Reject").click()
        rep.locator("#form-history tr", has_text=f"{name} · version 2").locator(
            ".badge.rejected"
        ).wait_for()
    finally:
        context.close()
    page.reload()
    rejected = page.locator("#form-rows tr", has_text=f"{name} · version 2")
    assert "Keep the yes/no question" in rejected.inner_text()
