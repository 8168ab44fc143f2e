"""The coach's pages, server side: who sees which share, 404s, CSP, and escaping."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from app.factory import CONTENT_SECURITY_POLICY
from app.models import Share, ShareStatus, utcnow
from app.pages.coach import NOT_FOUND_MESSAGE, clock, ends_in
from tests.conftest import create_person
from tests.media_helpers import opt_in, upload_recording

PASSWORD = "coach pages test password"
XSS = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(2)>'
_addresses = itertools.count(10)


# --- helpers ----------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script> element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def browser_client(stack_app):
    """A test client with its own address (sign-in is rate-limited per address)."""
    client = stack_app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"127.1.{next(_addresses) % 250}.9"
    return client


def signed_in(stack_app, person):
    client = browser_client(stack_app)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login", data={"login": person.login, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def html_of(response) -> str:
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def force_ready(rt, share_id: str) -> None:
    """Stand in for the worker: these tests are about pages, not the media pipeline."""
    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share_id))
        row.status = ShareStatus.READY
        row.progress = 100
        row.duration_s = 12.0
        row.ready_at = utcnow()


# --- the world these tests look at ------------------------------------------------------------


@pytest.fixture(scope="module")
def world(stack_app, rt, samples):
    """One employee's recording shared three ways: ready (coach A), processing (coach B), and
    ready-then-withdrawn (coach A). Titles, purposes, names and comments carry XSS probes."""
    with pytest.MonkeyPatch.context() as patch:
        # No worker here: keep jobs off the (possibly shared) broker.
        patch.setattr(rt.jobs, "send", lambda *args: None)
        client = stack_app.test_client()
        employee = create_person(rt, "employee", name=f"Eve {XSS_ATTR}", password=PASSWORD)
        other_employee = create_person(rt, "employee", password=PASSWORD)
        coach_a = create_person(rt, "coach", name="Ada Coach", password=PASSWORD)
        coach_b = create_person(rt, "coach", name="Bo Coach", password=PASSWORD)
        coach_c = create_person(rt, "coach", name="Cy Coach", password=PASSWORD)
        coach_d = create_person(rt, "coach", name="Di Coach", password=PASSWORD)
        admin = create_person(rt, "admin", password=PASSWORD)
        files = {"screen": samples.screen_webm, "audio": samples.mono_wav}
        recording = upload_recording(client, employee, files, title=f"Invoice call {XSS}")["id"]

        def share(coach, purpose, **extra):
            return opt_in(
                client, employee, recording, [coach], purpose=purpose, expires_in_days=3, **extra
            )

        ready = share(coach_a, f"Opening {XSS}", note=f"Hi {XSS}")
        force_ready(rt, ready["id"])
        comment = client.post(
            f"/api/v1/shares/{ready['id']}/comments",
            json={"at_s": 3.5, "body": f"Nice {XSS} {XSS_ATTR}"},
            headers=coach_a.headers,
        )
        assert comment.status_code == 201, comment.get_json()
        processing = share(coach_b, "Tone of voice")
        withdrawn = share(coach_a, "Closing the call")
        force_ready(rt, withdrawn["id"])
        revoke = client.post(f"/api/v1/shares/{withdrawn['id']}/revoke", headers=employee.headers)
        assert revoke.status_code == 200, revoke.get_json()
        only_ended = share(coach_d, "Greeting")
        revoke = client.post(f"/api/v1/shares/{only_ended['id']}/revoke", headers=employee.headers)
        assert revoke.status_code == 200, revoke.get_json()
        yield {
            "employee": employee,
            "other_employee": other_employee,
            "coach_a": coach_a,
            "coach_b": coach_b,
            "coach_c": coach_c,
            "coach_d": coach_d,
            "admin": admin,
            "ready": ready["id"],
            "processing": processing["id"],
            "withdrawn": withdrawn["id"],
            "only_ended": only_ended["id"],
        }


# --- Shared with me ---------------------------------------------------------------------------


def test_shared_with_me_lists_only_the_coachs_own_shares(stack_app, world):
    html = html_of(signed_in(stack_app, world["coach_a"]).get("/coach"))
    assert world["ready"] in html
    assert world["processing"] not in html
    assert f'href="/coach/shares/{world["ready"]}"' in html
    assert "Invoice call" in html and "Opening" in html and "Eve" in html
    assert "ends in 3 days" in html or "ends in 2 days" in html

    html_b = html_of(signed_in(stack_app, world["coach_b"]).get("/coach"))
    assert world["processing"] in html_b
    assert world["ready"] not in html_b and world["withdrawn"] not in html_b
    assert "Tone of voice" in html_b and "Preparing" in html_b
    assert f"/coach/shares/{world['processing']}" not in html_b  # no Play link until ready
    assert 'data-poll="true"' in html_b


def test_a_coach_with_nothing_shared_sees_the_empty_state(stack_app, world):
    html = html_of(signed_in(stack_app, world["coach_c"]).get("/coach"))
    assert "Nothing has been shared with you yet" in html
    for key in ("ready", "processing", "withdrawn"):
        assert world[key] not in html


def test_a_coach_with_only_ended_shares_is_told_nothing_is_shared_now(stack_app, world):
    # "Nothing has been shared with you yet" above a list of ended shares contradicts the list.
    client = signed_in(stack_app, world["coach_d"])
    html = html_of(client.get("/coach"))
    assert world["only_ended"] in html.split('id="ended-heading"', 1)[1]
    assert "Nothing has been shared with you yet" not in html
    assert "Nothing is shared with you now." in html
    html_nb = html_of(client.get("/coach", headers={"Accept-Language": "nb"}))
    assert "Ingenting er delt med deg nå." in html_nb
    assert "Ingenting er delt med deg ennå." not in html_nb


def test_a_withdrawn_share_is_listed_as_ended_without_a_link(stack_app, world):
    html = html_of(signed_in(stack_app, world["coach_a"]).get("/coach"))
    ended = html.split('id="ended-heading"', 1)
    assert len(ended) == 2, "no Ended section"
    # That it ended, and nothing else: not who, what for, nor that it was withdrawn.
    assert world["withdrawn"] in ended[1] and "Ended" in ended[1]
    assert "Withdrawn" not in ended[1] and "Closing the call" not in html
    assert f"/coach/shares/{world['withdrawn']}" not in html
    assert world["ready"] not in ended[1]


def test_shared_with_me_is_for_coaches_only(stack_app, world):
    signed_out = browser_client(stack_app).get("/coach")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    employee = signed_in(stack_app, world["employee"]).get(
        "/coach", headers={"Accept": "text/html"}
    )
    assert employee.status_code == 403


# --- playback ---------------------------------------------------------------------------------


def test_playback_page_for_the_grantee(stack_app, world):
    response = signed_in(stack_app, world["coach_a"]).get(f"/coach/shares/{world['ready']}")
    assert response.status_code == 200
    html = html_of(response)
    tags = parse(html)
    player = next(attrs for tag, attrs in tags.tags if attrs.get("id") == "player")
    assert player["data-share-id"] == world["ready"]
    assert player["data-video-url"] == f"/media/shares/{world['ready']}/video"
    assert player["data-views-url"] == f"/api/v1/shares/{world['ready']}/views"
    video = next(attrs for tag, attrs in tags.tags if tag == "video")
    assert "controls" not in video and "src" not in video
    assert "nodownload" in video["controlslist"] and "disablepictureinpicture" in video
    watermark = html.split('id="watermark"', 1)[1].split("</div>", 1)[0]
    assert "Ada Coach" in watermark
    assert 'data-at="3.5"' in html and "0:03" in html  # the comment, at its time
    assert "Hi &lt;script&gt;" in html  # the employee's note to the coach
    assert "download" not in html.replace("nodownload", "")


def test_playback_page_is_404_for_anyone_else_and_for_garbage(stack_app, world):
    other = signed_in(stack_app, world["coach_b"])
    foreign = other.get(f"/coach/shares/{world['ready']}")
    missing_id = str(uuid.uuid4())
    missing = other.get(f"/coach/shares/{missing_id}")
    garbage = other.get("/coach/shares/not-a-uuid'%3E%3Cscript%3E")
    for response in (foreign, missing, garbage):
        assert response.status_code == 404
        assert NOT_FOUND_MESSAGE in html_of(response)
    # A foreign id and a missing one answer the same page, word for word (but for the path
    # the person asked for, which the language switch returns to).
    assert html_of(foreign).replace(world["ready"], "ID") == html_of(missing).replace(
        missing_id, "ID"
    )
    assert "<script>" not in garbage.get_data(as_text=True)
    stranger = signed_in(stack_app, world["other_employee"])
    assert stranger.get(f"/coach/shares/{world['ready']}").status_code == 404


def test_playback_page_redirects_to_sign_in_when_signed_out(stack_app, world):
    response = browser_client(stack_app).get(f"/coach/shares/{world['ready']}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert world["ready"] in response.headers["Location"]


def test_the_owner_may_open_the_playback_page_but_an_admin_may_not(stack_app, world):
    owner = signed_in(stack_app, world["employee"]).get(f"/coach/shares/{world['ready']}")
    assert owner.status_code == 200 and 'id="player"' in html_of(owner)
    admin = signed_in(stack_app, world["admin"]).get(
        f"/coach/shares/{world['ready']}", headers={"Accept": "text/html"}
    )
    assert admin.status_code == 403


def test_playback_of_a_withdrawn_share_says_only_that_it_ended(stack_app, world):
    response = signed_in(stack_app, world["coach_a"]).get(f"/coach/shares/{world['withdrawn']}")
    assert response.status_code == 410
    html = html_of(response)
    assert 'id="player"' not in html and "/media/" not in html
    assert "This share has ended" in html and "withdrew" not in html
    assert "Closing the call" not in html and "no-store" in response.headers["Cache-Control"]


def test_the_owner_sees_their_withdrawn_share_as_withdrawn(stack_app, world):
    html = html_of(
        signed_in(stack_app, world["employee"]).get(f"/coach/shares/{world['withdrawn']}")
    )
    assert 'id="player"' not in html and "/media/" not in html
    assert "You withdrew consent for this recording. It has been deleted." in html
    notice = next(a for t, a in parse(html).tags if a.get("id") == "ended-notice")
    assert "hidden" not in notice


def test_playback_of_a_share_in_preparation_waits_for_it(stack_app, world):
    html = html_of(
        signed_in(stack_app, world["coach_b"]).get(f"/coach/shares/{world['processing']}")
    )
    assert 'id="preparing"' in html and 'id="player"' not in html and "/media/" not in html


# --- CSP and escaping -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/coach", "/coach/shares/{ready}"])
def test_pages_have_no_inline_script_or_style_and_send_the_csp(stack_app, world, path):
    response = signed_in(stack_app, world["coach_a"]).get(path.format(**world))
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "no-store" in response.headers["Cache-Control"]
    tags = parse(html_of(response))
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert scripts and all(attrs.get("src", "").startswith("/static/") for attrs in scripts)
    assert tags.script_text == []
    assert not [tag for tag, _ in tags.tags if tag == "style"]
    for tag, attrs in tags.tags:
        assert "style" not in attrs, f"inline style on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"inline handler {handlers} on <{tag}>"
        for name in ("href", "src", "action"):
            assert not (attrs.get(name) or "").lower().startswith("javascript:")


def test_xss_probes_are_escaped_everywhere(stack_app, world):
    client = signed_in(stack_app, world["coach_a"])
    for path in ("/coach", f"/coach/shares/{world['ready']}"):
        html = html_of(client.get(path))
        assert XSS not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "onerror=alert(2)&gt;" in html  # the name, escaped as text and in attributes
        tags = parse(html)
        assert not [a for t, a in tags.tags if t == "img"]
        assert all(a.get("src", "").startswith("/static/") for t, a in tags.tags if t == "script")
    playback = parse(html_of(client.get(f"/coach/shares/{world['ready']}")))
    player = next(attrs for tag, attrs in playback.tags if attrs.get("id") == "player")
    assert player["data-employee-name"] == f"Eve {XSS_ATTR}"  # intact data, not markup


def test_the_api_gives_the_comment_back_verbatim_for_the_player_to_set_as_text(stack_app, world):
    comments = stack_app.test_client().get(
        f"/api/v1/shares/{world['ready']}/comments", headers=world["coach_a"].headers
    )
    assert comments.get_json()["comments"][0]["body"] == f"Nice {XSS} {XSS_ATTR}"


# --- the small helpers ------------------------------------------------------------------------


def test_ends_in_and_clock():
    now = utcnow()
    assert ends_in(now + timedelta(days=3, minutes=5), now) == "ends in 3 days"
    assert ends_in(now + timedelta(hours=5), now) == "ends in 5 hours"
    assert ends_in(now + timedelta(days=2, seconds=-30), now) == "ends in 2 days"
    assert ends_in(now + timedelta(minutes=1), now) == "ends in 1 minute"
    assert ends_in(now - timedelta(days=2), now) == "ended 2 days ago"
    assert (clock(0), clock(3.9), clock(75), clock(3723)) == ("0:00", "0:03", "1:15", "1:02:03")
