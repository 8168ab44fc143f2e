"""The employee in a real browser: opt in with trim, get the receipt, see it ready, revoke."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
import requests
from playwright.sync_api import expect

import crypto
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import wait_for

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"
XSS = "<script>alert(1)</script>"


def upload(live_server, person, samples, **fields) -> dict:
    files = {
        "screen": ("screen.webm", io.BytesIO(samples.screen_webm.read_bytes()), "video/webm"),
        "audio": ("call.wav", io.BytesIO(samples.call_wav.read_bytes()), "audio/wav"),
    }
    data = {k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}
    response = requests.post(
        f"{live_server.url}/api/v1/recordings",
        files=files,
        data=data,
        headers=person.headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def verify(live_server, token: str, typ: str, required: list[str]) -> dict:
    jwks = requests.get(f"{live_server.url}/.well-known/jwks.json", timeout=10).json()
    return crypto.verify(token, jwks, typ=typ, required=required)


def test_opt_in_receipt_progress_and_revoke(page, live_server, make_person, samples, tmp_path):
    employee = make_person("employee", password=PASSWORD)
    coach = make_person("coach", name=f"Coach Maren {uuid.uuid4().hex[:4]}")
    title = f"Invoice call {uuid.uuid4().hex[:6]}"
    probe = upload(live_server, employee, samples, title=XSS)
    recording = upload(live_server, employee, samples, title=title, customer_informed=True)
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))

    sign_in(page, employee.login, PASSWORD)
    assert page.url.endswith("/recordings")
    card = page.locator(f"#rec-{recording['id']}")
    expect(card.locator(".recording-title")).to_have_text(title)
    expect(card).to_contain_text("Deleted automatically in 3 days unless shared")
    # The XSS probe title is plain text, and nothing ran.
    expect(page.locator(f"#rec-{probe['id']} .recording-title")).to_have_text(XSS)
    expect(card).to_have_attribute("data-probe-status", "ok", timeout=30_000)
    expect(card.locator("[data-field=duration]")).to_have_text("0:12")
    screenshot(page, "employee-recordings")

    card.get_by_role("button", name="Share for coaching").click()
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#share-recording-title")).to_have_text(title)
    expect(page.locator("#consent-version")).to_contain_text("version")
    policy = requests.get(f"{live_server.url}/api/v1/policy", headers=employee.headers, timeout=10)
    policy = policy.json()
    expect(page.locator("#consent-text")).to_have_text(policy["consent_text"])
    expect(page.locator("#share-days")).to_have_attribute("max", str(policy["max_share_days"]))
    # The customer was informed, so the choice is offered — and off by default.
    expect(page.locator("#share-customer")).to_be_visible()
    expect(page.locator("#share-customer")).not_to_be_checked()

    # Trim with the handles (the player seeks along) and the "current time" button.
    expect(page.locator("#trim-start")).to_be_enabled()
    expect(page.locator("#trim-end")).to_have_attribute("max", "12.0")
    page.locator("#trim-end").fill("9")
    page.locator("#trim-start").fill("3")
    wait_for(
        lambda: abs(page.evaluate("document.getElementById('share-video').currentTime") - 3) < 0.3,
        10,
        "the player to follow the start handle",
    )
    page.evaluate("document.getElementById('share-video').currentTime = 2")
    wait_for(
        lambda: page.evaluate("document.getElementById('share-video').currentTime") == 2,
        10,
        "the player to seek",
    )
    page.get_by_role("button", name="Set start to current time").click()
    expect(page.locator("#trim-start-out")).to_have_text("0:02")
    expect(page.locator("#trim-end-out")).to_have_text("0:09")
    expect(page.locator("#trim-length")).to_contain_text("0:02 – 0:09")

    # Too many days is refused in the page, before any request.
    page.locator("#share-days").fill(str(policy["max_share_days"] + 1))
    page.get_by_label(coach.name).check()
    page.locator("#share-purpose").fill("Feedback on my call opening")
    page.get_by_role("button", name="Confirm and share").click()
    expect(page.locator("#share-error")).to_contain_text(f"1 to {policy['max_share_days']} days")
    page.locator("#share-days").fill("5")
    screenshot(page, "employee-share-dialog")
    page.get_by_role("button", name="Confirm and share").click()

    expect(page.locator("#share-done")).to_be_visible()
    # Named with the login, so a look-alike account could not pass as this coach.
    expect(page.locator("#done-coaches")).to_have_text(f"{coach.name} ({coach.login})")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download receipt (.jwt)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("receipt-")
    assert download.suggested_filename.endswith(".jwt")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    token = path.read_text().strip()
    claims = verify(live_server, token, crypto.RECEIPT_TYP, crypto.RECEIPT_CLAIMS)
    share_id = claims["jti"]
    assert download.suggested_filename == f"receipt-{share_id}.jwt"
    assert claims["sub"] == str(employee.id)
    assert claims["recording"] == recording["id"]
    assert claims["grantees"] == [str(coach.id)]
    assert claims["purpose"] == "Feedback on my call opening"
    assert claims["trim"] == {"start_s": 2.0, "end_s": 9.0}
    assert claims["channels"]["customer_audio"] is False
    assert claims["policy"]["version"] == policy["version"]
    assert 4.9 * 86400 < claims["exp"] - claims["iat"] <= 5 * 86400
    with page.expect_download() as readable_info:
        page.get_by_role("button", name="Readable copy (.json)").click()
    assert readable_info.value.suggested_filename == f"receipt-{share_id}.json"
    screenshot(page, "employee-share-receipt")

    # My shares: live progress until ready, without reloading.
    page.get_by_role("link", name="Go to My shares").click()
    share_card = page.locator(f"#share-{share_id}")
    expect(share_card).to_be_visible()
    if share_card.get_attribute("data-status") == "processing":
        expect(share_card.get_by_role("progressbar")).to_be_visible()
        screenshot(page, "employee-shares-processing")
    expect(share_card.locator("[data-field=badge]")).to_have_text("Ready", timeout=90_000)
    expect(share_card).to_contain_text(f"Ready — {coach.name} can watch it.")
    expect(share_card).to_contain_text("0:02 – 0:09")
    share_card.get_by_text("Access log").click()
    expect(share_card.locator("details[data-panel=access]")).to_contain_text(
        f"{employee.name}: Shared it"
    )
    share_card.locator("details[data-panel=comments] summary").click()
    share_card.get_by_label("Comment", exact=True).fill("Look at 0:05, please.")
    share_card.get_by_role("button", name="Comment", exact=True).click()
    expect(share_card.locator(".comment .body")).to_have_text("Look at 0:05, please.")
    screenshot(page, "employee-shares-ready")

    # Revoke: one click and one confirmation.
    share_card.get_by_role("button", name="Revoke").click()
    confirm = page.locator("dialog.confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(coach.name)
    confirm.get_by_role("button", name="Revoke now").click()
    expect(share_card).to_contain_text("Withdrawn — key destroyed")
    expect(share_card.locator("[data-field=badge]")).to_have_text("Withdrawn")
    expect(share_card.get_by_role("button", name="Revoke")).to_have_count(0)
    api = requests.get(
        f"{live_server.url}/api/v1/shares/{share_id}", headers=employee.headers, timeout=10
    ).json()
    assert api["status"] == "revoked"
    with page.expect_download() as certificate_info:
        share_card.get_by_role("button", name="Download deletion certificate").click()
    certificate_path = tmp_path / "certificate.jwt"
    certificate_info.value.save_as(certificate_path)
    assert certificate_info.value.suggested_filename == f"certificate-{share_id}.jwt"
    certificate = verify(
        live_server,
        certificate_path.read_text().strip(),
        crypto.CERTIFICATE_TYP,
        crypto.CERTIFICATE_CLAIMS,
    )
    assert share_id in (certificate.get("subject_id"), certificate.get("jti"))
    screenshot(page, "employee-shares-revoked")

    # My data: the export and (after deleting the probe) its certificate.
    page.goto("/recordings")
    page.locator(f"#rec-{probe['id']}").get_by_role("button", name="Delete").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Delete for good").click()
    expect(page.locator(f"#rec-{probe['id']}")).to_have_count(0)
    page.goto("/my-data")
    expect(page.locator(f"[data-recording-id='{probe['id']}']")).to_contain_text(
        "Download certificate"
    )
    screenshot(page, "employee-my-data")
    with page.expect_download() as export_info:
        page.get_by_role("link", name="Download my data (ZIP)").click()
    assert export_info.value.suggested_filename == "consent-replay-export.zip"
    export_path = tmp_path / "export.zip"
    export_info.value.save_as(export_path)
    with zipfile.ZipFile(export_path) as archive:
        names = archive.namelist()
    # Revoked above: the receipt was shredded with the share; the certificate remains.
    assert f"shares/{share_id}/certificate.jwt" in names
    assert f"shares/{share_id}/receipt.jwt" not in names
    assert alerts == []
