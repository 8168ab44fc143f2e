"""The one lifecycle module: its transitions, and that nobody else writes a status column.

Also the follow-ups the lifecycle promises after a commit: a deleted recording's objects go
even when the store refused at first (a background job, and the reconciler as a backstop).
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import MediaObject, Recording, RecordingStatus, Share, ShareStatus
from app.services import lifecycle, shredding
from app.services.reconcile import reconcile
from app.storage import StorageUnavailable
from tests.conftest import ROOT
from tests.worker.test_pipeline import QuietApp, run_task, upload_ok

STATUS_COLUMNS = {"status", "probe_status", "suggestions_status"}
MODELS = {"Share", "Recording"}
LIFECYCLE = ROOT / "app" / "services" / "lifecycle.py"


def _status_writes(path: Path, root: Path = ROOT) -> list[str]:
    """Every place in a module that writes a status column: by attribute, by keyword (a
    constructor or ``update().values(status=…)``) or by a dict handed to ``values``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root)
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        found += [
            f"{where}:{node.lineno} .{t.attr} ="
            for t in targets
            if isinstance(t, ast.Attribute) and t.attr in STATUS_COLUMNS
        ]
        if isinstance(node, ast.Call):
            found += [f"{where}:{node.lineno} {name}" for name in _call_writes(node)]
    return found


def _call_writes(call: ast.Call) -> list[str]:
    """Status keywords of a model's constructor or of ``values(…)`` (not an HTTP status=)."""
    func = call.func
    callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if callee not in {"values", *MODELS}:
        return []
    names = [f"{k.arg}=" for k in call.keywords if k.arg in STATUS_COLUMNS]
    dicts = [k.value for k in call.keywords if k.arg is None]
    if callee == "values":
        dicts += call.args
    for value in dicts:
        if isinstance(value, ast.Dict):
            names += [
                f"{{'{key.value}': …}}"
                for key in value.keys
                if isinstance(key, ast.Constant) and key.value in STATUS_COLUMNS
            ]
    return names


def test_no_module_but_the_lifecycle_writes_a_status_column():
    writers = []
    for package in ("app", "worker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != LIFECYCLE:
                writers += _status_writes(path)
    assert not writers, "status written outside app/services/lifecycle.py:\n" + "\n".join(writers)


def test_the_scan_finds_a_status_write(tmp_path):
    # The check above can fail: it finds each way of writing a status, and not a read.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "share.status = 'ready'\n"
        "update(Share).values(status='failed')\n"
        "update(Recording).values(**{'probe_status': 'ok'})\n"
        "update(Recording).values({'probe_status': 'ok'})\n"
        "Share(id=1, status='ready')\n"
        "answer = {'status': share.status.value}\n"
        "select(Share).where(Share.status == 'ready')\n"
        "Response(body, status=206)\n"
    )
    assert len(_status_writes(sample, tmp_path)) == 5


def test_the_transition_table_is_the_lifecycle_of_spec_section_4():
    allowed = {(a.value, b.value) for a, b in lifecycle.SHARE_TRANSITIONS}
    assert allowed == {
        ("processing", "ready"),
        ("processing", "failed"),
        *{(a, b) for a in ("processing", "ready", "failed") for b in ("revoked", "expired")},
    }
    ending = [t for (_, b), t in lifecycle.SHARE_TRANSITIONS.items() if b.value == "revoked"]
    assert all(t.destroys_key and t.deletes_objects for t in ending)
    assert {(a.value, b.value) for a, b in lifecycle.RECORDING_TRANSITIONS} == {
        ("draft", "deleted")
    }


def test_a_transition_out_of_an_end_is_refused(rt, make_person):
    share = Share(id=uuid.uuid4(), status=ShareStatus.REVOKED, recording_id=uuid.uuid4())
    with rt.db.session() as session, pytest.raises(lifecycle.TransitionRefused):
        lifecycle.share_ready(session, share, duration_s=1.0, objects=4)
    ready = Share(id=uuid.uuid4(), status=ShareStatus.READY, recording_id=uuid.uuid4())
    with rt.db.session() as session:
        assert lifecycle.share_failed(session, ready, "late failure") is False
        session.rollback()
    assert ready.status is ShareStatus.READY


class RefusingDeletes:
    """The real store, except that deletes fail as an outage would, until ``recover()``."""

    def __init__(self, store) -> None:
        self._store = store
        self.refusing = True

    def __getattr__(self, name):
        return getattr(self._store, name)

    def recover(self) -> None:
        self.refusing = False

    def delete(self, name: str) -> None:
        if self.refusing:
            raise StorageUnavailable("object store unreachable: injected")
        self._store.delete(name)

    def delete_many(self, names: list[str]) -> None:
        if self.refusing:
            raise StorageUnavailable("object store unreachable: injected")
        self._store.delete_many(names)


@pytest.fixture
def quiet(stack_env):
    app = QuietApp(stack_env)
    yield app
    app.close()


def _objects(rt, recording_id) -> set[str]:
    return set(rt.store.list(f"recordings/{recording_id}/"))


def test_deleting_a_recording_while_the_store_refuses_finishes_later(quiet, samples, make_person):
    employee = make_person("employee")
    recording = upload_ok(
        quiet.client, employee, {"audio": (samples.call_wav, "call.wav")}, title="Refused"
    )
    rid = uuid.UUID(recording["id"])
    real_store = quiet.rt.store
    assert _objects(quiet.rt, rid)
    quiet.rt.store = RefusingDeletes(real_store)
    try:
        certificate = shredding.shred_recording(
            quiet.rt, rid, reason="deleted_by_owner", actor_id=employee.id
        )
        assert certificate  # the key is gone; the certificate says the check is pending
        assert _objects(quiet.rt, rid), "the injected outage should have kept the objects"
        sent = [m for m in quiet.messages(quiet.io_queue) if m["args"] == [str(rid)]]
        assert [m["task"] for m in sent] == ["worker.tasks.delete_recording_objects"]
        quiet.rt.store.recover()
        assert run_task(quiet.app, "worker.tasks.delete_recording_objects", str(rid)) == "deleted"
    finally:
        quiet.rt.store = real_store
    assert not _objects(quiet.rt, rid)
    with quiet.rt.db.session() as session:
        assert not session.scalars(select(MediaObject).where(MediaObject.recording_id == rid)).all()
        recording_row = session.get(Recording, rid)
        assert recording_row.status is RecordingStatus.DELETED


def test_the_reconciler_deletes_objects_of_a_deleted_recording_at_once(quiet, samples, make_person):
    employee = make_person("employee")
    recording = upload_ok(quiet.client, employee, {"audio": (samples.call_wav, "call.wav")})
    rid = uuid.UUID(recording["id"])
    real_store = quiet.rt.store
    quiet.rt.store = RefusingDeletes(real_store)
    try:
        shredding.shred_recording(quiet.rt, rid, reason="deleted_by_owner", actor_id=None)
    finally:
        quiet.rt.store = real_store
    quiet.drop(quiet.io_queue)  # the follow-up job is lost: the reconciler must catch it
    assert _objects(quiet.rt, rid)
    report = reconcile(quiet.rt)  # the objects are seconds old: not "orphans" by age
    assert report["ended_deleted"] >= 1
    assert not _objects(quiet.rt, rid)
    with quiet.rt.db.session() as session:
        assert not session.scalars(select(MediaObject).where(MediaObject.recording_id == rid)).all()
