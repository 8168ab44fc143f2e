"""The employee's server-rendered pages: what they show, what they never embed, and escaping."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.pages.employee import clock, in_words

XSS = "<script>alert(1)</script>"


def page(client, person, path: str) -> str:
    response = client.get(path, headers=person.headers)
    assert response.status_code == 200, (path, response.status_code)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def assert_no_inline_code(html: str) -> None:
    """Strict CSP: every script has a src, no style attributes or blocks, no on* handlers."""
    for tag in re.findall(r"<script\b[^>]*>", html, flags=re.I):
        assert "src=" in tag, tag
    assert not re.search(r"<style\b", html, flags=re.I)
    assert not re.search(r"\sstyle\s*=", html, flags=re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I)
    assert "javascript:" not in html.lower()


@pytest.fixture
def employee(make_person):
    return make_person("employee")


@pytest.fixture
def coach(make_person):
    return make_person("coach", name=f"Coach Ada {uuid.uuid4().hex[:4]}")


def test_in_words_and_clock():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert in_words(now + timedelta(hours=72), now) == "3 days"
    assert in_words(now + timedelta(hours=5), now) == "5 hours"
    assert in_words(now + timedelta(hours=1), now) == "1 hour"
    assert in_words(now + timedelta(minutes=30), now) == "30 minutes"
    assert in_words(now - timedelta(minutes=3), now) == "less than a minute"
    assert clock(None) == "–"
    assert clock(12.4) == "0:12"
    assert clock(3725) == "1:02:05"


def test_recordings_page_lists_drafts_with_preview_expiry_and_the_opt_in(
    client, employee, make_recording
):
    recording = make_recording(employee, title="Invoice call", customer_informed=True)
    html = page(client, employee, "/recordings")
    assert_no_inline_code(html)
    card = html[html.index(f'id="rec-{recording["id"]}"') :]
    assert "Invoice call" in card
    assert 'data-customer-informed="true"' in card
    assert f"/media/recordings/{recording['id']}/screen" in card
    assert f"/media/recordings/{recording['id']}/audio" in card
    assert "Deleted automatically in 3 days unless shared" in card
    assert "Share for coaching" in card and "Delete" in card
    # The share dialog: coach list, purpose, days bounded by the policy, trim, consent text.
    assert 'id="share-dialog"' in html
    assert re.search(r'id="share-days"[^>]*max="\d+"', html)
    assert 'id="trim-start"' in html and 'id="trim-end"' in html
    assert 'id="share-customer"' in html
    assert "employee-recordings.js" in html


def test_recordings_page_escapes_the_title_and_the_share_parameter(
    client, employee, make_recording
):
    make_recording(employee, title=XSS)
    html = page(client, employee, '/recordings?share="><script>alert(2)</script>')
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(2)" not in html
    assert_no_inline_code(html)


def test_empty_recordings_page_invites_a_recording(client, employee):
    html = page(client, employee, "/recordings")
    assert "No recordings yet" in html
    assert (
        'id="recordings-empty"' in html
        and "hidden" not in html.split('id="recordings-empty"')[0][-40:]
    )


def test_shares_page_shows_status_coach_and_no_tokens(
    client, employee, coach, make_recording, make_share
):
    recording = make_recording(employee, title="Billing question")
    made = make_share(
        employee, recording, coach, purpose="Call opening", trim={"start_s": 2, "end_s": 8}
    )
    html = page(client, employee, "/shares")
    assert_no_inline_code(html)
    card = html[html.index(f'id="share-{made["id"]}"') :]
    assert 'data-status="processing"' in card
    assert coach.name in card
    assert "Call opening" in card
    assert "0:02 – 0:08" in card
    assert "Left out" in card  # the customer's voice
    assert ">Revoke<" in card
    # Receipts and certificates come from the API on demand; the page never embeds them.
    assert made["receipt"] not in html
    # The recordings page now says it is kept while shared.
    assert "Kept while shared (1 active share)" in page(client, employee, "/recordings")


def test_revoked_share_is_listed_as_ended_without_revoke(
    client, employee, coach, make_recording, make_share
):
    made = make_share(employee, make_recording(employee), coach)
    revoked = client.post(f"/api/v1/shares/{made['id']}/revoke", headers=employee.headers)
    assert revoked.status_code == 200
    html = page(client, employee, "/shares")
    card = html[html.index(f'id="share-{made["id"]}"') :]
    card = card[: card.index("</article>")]
    assert "Withdrawn — key destroyed" in card
    assert ">Revoke<" not in card
    assert 'data-action="certificate"' in card
    assert ">Ended<" in html


def test_my_data_offers_the_export_and_certificates_of_deleted_recordings(
    client, employee, make_recording
):
    recording = make_recording(employee)
    deleted = client.delete(f"/api/v1/recordings/{recording['id']}", headers=employee.headers)
    assert deleted.status_code == 200
    html = page(client, employee, "/my-data")
    assert_no_inline_code(html)
    assert 'href="/api/v1/export"' in html
    row = html[html.index(f'data-recording-id="{recording["id"]}"') :]
    certificate = deleted.get_json()["certificate"]
    assert certificate and f'data-certificate="{certificate}"' in row
    assert "Download certificate" in row


def test_capture_page_has_the_recorder_and_no_inline_code(client, employee):
    html = page(client, employee, "/record")
    assert_no_inline_code(html)
    for marker in ('id="start"', 'id="stop"', 'id="indicator"', 'id="save"', 'id="discard"'):
        assert marker in html
    assert re.search(r'data-max-upload="\d+"', html)
    assert "capture.js" in html


def test_embed_example_page_and_script(client, employee):
    html = page(client, employee, "/embed/example")
    assert_no_inline_code(html)
    assert 'src="/static/embed/optin.js"' in html
    assert "data-consent-replay-optin" in html
    script = client.get("/static/embed/optin.js")
    assert script.status_code == 200
    assert "javascript" in script.mimetype
    body = script.get_data(as_text=True)
    assert "Authorization" in body and "/api/v1/recordings" in body
    assert "innerHTML" not in body


@pytest.mark.parametrize(
    "name",
    [
        "js/kit.js",
        "js/receipts.js",
        "js/employee-recordings.js",
        "js/employee-shares.js",
        "js/employee-mydata.js",
        "js/capture.js",
        "css/employee.css",
    ],
)
def test_static_assets_exist_and_never_inject_html(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert "innerHTML" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/recordings", "/record", "/shares", "/my-data", "/embed/example"]
)
def test_pages_need_an_employee(client, make_person, path):
    assert client.get(path).status_code == 302
    assert "/login" in client.get(path).headers["Location"]
    for role in ("coach", "admin", "representative"):
        assert client.get(path, headers=make_person(role).headers).status_code == 403
