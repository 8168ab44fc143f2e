"""Small things of issue 12 (finding 9).

- ``POST /api/v1/receipts/status``: a receipt verifies offline until its end even after it was
  withdrawn; its holder asks the issuer, sending the receipt itself. Nothing is told to anyone
  without a receipt this deployment signed (a tampered, re-spelled or foreign one, a
  certificate, an id).
- ``consent-replay receipts verify --online`` asks that question.
- The embedded default's database and object files are 0600, their folders 0700.
"""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import pytest
import requests

import crypto
from app.db import Database
from app.storage.local import LocalStore
from tests.app.test_cli import run_cli
from tests.conftest import create_person
from tests.media_helpers import error_code, opt_in, upload_recording

STATUS = "/api/v1/receipts/status"


@pytest.fixture(scope="module")
def client(stack_app):
    return stack_app.test_client()


@pytest.fixture(scope="module")
def two(client, rt, samples):
    """Two shares of one draft: one that stays, one revoked."""
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    recording = upload_recording(client, owner, {"audio": samples.mono_wav})
    live = opt_in(client, owner, recording["id"], [coach])
    ended = opt_in(client, owner, recording["id"], [coach])
    revoke = client.post(f"/api/v1/shares/{ended['id']}/revoke", headers=owner.headers)
    assert revoke.status_code == 200
    return {"owner": owner, "coach": coach, "live": live, "ended": ended, "revoke": revoke}


def ask(client, receipt, headers=None):
    return client.post(STATUS, json={"receipt": receipt}, headers=headers or {})


def test_the_holder_of_a_receipt_learns_its_current_status(client, two):
    live = ask(client, two["live"]["receipt"])
    assert live.status_code == 200, live.get_json()
    assert live.get_json()["status"] == "active"
    assert live.get_json()["share_id"] == two["live"]["id"]
    ended = ask(client, two["ended"]["receipt"]).get_json()
    assert ended["status"] == "revoked" and ended["ended_at"]
    # The offline check alone still says "valid": that is what --online is for.
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert crypto.verify(
        two["ended"]["receipt"],
        jwks,
        typ=crypto.RECEIPT_TYP,
        required=[c for c in crypto.RECEIPT_CLAIMS if c != "trim"],
    )


@pytest.mark.parametrize("role", ["anonymous", "employee", "coach", "admin", "representative"])
def test_without_the_receipt_nobody_learns_anything(client, rt, two, role):
    headers = {} if role == "anonymous" else create_person(rt, role).headers
    receipt = two["ended"]["receipt"]
    head, payload, signature = receipt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims, "jti": two["live"]["id"]}).encode())
        .rstrip(b"=")
        .decode()
    )
    other = crypto.FileKeyring(Path(rt.settings.instance_dir) / f"other-{uuid.uuid4().hex}.json")
    foreign = crypto.sign(other, claims, typ=crypto.RECEIPT_TYP)
    certificate = two["revoke"].get_json()["certificate"]
    for guess in (
        two["ended"]["id"],  # an id is not a receipt
        f"{head}.{forged_payload}.{signature}",  # another share's id, same signature
        f"{head}.{payload}.{signature}==",  # padded
        foreign,  # signed by someone else's key
        certificate,  # a deletion certificate is not a receipt
        "",
    ):
        response = ask(client, guess, headers)
        assert response.status_code == 400, (guess[:40], response.status_code)
        body = response.get_data(as_text=True)
        assert "revoked" not in body and two["ended"]["id"] not in body
    # A coach or anyone else holding the real receipt would be told; that is the point.
    assert ask(client, receipt, headers).get_json()["status"] == "revoked"


def test_the_cli_checks_online(two, live_server, stack_env, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(requests.get(f"{live_server.url}/.well-known/jwks.json", timeout=30).text)
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    common = ["receipts", "verify", "--jwks", str(jwks)]
    offline = run_cli(env, *common, two["ended"]["receipt"])
    assert offline.returncode == 0 and "valid consent receipt" in offline.stdout
    live = run_cli(env, *common, "--online", "--server", live_server.url, two["live"]["receipt"])
    assert live.returncode == 0, live.stderr
    assert "online: consent is active" in live.stdout
    ended = run_cli(env, *common, "--online", "--server", live_server.url, two["ended"]["receipt"])
    assert ended.returncode != 0
    assert "this consent has ended: revoked" in ended.stderr and "Traceback" not in ended.stderr


# --- file modes ------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_database_and_objects_are_private(tmp_path):
    database = tmp_path / "instance" / "db" / "consent-replay.db"
    db = Database(f"sqlite:///{database}")
    db.ping()
    db.dispose()
    assert mode(database) == 0o600
    store = LocalStore(tmp_path / "objects")
    store.put_stream(f"shares/{uuid.uuid4()}/{uuid.uuid4()}", [b"ciphertext"])
    (name,) = list(store.list(""))
    path = tmp_path / "objects" / name
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert mode(tmp_path / "objects") == 0o700


def test_a_fresh_instance_migrated_by_the_cli_is_private(tmp_path):
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    assert run_cli(env, "migrate").returncode == 0
    assert mode(tmp_path / "instance" / "consent-replay.db") == 0o600
    assert mode(tmp_path / "instance") == 0o700


def test_error_is_the_documented_shape(client):
    assert error_code(ask(client, "not a jwt"), 400) == "invalid_receipt"
