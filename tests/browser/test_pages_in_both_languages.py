"""The coach, admin, representative and account pages in both languages (SPEC §14), in Chromium:
axe-core finds no serious or critical WCAG 2.2 AA violation on any of them, for every role that
sees it; in Norwegian no English text of the catalogs is left on them; at 390 px nothing
scrolls sideways. The player obeys its keyboard shortcuts and its help dialog holds focus.
Screenshots (1280 and 390 px, nb and en) land in tests/artifacts/screenshots/uic-*.png."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from babel.messages import pofile
from playwright.sync_api import expect

from app.models import User
from app.services import account_links, oversight
from tests.browser.conftest import assert_accessible, screenshot, sign_in
from tests.browser.test_coach import api, until, upload_samples, wait_until_ready
from tests.conftest import create_person

pytestmark = pytest.mark.browser
PASSWORD = "both languages test password"
CATALOGS = Path(__file__).resolve().parents[2] / "app" / "translations" / "nb" / "LC_MESSAGES"
LOADING = ("Loading…", "Laster …")
# Where the text is a person's data, a code or deliberately another language, not the page's.
NOT_UI = (
    "textarea, code, .mono, .consent-text, .watermark-name, .comment-body,"
    " .share-title, .share-purpose, #share-title, #share-purpose, #share-note, .brand,"
    " [lang]:not(html), .person-name, .who-name, .login, td.person, .team-select,"
    " .user-text, .changes, .form-criteria-list"  # what people wrote, and their names
)


def english_words() -> tuple[list[str], list[str]]:
    """What only the English pages say: every catalog text whose Norwegian differs, as whole
    phrases (two words or more) and as single words of four letters or more."""
    phrases, words = set(), set()
    for domain in ("messages", "js"):
        with (CATALOGS / f"{domain}.po").open("rb") as handle:
            catalog = pofile.read_po(handle)
        for message in catalog:
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            for text, translated in zip(ids, strings, strict=False):
                if not text or text == translated:
                    continue
                for part in re.split(r"%\(\w+\)[sdr]|\{\w+\}|\n", text):
                    part = part.strip(" .,:;–—·()")
                    if " " in part and len(part) >= 8:
                        phrases.add(part)
                    elif re.fullmatch(r"[A-Z]?[a-z]{3,}", part):
                        words.add(part)
    return sorted(phrases), sorted(words)


PHRASES, WORDS = english_words()


def page_text(page) -> str:
    """The text a person reads or hears: visible text, and names that are only attributes."""
    return page.evaluate(
        """(skip) => {
          const parts = [document.title];
          const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const parent = node.parentElement;
            if (!parent || parent.closest(skip) || parent.closest("script, style")) continue;
            if (parent.closest("[hidden], .hidden")) continue;
            parts.push(node.textContent);
          }
          document.querySelectorAll("[aria-label], [title], [placeholder], [alt]").forEach((el) => {
            if (el.closest(skip)) return;
            ["aria-label", "title", "placeholder", "alt"].forEach((name) => {
              if (el.hasAttribute(name)) parts.push(el.getAttribute(name));
            });
          });
          return parts.join("\\n");
        }""",
        NOT_UI,
    )


def assert_no_english(page, where: str) -> None:
    text = page_text(page)
    found = [p for p in PHRASES if p in text]
    found += [w for w in WORDS if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)]
    spans = [
        re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) or re.search(re.escape(w), text)
        for w in found
    ]
    where_found = [text[max(0, m.start() - 40) : m.end() + 40] for m in spans if m]
    assert found == [], f"English left on {where} in Norwegian: {found} in {where_found}"


def settle(page) -> None:
    """Wait until the page's scripts have filled in what they load."""
    deadline = time.monotonic() + 15
    while any(word in page.inner_text("body") for word in LOADING):
        assert time.monotonic() < deadline, f"{page.url} kept loading"
        page.wait_for_timeout(100)


def check_page(page, name: str, lang: str) -> None:
    """axe, the language, the words, and both widths (with screenshots)."""
    settle(page)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert_accessible(page)
    if lang == "nb":
        assert_no_english(page, name)
    screenshot(page, f"uic-{name}-{lang}")
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_timeout(150)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, f"{name} ({lang}) scrolls sideways at 390 px: {wide} px wide"
        header = page.evaluate(
            "(() => { const h = document.querySelector('.topbar');"
            " return h ? h.scrollWidth - h.clientWidth : 0; })()"
        )
        assert header <= 0, f"the header of {name} overflows at 390 px"
        assert_accessible(page)
        screenshot(page, f"uic-{name}-{lang}-390")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture(scope="module")
def people(live_server, rt, samples):
    """One of each role, and a recording the employee shared with the coach, ready to play."""
    made = {
        "employee": create_person(rt, "employee", name="Maria Jensen", password=PASSWORD),
        "coach": create_person(rt, "coach", name="Kari Nordmann", password=PASSWORD),
        "admin": create_person(rt, "admin", name="Per Hansen", password=PASSWORD),
        "representative": create_person(
            rt, "representative", name="Ola Tillitsvalgt", password=PASSWORD
        ),
    }
    employee, coach = made["employee"], made["coach"]
    recording = upload_samples(live_server, employee, samples, "Faktura, 14. mars")
    shared = api(
        live_server,
        employee,
        "POST",
        f"/api/v1/recordings/{recording['id']}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "Forklare fakturaen", "expires_in_days": 7},
    )
    assert shared.status_code == 202, shared.text
    share_id = shared.json()["id"]
    wait_until_ready(live_server, rt, coach, [share_id])
    comment = api(
        live_server,
        coach,
        "POST",
        f"/api/v1/shares/{share_id}/comments",
        json={"at_s": 2.0, "body": "God start på samtalen"},
    )
    assert comment.status_code == 201, comment.text
    return {**made, "share": share_id}


def set_language(rt, people, lang: str) -> None:
    with rt.db.session() as session:
        for role in ("employee", "coach", "admin", "representative"):
            session.get(User, people[role].id).language = lang


PAGES = {
    "coach": ["/coach", "/coach/shares/{share}", "/coach/shares/{missing}", "/account"],
    "employee": ["/coach/shares/{share}"],
    "admin": ["/admin/users", "/admin/policy", "/admin/keys", "/oversight/records", "/account"],
    "representative": ["/oversight", "/oversight/records", "/account"],
}


def slug(role: str, path: str) -> str:
    name = re.sub(r"[^a-z]+", "-", path.format(share="share", missing="missing")).strip("-")
    return f"{role}-{name}"


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_every_page_for_every_role(page, browser, live_server, rt, people, lang):
    page.set_viewport_size({"width": 1280, "height": 900})
    set_language(rt, people, lang)
    page.context.add_cookies([{"name": "cr_lang", "value": lang, "url": live_server.url}])
    page.goto("/login")
    check_page(page, "sign-in", lang)
    page.goto("/account/link")
    check_page(page, "account-link", lang)
    for role, paths in PAGES.items():
        sign_in(page, people[role].login, PASSWORD)
        for path in paths:
            page.goto(path.format(share=people["share"], missing=uuid.uuid4()))
            check_page(page, slug(role, path), lang)
        page.context.clear_cookies()
        page.context.add_cookies([{"name": "cr_lang", "value": lang, "url": live_server.url}])

    # The page a sign-in link ends on (a token made there), as its person reads it.
    with rt.db.session() as session:
        secret = account_links.issue(session, session.get(User, people["coach"].id), "reset")
    page.goto(f"/account/link#{secret}")
    page.locator("#make-token").check()
    page.locator("#link-form button[type=submit]").click()
    expect(page.locator("#token-value")).to_have_value(re.compile("^cr_"))
    check_page(page, "account-link-done", lang)


def test_oversight_says_an_empty_chart_in_words_and_exports_the_figures(page, rt, people):
    set_language(rt, people, "nb")
    sign_in(page, people["representative"].login, PASSWORD)
    page.goto("/oversight")
    settle(page)
    # When every count is under 5 (as in a fresh database) the chart has only hatched stubs,
    # and the words say so; once earlier tests made more, the note is gone.
    with rt.db.session() as session:
        weeks = oversight.weekly_summary(session)["weeks"]
    shown = any(value for week in weeks for key, value in week.items() if key != "week_start")
    note = page.locator("#chart-empty")
    if shown:
        expect(note).to_be_hidden()
    else:
        expect(note).to_be_visible()
        expect(note).to_contain_text("Ingen tall nådde 5")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Last ned tallene (CSV)").click()
    download = caught.value
    assert download.suggested_filename == "oversight-figures.csv"
    lines = Path(download.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith('"Uke fra","Nye delinger"')
    assert len(lines) == 13  # twelve weeks and the header
    assert all(re.fullmatch(r'"\d{4}-\d\d-\d\d"(,"(< 5|\d+)"){7}', line) for line in lines[1:])
    page.emulate_media(media="print")
    assert not page.locator(".topbar").is_visible()
    assert not page.get_by_role("button", name="Skriv ut").is_visible()
    expect(page.locator("table.figures")).to_be_visible()
    screenshot(page, "uic-oversight-print-nb")


VIDEO = "document.getElementById('video')"


def focused(page) -> str:
    return page.evaluate(
        "document.activeElement ? document.activeElement.id || document.activeElement.tagName : ''"
    )


# What the player page is in when "?" opened nothing: whether the share ended under it (the
# ended notice and why), where focus was, and whether the dialog is open after all.
PLAYER_STATE = """() => {
  const notice = document.getElementById("ended-notice");
  const active = document.activeElement;
  return {
    focused: active ? active.id || active.tagName : null,
    ended: notice ? !notice.hidden : null,
    ended_text: notice && !notice.hidden ? notice.innerText.trim() : "",
    player_hidden: document.getElementById("player").hidden,
    dialog_open: document.getElementById("shortcuts-dialog").open,
  };
}"""


def press_for_help(page, live_server, people) -> None:
    """? opens the help dialog; if it does not, say what the page and the server knew then
    (a flake once seen late in a long browser run: this tells its cause the next time)."""
    page.keyboard.press("?")
    try:
        expect(page.locator("#shortcuts-dialog")).to_be_visible()
    except AssertionError as error:
        answer = api(live_server, people["coach"], "GET", f"/api/v1/shares/{people['share']}")
        body = answer.json() if answer.ok else {"error": answer.text[:200]}
        server = {key: body.get(key) for key in ("status", "expires_at", "ended_at", "error")}
        raise AssertionError(
            f"? opened no help dialog. The page: {page.evaluate(PLAYER_STATE)}; the share as"
            f" the server has it: {answer.status_code} {server}, media: {'media' in body}"
        ) from error


def test_the_player_by_keyboard_alone(page, live_server, rt, people):
    set_language(rt, people, "en")
    sign_in(page, people["coach"].login, PASSWORD)
    page.goto(f"/coach/shares/{people['share']}")
    until(page, f"{VIDEO}.readyState >= 2", what="the video to load")
    keys = page.keyboard
    page.locator("h1").click()  # nothing focused: the page's own keys apply

    keys.press("k")
    until(page, f"!{VIDEO}.paused", what="K to play")
    keys.press("Space")
    until(page, f"{VIDEO}.paused", what="Space to pause")
    page.evaluate(f"{VIDEO}.currentTime = 1")
    keys.press("ArrowRight")
    until(page, f"Math.abs({VIDEO}.currentTime - 6) < 0.2", what="→ to step 5 s")
    keys.press("j")
    until(page, f"{VIDEO}.currentTime < 0.2", what="J to go back 10 s (to the start)")
    keys.press("l")
    until(page, f"Math.abs({VIDEO}.currentTime - 10) < 0.2", what="L to go forward 10 s")
    keys.press("ArrowLeft")
    until(page, f"Math.abs({VIDEO}.currentTime - 5) < 0.2", what="← to step back 5 s")
    bar = page.locator("#timeline")
    expect(bar).to_have_attribute("aria-valuenow", "5.0")
    expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^0:05 of 0:1\d$"))
    keys.press(">")
    until(page, f"{VIDEO}.playbackRate === 1.25", what="> to speed up")
    expect(page.locator("#speed")).to_have_value("1.25")
    keys.press("<")
    keys.press("<")
    until(page, f"{VIDEO}.playbackRate === 0.75", what="< to slow down")
    keys.press("m")
    until(page, f"{VIDEO}.muted", what="M to mute")
    expect(page.locator("#mute")).to_have_attribute("aria-label", "Unmute")

    # C: a comment at this moment; the keys type into the box, not into the player.
    keys.press("c")
    assert focused(page) == "comment-body"
    expect(page.locator("#comment-at")).to_have_text("at 0:05")
    keys.type("Good pace. Check the tone here")
    until(page, f"{VIDEO}.playbackRate === 0.75", what="typing leaves the speed alone")
    keys.press("Control+Enter")
    expect(page.locator("#comment-list .comment")).to_have_count(2)
    # The comments are a captions track too (read out by the live region while playing).
    cues = page.evaluate(
        f"Array.from({VIDEO}.textTracks).filter((t) => t.kind === 'captions')"
        ".map((t) => Array.from(t.cues, (c) => [c.startTime, c.text]))"
    )
    assert [start for start, _ in cues[0]] == [2.0, 5.0]
    assert "Good pace. Check the tone here" in cues[0][1][1]

    # ?: the help dialog; focus inside it, Tab cannot leave it, Escape closes it, focus returns.
    keys.press("Shift+Tab")  # out of the box, onto the time stamp
    assert focused(page) == "comment-at"
    press_for_help(page, live_server, people)
    dialog = page.locator("#shortcuts-dialog")
    expect(dialog).to_contain_text("Comment at this moment")
    assert focused(page) == "shortcuts-close"
    for _ in range(3):
        keys.press("Tab")
        assert page.evaluate(
            "!document.activeElement || document.activeElement === document.body"
            " || !!document.activeElement.closest('#shortcuts-dialog')"
        ), "focus left the dialog"
    keys.press("k")  # the player's keys rest while the dialog is open
    page.wait_for_timeout(200)
    assert page.evaluate(f"{VIDEO}.paused")
    assert_accessible(page)
    screenshot(page, "uic-player-shortcuts-en")
    keys.press("Escape")
    expect(dialog).to_be_hidden()
    assert focused(page) == "comment-at"
    # The "?" button opens it too, by keyboard.
    page.locator("#shortcuts-open").focus()
    keys.press("Enter")
    expect(dialog).to_be_visible()
    keys.press("Escape")
    assert focused(page) == "shortcuts-open"
