"""The readable consent receipt (issue 16): its owner reads and prints it while the share
lives; nobody else finds it; after the end it is gone with the share."""

from __future__ import annotations

from markupsafe import escape

from tests.app.browsing import signed_in_browser

NB = {"Accept-Language": "nb"}


def test_only_its_owner_reads_the_receipt_and_only_while_it_lives(
    stack_app, client, make_person, make_recording, make_share
):
    owner = make_person("employee", password="correct horse battery staple")
    other = make_person("employee", password="correct horse battery staple")
    coach = make_person("coach")
    policy = client.get("/api/v1/policy", headers=owner.headers).get_json()
    shown = policy["consent_texts"]["en"]  # whatever earlier tests made of the policy
    share = make_share(owner, make_recording(owner), coach, purpose="Opening the call")
    path = f"/shares/{share['id']}/receipt"

    web, token = signed_in_browser(stack_app, owner)
    page = web.get(path, headers={"Accept": "text/html", **NB})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Samtykkekvittering" in html and "Opening the call" in html and coach.name in html
    # The text as it was shown (the share was made in English), on a Norwegian page.
    assert str(escape(shown)) in html
    assert 'lang="en"' in html
    assert share["receipt"].split(".")[2][:20] in html  # the signed original, to download

    stranger, _ = signed_in_browser(stack_app, other)
    assert stranger.get(path, headers={"Accept": "text/html"}).status_code == 404
    assert stranger.get("/shares/not-a-uuid/receipt").status_code == 404

    revoked = web.post(f"/api/v1/shares/{share['id']}/revoke", headers={"X-CSRFToken": token})
    assert revoked.status_code == 200, revoked.get_json()
    gone = web.get(path, headers={"Accept": "text/html", **NB})
    assert gone.status_code == 410
    assert "slettebeviset" in gone.get_data(as_text=True).lower()
