"""The Celery tasks: retries by kind of failure, and the scheduled jobs.

These run on a stack of their own (a fresh PostgreSQL database, a moto S3 server that can be
stopped, and a real worker on its own queue prefix), because they stop the store, sweep the
whole database or reconcile the whole bucket, and must neither disturb other tests nor be
disturbed by them. Scheduled task bodies are run in the test's process in that app's
context; retries are shown by the real worker.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import select, update

import crypto
from app import jobs
from app.jobs import queue_names
from app.models import DataKey, MediaObject, Recording, RecordingStatus, Share, ShareStatus, utcnow
from tests.conftest import (
    MotoServer,
    WorkerProcess,
    free_port,
    fresh_database,
    stack_environment,
    wait_for,
)
from tests.worker import corpus
from tests.worker.test_pipeline import (
    QuietApp,
    build_app,
    end_leftover_shares,
    opt_in,
    read_object,
    run_task,
    share_state,
    store_names,
    upload_ok,
    wait_share,
)


class Stack:
    """A self-contained deployment: its own database, S3 server, queue prefix and worker."""

    def __init__(self, tmp: Path, pg_admin: str, redis_url: str) -> None:
        self._exit = contextlib.ExitStack()
        database_url = self._exit.enter_context(fresh_database(pg_admin, prefix="cr_tasks"))
        from app import migrate

        migrate.upgrade(database_url)
        self.s3 = MotoServer(free_port(), tmp / "moto.log")
        self.s3.start()
        self._exit.callback(self.s3.stop)
        self.prefix = f"tasks{uuid.uuid4().hex[:8]}."
        self.env = stack_environment(
            tmp / "instance",
            database_url=database_url,
            broker_url=redis_url,
            s3=self.s3,
            bucket="consent-replay-tasks",
            CR_QUEUE_PREFIX=self.prefix,
            CR_JOB_TIME_LIMIT_S="300",
            CR_VISIBILITY_TIMEOUT_S="600",
        )
        self.app = build_app(self.env)
        self.rt = self.app.extensions["consent_replay"]
        self._exit.callback(self.rt.db.dispose)
        self.client = self.app.test_client()
        self.media_queue, self.io_queue = queue_names(self.rt.settings)
        self._exit.callback(self._forget_queues, redis_url)  # after the worker has stopped
        self.worker = WorkerProcess(
            self.env, tmp / "worker.log", queues=f"{self.media_queue},{self.io_queue}"
        )
        self.worker.start()
        self._exit.callback(self.worker.stop)
        self.quiet = QuietApp(self.env)
        self._exit.callback(self.quiet.close)

    def person(self, role: str):
        from tests.conftest import create_person

        return create_person(self.rt, role)

    def worker_log(self) -> str:
        return self.worker.log_path.read_text(errors="replace")

    def _forget_queues(self, redis_url: str) -> None:
        client = redis_lib.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"*{self.prefix}*"):
            client.delete(key)

    def close(self) -> None:
        self._exit.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pg_server, redis_url):
    built = Stack(tmp_path_factory.mktemp("tasks-stack"), pg_server, redis_url)
    yield built
    built.close()


def _parts(samples):
    return {"screen": (samples.screen_webm, "s.webm"), "audio": (samples.call_wav, "c.wav")}


def _ready_share(stack, samples, **options) -> tuple[dict, dict, object, object]:
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = upload_ok(stack.client, employee, _parts(samples))
    share = opt_in(
        stack.client, employee, recording["id"], coach, trim={"start_s": 0, "end_s": 3}, **options
    )
    wait_share(stack.client, employee, share["id"])
    return recording, share, employee, coach


def _set(stack, model, row_id, **values) -> None:
    with stack.rt.db.session() as session:
        session.execute(update(model).where(model.id == uuid.UUID(str(row_id))).values(**values))


def _verified_certificate(stack, token: str) -> dict:
    jwks = stack.client.get("/.well-known/jwks.json").get_json()
    return crypto.verify(
        token, jwks, typ=crypto.CERTIFICATE_TYP, required=crypto.CERTIFICATE_CLAIMS
    )


def _wait_probe(stack, employee, recording) -> dict:
    def probed():
        body = stack.client.get(f"/api/v1/recordings/{recording['id']}", headers=employee.headers)
        return body.get_json()["probe_status"] != "pending" and body.get_json()

    return wait_for(probed, 60, "the probe of the recording")


def _key_exists(stack, key_id) -> bool:
    with stack.rt.db.session() as session:
        return session.get(DataKey, uuid.UUID(str(key_id))) is not None


# --- scheduled work ----------------------------------------------------------------------------


def test_expire_shares_past_their_end(stack, samples):
    _recording, share, employee, coach = _ready_share(stack, samples)
    _other_recording, other, other_employee, _ = _ready_share(stack, samples)
    with stack.rt.db.session() as session:
        key_id = session.get(Share, uuid.UUID(share["id"])).key_id
    assert len(store_names(stack.rt, f"shares/{share['id']}/")) == 4
    _set(stack, Share, share["id"], expires_at=utcnow() - timedelta(minutes=1))

    expired = run_task(stack.app, "worker.tasks.expire_shares")
    assert expired == 1

    body = share_state(stack.client, employee, share["id"])
    assert body["status"] == "expired" and "media" not in body
    assert not _key_exists(stack, key_id)
    assert not store_names(stack.rt, f"shares/{share['id']}/")
    with stack.rt.db.session() as session:
        assert not session.scalars(
            select(MediaObject).where(MediaObject.share_id == uuid.UUID(share["id"]))
        ).all()
    claims = _verified_certificate(stack, body["certificate"])
    assert claims["reason"] == "expired" and claims["key_id"] == str(key_id)
    assert claims["absence_check"]["all_absent"] is True and len(claims["objects_deleted"]) == 4
    video = stack.client.get(f"/media/shares/{share['id']}/video", headers=coach.headers)
    assert video.status_code == 410
    # the other share, not past its end, is untouched; a second run finds nothing to do
    assert share_state(stack.client, other_employee, other["id"])["status"] == "ready"
    assert run_task(stack.app, "worker.tasks.expire_shares") == 0


def test_delete_drafts_past_their_lifetime_unless_shared(stack, samples, tmp_path):
    employee, coach = stack.person("employee"), stack.person("coach")
    past = utcnow() - timedelta(minutes=1)
    due = upload_ok(stack.client, employee, _parts(samples))
    not_due = upload_ok(stack.client, employee, _parts(samples))
    shared = upload_ok(stack.client, employee, _parts(samples))
    share = opt_in(stack.quiet.client, employee, shared["id"], coach)  # stays processing
    stack.quiet.drop()
    failed = upload_ok(
        stack.client, employee, {"screen": (corpus.noise_after_magic(tmp_path), "x.webm")}
    )
    failed_share = opt_in(stack.client, employee, failed["id"], coach)
    wait_share(stack.client, employee, failed_share["id"], want="failed")
    for recording in (due, shared, failed):
        _set(stack, Recording, recording["id"], expires_at=past)
    with stack.rt.db.session() as session:
        due_key = session.get(Recording, uuid.UUID(due["id"])).key_id

    assert run_task(stack.app, "worker.tasks.delete_expired_drafts") == 2

    def recording_of(rec):
        return stack.client.get(
            f"/api/v1/recordings/{rec['id']}", headers=employee.headers
        ).get_json()

    for gone in (due, failed):
        body = recording_of(gone)
        assert body["status"] == "deleted", body
        assert not store_names(stack.rt, f"recordings/{gone['id']}/")
        claims = _verified_certificate(stack, body["certificate"])
        assert claims["reason"] == "draft_lifetime_ended"
        assert claims["subject_type"] == "recording" and claims["subject_id"] == gone["id"]
    assert not _key_exists(stack, due_key)
    # the failed share of a deleted draft is ended (shredded) too
    ended = share_state(stack.client, employee, failed_share["id"])
    assert ended["status"] == "revoked" and ended["certificate"]
    # a draft that is still shared, and one not yet due, stay
    for kept in (not_due, shared):
        assert recording_of(kept)["status"] == "draft"
        assert len(store_names(stack.rt, f"recordings/{kept['id']}/")) == 2
    end_leftover_shares(stack.rt, [share["id"]])


def test_reconcile_deletes_old_orphans_and_reports_missing_objects(stack, samples):
    from app.services.reconcile import reconcile

    employee = stack.person("employee")
    recording = upload_ok(stack.client, employee, {"audio": (samples.call_wav, "c.wav")})
    _wait_probe(stack, employee, recording)
    with stack.rt.db.session() as session:
        (missing_name,) = session.scalars(
            select(MediaObject.name).where(MediaObject.recording_id == uuid.UUID(recording["id"]))
        )
    stack.rt.store.delete(missing_name)  # a row whose object is gone
    old = [f"recordings/{uuid.uuid4()}/{uuid.uuid4()}" for _ in range(2)]
    for name in old:
        stack.rt.store.put_stream(name, [os.urandom(1000)])
    time.sleep(3.1)  # S3 keeps times to the second
    young = f"shares/{uuid.uuid4()}/{uuid.uuid4()}"
    stack.rt.store.put_stream(young, [os.urandom(1000)])

    report = reconcile(stack.rt, min_orphan_age=timedelta(seconds=2.5))
    assert report["orphans_deleted"] == 2, report
    assert report["missing"] == 1 and report["missing_names"] == [missing_name]
    assert not any(stack.rt.store.exists(name) for name in old)
    assert stack.rt.store.exists(young)  # may belong to an upload still in progress

    # The scheduled task (two-hour cutoff) keeps the young orphan and reports the missing row.
    scheduled = run_task(stack.app, "worker.tasks.reconcile_store")
    assert scheduled["orphans_deleted"] == 0 and scheduled["missing_names"] == [missing_name]
    assert stack.rt.store.exists(young)
    stack.rt.store.delete(young)
    with stack.rt.db.session() as session:  # leave the bucket and the rows consistent
        session.execute(MediaObject.__table__.delete().where(MediaObject.name == missing_name))


def test_resume_stalled_shares_resends_only_stalled_jobs(stack, samples):
    employee, coach = stack.person("employee"), stack.person("coach")
    shares, owners = {}, {}
    for label in ("dead-worker", "never-started", "live-lease", "just-created"):
        # One person may have only three shares in preparation: one employee per share.
        owner = owners[label] = stack.person("employee") if shares else employee
        recording = upload_ok(stack.quiet.client, owner, {"audio": (samples.call_wav, "c.wav")})
        shares[label] = opt_in(
            stack.quiet.client, owner, recording["id"], coach, trim={"start_s": 0, "end_s": 3}
        )["id"]
    stack.quiet.drop(stack.quiet.media_queue)  # the original jobs were lost with the worker
    now = utcnow()
    _set(
        stack,
        Share,
        shares["dead-worker"],
        job_lease_until=now - timedelta(seconds=5),
        job_attempts=1,
    )
    _set(stack, Share, shares["never-started"], created_at=now - timedelta(minutes=30))
    _set(
        stack,
        Share,
        shares["live-lease"],
        job_lease_until=now + timedelta(minutes=5),
        job_attempts=1,
    )

    # Run in the quiet app, so the re-sent jobs wait where this test can read them.
    resent = run_task(stack.quiet.app, "worker.tasks.resume_stalled_shares")
    sent_ids = {m["args"][0] for m in stack.quiet.messages()}
    assert {shares["dead-worker"], shares["never-started"]} <= sent_ids
    assert not {shares["live-lease"], shares["just-created"]} & sent_ids
    assert resent == len(sent_ids)

    # The same task in the app whose worker is running finishes the stalled shares.
    stack.quiet.drop()
    assert run_task(stack.app, "worker.tasks.resume_stalled_shares") >= 2
    for label in ("dead-worker", "never-started"):
        body = wait_share(stack.client, owners[label], shares[label])
        assert body["progress"] == 100
    end_leftover_shares(stack.rt, [shares["live-lease"], shares["just-created"]])


# --- retries by kind of failure ------------------------------------------------------------------


def test_a_bad_file_fails_once_and_is_not_retried(stack, tmp_path):
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = upload_ok(
        stack.client, employee, {"screen": (corpus.truncated_mp4(tmp_path), "s.mp4")}
    )
    share = opt_in(stack.client, employee, recording["id"], coach)
    started = time.monotonic()
    body = wait_share(stack.client, employee, share["id"], want="failed", timeout=60)
    assert time.monotonic() - started < 30
    assert body["error"] == "The screen file could not be read as audio or video."
    log = wait_for(
        lambda: (text := stack.worker_log()) and f"share {share['id']}: failed" in text and text,
        30,
        "the worker to log the outcome",
    )
    assert log.count(f"share {share['id']}: failed") == 1
    assert f"share {share['id']}: transient" not in log
    with stack.rt.db.session() as session:
        assert session.get(Share, uuid.UUID(share["id"])).job_attempts == 1


def test_a_job_whose_lease_is_held_is_retried_after_it(stack, samples):
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = upload_ok(stack.quiet.client, employee, {"audio": (samples.call_wav, "c.wav")})
    share = opt_in(
        stack.quiet.client, employee, recording["id"], coach, trim={"start_s": 0, "end_s": 3}
    )
    # another worker holds the share for 4 more seconds
    lease_end = utcnow() + timedelta(seconds=4)
    _set(stack, Share, share["id"], job_lease_until=lease_end)
    log_before = len(stack.worker_log())
    stack.quiet.drop()
    stack.rt.jobs.send(jobs.PROCESS_SHARE, share["id"])  # as the opt-in sends it
    wait_share(stack.client, employee, share["id"])
    with stack.rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share["id"]))
        assert row.ready_at >= lease_end and row.job_attempts == 1
    assert "retry: Retry in" in stack.worker_log()[log_before:]


def test_an_unexpected_error_fails_the_share_instead_of_leaving_it_processing(stack, samples):
    """A fault that is neither a bad file nor an outage: the scratch root is not a directory."""
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = upload_ok(stack.client, employee, {"audio": (samples.call_wav, "c.wav")})
    _wait_probe(stack, employee, recording)
    scratch = stack.rt.settings.scratch_dir
    scratch.mkdir(parents=True, exist_ok=True)
    aside = scratch.with_name("scratch-aside")
    scratch.rename(aside)
    scratch.write_text("not a directory")
    try:
        share = opt_in(stack.client, employee, recording["id"], coach)
        body = wait_share(stack.client, employee, share["id"], want="failed", timeout=60)
    finally:
        scratch.unlink()
        aside.rename(scratch)
    assert body["error"] == "Processing failed unexpectedly; please share it again."
    assert not store_names(stack.rt, f"shares/{share['id']}/")


def test_a_storage_outage_is_retried_with_backoff(stack, samples):
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = upload_ok(stack.client, employee, _parts(samples))
    assert _wait_probe(stack, employee, recording)["probe_status"] == "ok"
    # moto keeps objects in memory: take them along over the restart, as MinIO's disks would
    kept = {name: read_object(stack.rt, name) for name in stack.rt.store.list("")}
    stack.s3.stop()
    try:
        share = opt_in(stack.client, employee, recording["id"], coach)
        marker = f"share {share['id']}: transient failure (StorageUnavailable); retrying"
        wait_for(lambda: marker in stack.worker_log(), 60, "the job to meet the outage")
        with stack.rt.db.session() as session:
            row = session.get(Share, uuid.UUID(share["id"]))
            assert row.status is ShareStatus.PROCESSING and row.job_lease_until is None
            assert row.job_attempts == 1
    finally:
        stack.s3.start()
        stack.rt.store.check()  # makes the bucket again
        for name, data in kept.items():
            stack.rt.store.put_stream(name, [data])
    body = wait_share(stack.client, employee, share["id"], timeout=90)
    assert body["progress"] == 100
    outages = [line for line in stack.worker_log().splitlines() if marker in line]
    with stack.rt.db.session() as session:
        row = session.get(Share, uuid.UUID(share["id"]))
        # one attempt per outage met, then the one that worked (more if the restart was slow)
        assert row.job_attempts == len(outages) + 1 >= 2
        first_outage = datetime.strptime(outages[0][:23], "%Y-%m-%d %H:%M:%S,%f")
        assert row.ready_at.replace(tzinfo=None) - first_outage >= timedelta(seconds=5)  # backoff
        assert session.get(Recording, uuid.UUID(recording["id"])).status is RecordingStatus.DRAFT
    assert len(store_names(stack.rt, f"shares/{share['id']}/")) == 4


def test_resume_also_resends_a_probe_whose_message_was_lost(stack, samples):
    employee = stack.person("employee")
    recording = upload_ok(stack.quiet.client, employee, {"audio": (samples.call_wav, "c.wav")})
    stack.quiet.drop(stack.quiet.media_queue)  # the probe's message was lost
    _set(stack, Recording, recording["id"], created_at=utcnow() - timedelta(minutes=30))
    run_task(stack.quiet.app, "worker.tasks.resume_stalled_shares")
    assert recording["id"] in {m["args"][0] for m in stack.quiet.messages()}


def test_the_scheduled_purge_removes_expired_sign_in_states_only(rt):
    """Sign-in states and logout-token ids past their expiry go with the scheduled purge; a live
    one stays (a replayed logout token must still be refused until it expires)."""
    import worker.tasks  # noqa: F401 - registers the task code
    from app.models import OidcSingleUse
    from worker.celery_app import create_celery

    expired, live = f"test-expired-{uuid.uuid4().hex}", f"test-live-{uuid.uuid4().hex}"
    with rt.db.session() as session:
        session.add(OidcSingleUse(key=expired, data=None, expires_at=utcnow() - timedelta(1)))
        session.add(OidcSingleUse(key=live, data=None, expires_at=utcnow() + timedelta(hours=1)))
    celery = create_celery(rt.settings)
    try:
        assert celery.tasks["worker.tasks.purge_expired_credentials"]() >= 1
    finally:
        celery.runtime.db.dispose()
    with rt.db.session() as session:
        assert session.get(OidcSingleUse, expired) is None
        assert session.get(OidcSingleUse, live) is not None
