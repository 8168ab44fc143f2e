"""The coach in a real browser: the list, the player, comments, and being cut off on withdrawal.

Runs against the live stack (gunicorn, a real worker, PostgreSQL, Redis, S3) with Debian's
Chromium driven by Playwright.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from app import jobs
from app.models import Share, utcnow
from app.pages.formatting import clock
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import create_person

PASSWORD = "coach browser test password"
EMPLOYEE_NAME = "Maria Jensen"
COACH_NAME = "Kari Nordmann"


def api(live_server, person, method, path, **kwargs):
    return requests.request(
        method, f"{live_server.url}{path}", headers=person.headers, timeout=30, **kwargs
    )


def wait_until_ready(live_server, rt, coach, share_ids: list[str], timeout: float = 150) -> None:
    """Wait for the worker to make every share ready.

    Test runs that share one Redis database (tests/conftest.py gives every run the same broker
    database and no queue prefix) can take each other's jobs; a job that lands on another
    run's worker finds no such share there and is dropped. A share that no worker has claimed
    after a while gets its job sent again (harmless: a job for a share already claimed or
    ready does nothing)."""
    pending = set(share_ids)
    deadline = time.monotonic() + timeout
    next_nudge = time.monotonic() + 10
    while pending:
        for share_id in sorted(pending):
            body = api(live_server, coach, "GET", f"/api/v1/shares/{share_id}").json()
            assert body["status"] not in ("failed", "revoked", "expired"), body
            if body["status"] == "ready":
                pending.discard(share_id)
        if not pending:
            return
        now = time.monotonic()
        assert now < deadline, f"timed out after {timeout:.0f} s waiting for {pending} to be ready"
        if now >= next_nudge:
            with rt.db.session() as session:
                unclaimed = [
                    sid
                    for sid in pending
                    if session.get(Share, uuid.UUID(sid)).job_lease_until is None
                ]
            for share_id in unclaimed:
                rt.jobs.send(jobs.PROCESS_SHARE, share_id)
            next_nudge = now + 10
        time.sleep(0.3)


def upload_samples(live_server, employee, samples, title: str) -> dict:
    """The session's screen and call samples, uploaded by ``employee`` as one recording."""
    with samples.screen_webm.open("rb") as screen, samples.call_wav.open("rb") as audio:
        response = api(
            live_server,
            employee,
            "POST",
            "/api/v1/recordings",
            files={
                "screen": ("screen.webm", screen, "video/webm"),
                "audio": ("call.wav", audio, "audio/wav"),
            },
            data={"title": title, "customer_informed": "true"},
        )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def shared(live_server, rt, samples):
    """One recording shared four times with the coach: to watch, to withdraw while watching,
    to reach its end date while watching, and one already withdrawn (listed as ended)."""
    employee = create_person(rt, "employee", name=EMPLOYEE_NAME, password=PASSWORD)
    coach = create_person(rt, "coach", name=COACH_NAME, password=PASSWORD)
    recording = upload_samples(live_server, employee, samples, "Billing question, 14 March")

    def make_share(purpose: str, days: int, **extra) -> str:
        response = api(
            live_server,
            employee,
            "POST",
            f"/api/v1/recordings/{recording['id']}/shares",
            json={
                "coach_ids": [str(coach.id)],
                "purpose": purpose,
                "expires_in_days": days,
                **extra,
            },
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    # Withdrawn at once: one employee may have only three shares in preparation.
    ended = make_share("Handling an upset customer", 7)
    assert api(live_server, employee, "POST", f"/api/v1/shares/{ended}/revoke").status_code == 200
    watch = make_share(
        "Explaining the invoice clearly",
        14,
        include_customer_audio=True,
        note="The customer was confused about the late fee.",
    )
    short = {"trim": {"start_s": 0, "end_s": 6}}  # less for the worker to do
    withdraw = make_share("Call opening and greeting", 3, **short)
    expire = make_share("Wrapping up the call", 2, **short)

    wait_until_ready(live_server, rt, coach, [watch, withdraw, expire])
    return {
        "employee": employee,
        "coach": coach,
        "watch": watch,
        "withdraw": withdraw,
        "expire": expire,
        "ended": ended,
    }


def until(page, script: str, arg=None, timeout: float = 10, what: str = "") -> None:
    """Poll `script` with page.evaluate (CDP, so the page's CSP, which forbids eval, allows it;
    page.wait_for_function would need eval inside the page)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or script}")
        page.wait_for_timeout(50)


VIDEO = "document.getElementById('video')"


def open_player(page, share_id: str) -> None:
    page.goto(f"/coach/shares/{share_id}")
    until(page, f"{VIDEO}.readyState >= 2", what="the video to load")
    until(page, "document.getElementById('waveform-note').hidden", what="the waveform")


def play(page) -> None:
    page.click("#play")
    until(page, f"!{VIDEO}.paused && {VIDEO}.currentTime > 0", what="the video to play")


def current_time(page) -> float:
    return page.evaluate("document.getElementById('video').currentTime")


def click_at_time(page, selector: str, seconds: float) -> None:
    """Click the timeline or the waveform where `seconds` is."""
    total = page.evaluate("document.getElementById('video').duration")
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + box["width"] * seconds / total, box["y"] + box["height"] / 2)


def wait_time_near(page, seconds: float, tolerance: float = 1.0) -> None:
    until(
        page,
        "([t, tol]) => { const v = document.getElementById('video');"
        " return !v.seeking && Math.abs(v.currentTime - t) <= tol; }",
        [seconds, tolerance],
        timeout=5,
        what=f"currentTime to be within {tolerance} s of {seconds}",
    )


def _over(rt, share_id: str) -> bool:
    """Withdrawn, expired, or past its end date (the other tests here end two of the shares)."""
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share_id))
        return not row.status.active or row.expires_at <= utcnow()


def test_shared_with_me_lists_the_shares(page, shared, rt):
    sign_in(page, shared["coach"].login, PASSWORD)
    page.goto("/coach")
    listed = [r.get_attribute("data-share-id") for r in page.locator("#shares tr.share-row").all()]
    mine = [shared[name] for name in ("watch", "withdraw", "expire", "ended")]
    # Exactly the coach's shares that are not over, whichever of this module's tests ran first.
    assert sorted(listed) == sorted(s for s in mine if not _over(rt, s))
    assert shared["watch"] in listed and shared["ended"] not in listed
    watch = page.locator(f"tr[data-share-id='{shared['watch']}']")
    assert "Billing question, 14 March" in watch.inner_text()
    assert EMPLOYEE_NAME in watch.inner_text()
    assert "Explaining the invoice clearly" in watch.inner_text()
    assert "ends in 14 days" in watch.inner_text() or "ends in 13 days" in watch.inner_text()
    assert watch.locator(".badge").inner_text() == "Ready"
    # An ended share says only that it ended: not whose, what for, nor that it was withdrawn.
    ended = page.locator(f"tr[data-share-id='{shared['ended']}']")
    assert "Ended" in ended.inner_text() and "Withdrawn" not in ended.inner_text()
    assert "Handling an upset customer" not in page.content()
    assert ended.locator("a").count() == 0
    screenshot(page, "coach-shared-with-me")
    watch.locator("a.play-link").click()
    page.wait_for_url(f"**/coach/shares/{shared['watch']}")
    assert page.locator("#share-title").inner_text() == "Billing question, 14 March"


def test_playback_seeks_changes_speed_and_takes_comments(page, shared, live_server):
    heartbeats = []
    page.on(
        "response",
        lambda r: heartbeats.append(r.status) if r.url.endswith("/heartbeat") else None,
    )
    sign_in(page, shared["coach"].login, PASSWORD)
    open_player(page, shared["watch"])
    before = int(page.locator("#comment-count").inner_text())  # other tests comment here too
    assert page.locator("#watermark").inner_text().startswith(COACH_NAME)
    assert page.evaluate("document.getElementById('video').hasAttribute('controls')") is False
    assert page.locator("a[download], [download]").count() == 0
    assert page.get_by_text("Download").count() == 0
    blocked = page.evaluate(
        """() => {
             const e = new MouseEvent('contextmenu', {bubbles: true, cancelable: true});
             document.getElementById('video').dispatchEvent(e);
             return e.defaultPrevented;
           }"""
    )
    assert blocked

    play(page)
    click_at_time(page, "#waveform", 6)
    wait_time_near(page, 6)

    page.select_option("#speed", "1.5")
    assert page.evaluate("document.getElementById('video').playbackRate") == 1.5
    page.select_option("#speed", "0.75")
    assert page.evaluate("document.getElementById('video').playbackRate") == 0.75

    # The thumbnail sprite previews the picture under the pointer.
    box = page.locator("#timeline").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    until(
        page,
        "() => { const t = document.getElementById('scrub-thumb');"
        " return !document.getElementById('scrub-preview').hidden"
        " && t.style.backgroundImage.startsWith('url(\"blob:') && t.offsetWidth > 0; }",
        what="the thumbnail preview",
    )

    # Pause, seek with the timeline, comment at that moment.
    page.click("#play")
    until(page, f"{VIDEO}.paused")
    click_at_time(page, "#timeline", 4)
    wait_time_near(page, 4, 0.75)
    at = current_time(page)
    page.fill("#comment-body", "Good: you repeated the amount before explaining it.")
    page.click("#comment-submit")
    comment = page.locator("#comment-list li.comment", has_text="you repeated the amount")
    comment.wait_for()
    assert abs(float(comment.get_attribute("data-at")) - at) < 0.5
    assert page.locator("#comment-count").inner_text() == str(before + 1)
    assert page.locator("#timeline-markers .marker").count() == before + 1
    # Written by the page (kit.js clock()) as the server writes it (formatting.clock()).
    chip = comment.locator(".time-chip").inner_text()
    assert chip == clock(float(comment.get_attribute("data-at")))

    click_at_time(page, "#waveform", 10)
    wait_time_near(page, 10)
    comment.click()
    wait_time_near(page, at, 0.5)
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] / 2)
    screenshot(page, "coach-playback")

    # The comment is stored (encrypted) on the server, not just drawn on the page.
    stored = api(
        live_server, shared["coach"], "GET", f"/api/v1/shares/{shared['watch']}/comments"
    ).json()["comments"]
    bodies = [c["body"] for c in stored]
    assert len(bodies) == before + 1
    assert bodies.count("Good: you repeated the amount before explaining it.") == 1

    # The page reports time watched: on pause, and every few seconds while playing.
    if 200 not in heartbeats:
        play(page)
        page.wait_for_event(
            "response", lambda r: r.url.endswith("/heartbeat") and r.status == 200, timeout=8000
        )
    assert 410 not in heartbeats


def test_a_time_reads_the_same_for_the_coach_and_the_employee(page, shared, live_server):
    """One formatter: a comment at 9.6 s reads 0:09 in the coach's player (the server's list and
    the page's markers) and in the employee's My shares (the page's script), and the header's
    length reads like the player's total. Rounding anywhere would make it 0:10 somewhere."""
    at_s = 9.6
    body = f"Listen to the pause here {uuid.uuid4().hex[:6]}"
    posted = api(
        live_server,
        shared["coach"],
        "POST",
        f"/api/v1/shares/{shared['watch']}/comments",
        json={"at_s": at_s, "body": body},
    )
    assert posted.status_code == 201, posted.text
    assert clock(posted.json()["at_s"]) == "0:09"

    sign_in(page, shared["coach"].login, PASSWORD)
    open_player(page, shared["watch"])
    item = page.locator("#comment-list li.comment", has_text=body)
    assert item.locator(".time-chip").inner_text() == "0:09"
    assert item.locator(".comment-jump").get_attribute("aria-label") == "Jump to 0:09"
    markers = page.locator("#timeline-markers .marker[aria-label='Comment at 0:09']")
    assert markers.count() >= 1
    until(page, f"{VIDEO}.readyState >= 1 && isFinite({VIDEO}.duration)", what="the duration")
    total = page.locator("#time-total").inner_text()
    assert page.locator("#share-length").inner_text().strip() == f"· {total}"
    assert total == clock(page.evaluate(f"{VIDEO}.duration"))

    page.context.clear_cookies()
    sign_in(page, shared["employee"].login, PASSWORD)
    page.goto("/shares")
    card = page.locator(f"#share-{shared['watch']}")
    card.locator("details[data-panel=comments] summary").click()
    meta = card.locator(".comment", has_text=body).locator(".meta")
    meta.wait_for()
    assert f"{COACH_NAME} at 0:09 · " in meta.inner_text()


def test_withdrawal_stops_the_player_within_seconds(page, shared, live_server):
    sign_in(page, shared["coach"].login, PASSWORD)
    open_player(page, shared["withdraw"])
    play(page)
    media = []
    page.on(
        "response",
        lambda r: (
            media.append((r.request.timing["startTime"] / 1000, r.status, r.url))
            if "/media/" in r.url
            else None
        ),
    )
    started = time.time()
    revoke = requests.post(
        f"{live_server.url}/api/v1/shares/{shared['withdraw']}/revoke",
        headers=shared["employee"].headers,
        timeout=30,
    )
    assert revoke.status_code == 200, revoke.text
    revoked_at = time.time()
    notice = page.locator("#ended-notice")
    notice.wait_for(state="visible", timeout=8000)
    stopped_after = time.time() - started
    assert stopped_after < 7, f"the player kept going for {stopped_after:.1f} s"
    # The coach is told that it ended, not that the employee withdrew it.
    assert (
        page.locator("#ended-title").inner_text()
        == "This share has ended. The recording is no longer available to you."
    )
    state = page.evaluate(
        """() => { const v = document.getElementById('video');
                   return {src: v.src, paused: v.paused, hasSrc: v.hasAttribute('src'),
                           playerHidden: document.getElementById('player').hidden,
                           comments: document.querySelectorAll('#comment-list li').length}; }"""
    )
    assert state == {
        "src": "",
        "paused": True,
        "hasSrc": False,
        "playerHidden": True,
        "comments": 0,
    }
    assert not page.locator("#stage").is_visible()

    # Nothing more comes from the media endpoint for this page, whatever it asks.
    statuses = page.evaluate(
        """async (id) => Promise.all(['video', 'poster.jpg', 'waveform.json'].map(async (kind) => {
             const url = `/media/shares/${id}/${kind}`;
             return (await fetch(url, {headers: {Range: 'bytes=0-1023'}})).status;
           }))""",
        shared["withdraw"],
    )
    assert statuses == [410, 410, 410]
    after = [(status, url) for start, status, url in media if start >= revoked_at]
    assert len(after) >= 3 and all(status == 410 for status, _ in after), after
    screenshot(page, "coach-withdrawn")


def test_reaching_the_end_date_stops_the_player_too(page, shared, rt):
    sign_in(page, shared["coach"].login, PASSWORD)
    open_player(page, shared["expire"])
    play(page)
    with rt.db.session() as session:  # as if the days had passed
        session.get(Share, uuid.UUID(shared["expire"])).expires_at = utcnow()
    page.locator("#ended-notice").wait_for(state="visible", timeout=8000)
    assert page.locator("#ended-title").inner_text() == (
        "This share has ended. The recording is no longer available to you."
    )
    assert page.evaluate(f"{VIDEO}.src") == ""
    assert page.evaluate(f"{VIDEO}.paused")
