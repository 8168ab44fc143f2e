"""The consent text per language (SPEC §14): the admin keeps both, a share is made in the
language whose text was shown, never in one without a text, and the receipt says which."""

from __future__ import annotations

import pytest

from app.models import Policy
from tests.app.test_shares_api import receipt_claims

NB = {"Accept-Language": "nb"}
NB_TEXT = "Du velger å dele dette ene opptaket til veiledning. Du kan trekke det tilbake."


@pytest.fixture
def admin(make_person):
    return make_person("admin")


@pytest.fixture
def restore_policy(client, admin):
    """Each test here changes the policy; the next tests get the texts back as they were."""
    before = client.get("/api/v1/admin/policy", headers=admin.headers).get_json()
    yield
    response = client.put(
        "/api/v1/admin/policy",
        json={"consent_texts": before["consent_texts"]},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.get_json()


def share_in(client, owner, recording, coach, headers=None, **extra):
    return client.post(
        f"/api/v1/recordings/{recording['id']}/shares",
        json={
            "coach_ids": [str(coach.id)],
            "purpose": "Opening the call",
            "expires_in_days": 3,
            **extra,
        },
        headers={**owner.headers, **(headers or {})},
    )


def test_the_policy_has_both_texts(client, rt, make_person):
    # The built-in first version (other tests may have changed the current one since).
    with rt.db.session() as session:
        first = session.get(Policy, 1)
        assert first.consent_text.startswith("You are choosing to share")
        assert first.consent_text_nb.startswith("Du velger å dele dette ene opptaket")
    employee = make_person("employee")
    texts = client.get("/api/v1/policy", headers=employee.headers).get_json()["consent_texts"]
    assert set(texts) == {"en", "nb"} and all(texts.values())


def test_the_receipt_records_the_language_shown(client, make_person, make_recording):
    employee, coach = make_person("employee"), make_person("coach")
    recording = make_recording(employee)
    in_nb = share_in(client, employee, recording, coach, headers=NB)
    assert in_nb.status_code == 202, in_nb.get_json()
    claims = receipt_claims(client, in_nb.get_json()["receipt"])
    assert claims["policy"]["language"] == "nb" and claims["policy"]["id"] == "consent-text"
    # Named explicitly, the body's language wins over the request's.
    in_en = share_in(client, employee, recording, coach, headers=NB, language="en")
    assert receipt_claims(client, in_en.get_json()["receipt"])["policy"]["language"] == "en"


@pytest.mark.usefixtures("restore_policy")
def test_no_share_in_a_language_without_its_text(client, admin, make_person, make_recording):
    removed = client.put(
        "/api/v1/admin/policy", json={"consent_texts": {"nb": None}}, headers=admin.headers
    )
    assert removed.status_code == 200 and removed.get_json()["consent_texts"]["nb"] is None
    employee, coach = make_person("employee"), make_person("coach")
    recording = make_recording(employee)
    refused = share_in(client, employee, recording, coach, headers=NB)
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "consent_text_missing"
    assert "samtykketekst" in error["message"]  # told in the reader's own language
    english = share_in(client, employee, recording, coach, language="en")
    assert english.status_code == 202
    unknown = share_in(client, employee, recording, coach, language="sv")
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["code"] == "unsupported_language"


@pytest.mark.usefixtures("restore_policy")
def test_the_admin_edits_both_texts(client, admin, make_person):
    saved = client.put(
        "/api/v1/admin/policy",
        json={"consent_texts": {"nb": NB_TEXT}, "consent_text": "A new English consent text."},
        headers=admin.headers,
    )
    assert saved.status_code == 200, saved.get_json()
    body = saved.get_json()
    assert body["consent_texts"] == {"en": "A new English consent text.", "nb": NB_TEXT}
    assert body["consent_text"] == "A new English consent text."
    for texts, code in (
        ({"nb": "for kort"}, "invalid_policy"),
        ({"sv": "Du väljer att dela den här inspelningen."}, "unsupported_language"),
        ({"en": None}, "invalid_policy"),  # the English text cannot be removed
    ):
        refused = client.put(
            "/api/v1/admin/policy", json={"consent_texts": texts}, headers=admin.headers
        )
        assert refused.status_code == 400, (texts, refused.get_json())
        assert refused.get_json()["error"]["code"] == code
    employee = make_person("employee")
    forbidden = client.put(
        "/api/v1/admin/policy", json={"consent_texts": {"nb": NB_TEXT}}, headers=employee.headers
    )
    assert forbidden.status_code == 403
