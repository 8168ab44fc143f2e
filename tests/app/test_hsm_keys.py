"""The app with its KEKs in an HSM (CR_KEK_PROVIDER=pkcs11, a real SoftHSM2 token), on
PostgreSQL: uploads wrap their data keys in the token, and an admin's rotate-and-retire through
the API destroys the old KEK there, so a dump of the database taken before is useless."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

import crypto
from app.models import AuditEvent, DataKey, MediaObject, Recording
from app.services import keys
from tests.conftest import app_for, create_person, fresh_database, stack_environment


@pytest.fixture
def hsm_app(tmp_path, pg_server, hsm_token):
    with fresh_database(pg_server) as database_url:
        env = stack_environment(
            tmp_path / "instance",
            database_url=database_url,
            broker_url="filesystem://",
            s3=None,
            CR_KEK_PROVIDER="pkcs11",
            CR_PKCS11_MODULE=str(hsm_token.module),
            CR_PKCS11_TOKEN=hsm_token.label,
            CR_PKCS11_PIN_FILE=str(hsm_token.pin_file),
        )
        with app_for(env) as app:
            yield app


def test_rotate_and_retire_in_the_hsm_makes_an_old_dump_useless(hsm_app, samples):
    rt = hsm_app.extensions["consent_replay"]
    assert type(rt.kek).__name__ == "Pkcs11Kek"
    client = hsm_app.test_client()
    employee, admin = create_person(rt, "employee"), create_person(rt, "admin")
    audio = samples.call_wav.read_bytes()
    response = client.post(
        "/api/v1/recordings",
        data={"audio": (io.BytesIO(audio), "call.wav"), "title": "HSM call"},
        headers=employee.headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    recording_id = response.get_json()["id"]

    with rt.db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.id == recording_id))
        key_id = recording.key_id
        row = session.get(DataKey, key_id)
        dump = crypto.WrappedKey(row.kek_version, bytes(row.wrapped))  # a backup's copy
        owner_id = str(row.owner_id)
        obj = session.scalar(select(MediaObject).where(MediaObject.recording_id == recording_id))
        name, object_id, size = obj.name, str(obj.id), obj.stored_size
    assert dump.kek_version == 1

    status = client.get("/api/v1/admin/keys", headers=admin.headers).get_json()["versions"]
    assert [(v["version"], v["state"]) for v in status] == [(1, "active")]
    rotated = client.post("/api/v1/admin/keys/rotate", headers=admin.headers)
    assert rotated.status_code == 200 and rotated.get_json()["new_version"] == 2
    retired = client.post("/api/v1/admin/keys/retire", headers=admin.headers)
    assert retired.status_code == 200 and retired.get_json()["destroyed"] == [1]
    status = client.get("/api/v1/admin/keys", headers=admin.headers).get_json()["versions"]
    assert [(v["version"], v["state"]) for v in status] == [(1, "destroyed"), (2, "active")]
    with rt.db.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith("keys.")).order_by(AuditEvent.seq)
        ).all()
    assert [(e.action, e.actor_id, e.detail) for e in events] == [
        ("keys.rotated", admin.id, {"new_version": 2, "rewrapped": 1}),
        ("keys.retired", admin.id, {"destroyed": [1]}),
    ]

    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap(rt.kek, dump, key_id=str(key_id), owner_id=owner_id)
    rt.key_cache.evict(str(key_id))
    with rt.db.session() as session:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, key_id)
    stored = rt.store.read_range(name, 0, size)
    assert audio not in stored
    opened = b"".join(crypto.unseal(dek, stored, key_id=str(key_id), object_id=object_id))
    assert opened == audio
