"""Faults on the real stack: a worker killed mid-transcode, the S3 server down for 30 s,
PostgreSQL and Redis restarted under a running job, a revoke while a job runs — and then the
check that nothing is left behind.

The stack is self-contained and restartable: a private PostgreSQL cluster, a private
redis-server, moto's S3 server behind a TCP gate, one real Celery worker with the scheduler
(``--beat``) and ``CR_STALL_CHECK_S=5``. The jobs transcode a 120 s 720p input, so a fault
strikes while ffmpeg is still working (progress above 10 %).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, DataKey, MediaObject, Recording, Share, ShareStatus
from app.storage.s3 import S3Store
from tests.conftest import S3_ACCESS, S3_SECRET, wait_for
from tests.proof.conftest import ffmpeg_processes, proof_stack
from tests.proof.record import record
from worker.pipeline import LEASE_RENEW_EVERY_S

pytestmark = pytest.mark.proof

LIFECYCLE = "§4 every job ends ready or failed"
SCRATCH = "§2.3 scratch plaintext removed"
WITHDRAWAL = "§2.4 withdrawal immediate and final"
S3_OUTAGE_S = 30.0
PG_OUTAGE_S = 5.0
REDIS_OUTAGE_S = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with proof_stack(
        tmp_path_factory,
        "faults",
        database="private",
        broker="private-redis",
        s3_gate=True,
        CR_STALL_CHECK_S="5",
    ) as built:
        built.start_worker("worker", beat=True)
        yield built


@pytest.fixture(scope="module")
def people(stack):
    return stack.person("employee"), stack.person("coach")


@pytest.fixture(scope="module")
def long_recording(stack, people, proof_media) -> str:
    employee, _ = people
    recording = stack.upload(employee, {"screen": proof_media["long"]}, title="Long call")
    stack.wait_probed(employee, recording["id"])
    return recording["id"]


@pytest.fixture(scope="module")
def short_recording(stack, people, samples) -> str:
    employee, _ = people
    recording = stack.upload(
        employee, {"screen": samples.screen_webm, "audio": samples.call_wav}, title="Short call"
    )
    stack.wait_probed(employee, recording["id"])
    return recording["id"]


def _start(stack, people, recording_id: str) -> str:
    employee, coach = people
    return stack.opt_in(employee, recording_id, [coach])["id"]


def _transcodes(share_id: str) -> list:
    """The ffmpeg making this share's rendition (its scratch dir is named after the share)."""
    return [
        p for p in ffmpeg_processes(f"share-{share_id}") if "rendition.mp4" in " ".join(p.cmdline())
    ]


def _mid_transcode(stack, share_id: str, run_s: float = 3.0, timeout: float = 180) -> dict:
    """Wait until the share's transcode is under way — progress above 10 %, or ffmpeg running
    for ``run_s`` (this ffmpeg reports no progress before its last output starts, see
    test_progress_and_lease_during_a_transcode) — with ffmpeg still running; the row then,
    with ``ffmpeg_s``, how long ffmpeg had run."""

    def under_way():
        row = stack.share(share_id)
        assert row["status"] == "processing", row
        running = _transcodes(share_id)
        if not running:
            return False
        ran = time.time() - running[0].create_time()
        return (row["progress"] > 10 or ran >= run_s) and {**row, "ffmpeg_s": ran}

    return wait_for(under_way, timeout, f"share {share_id}'s transcode", interval=0.1)


def _dirs_of(stack, share_id: str) -> list:
    return [d for d in stack.scratch_dirs() if str(share_id) in d.name]


def _worker_log(stack) -> str:
    return "".join(
        w.log_path.read_text(errors="replace") for w in stack.workers if w.log_path.exists()
    )


# --- a worker killed mid-transcode ------------------------------------------------------------


def test_worker_sigkill_mid_transcode_then_a_new_worker_finishes_it(stack, people, long_recording):
    share_id = _start(stack, people, long_recording)
    row = _mid_transcode(stack, share_id)
    killed_dirs = _dirs_of(stack, share_id)
    scratch_root = str(stack.settings.scratch_dir)
    assert killed_dirs, "the running job has no scratch directory"

    old = stack.workers[-1]
    killed_at = time.monotonic()
    old.kill()  # SIGKILL to the whole process group: the worker, its pool and its beat
    time.sleep(1.0)  # what a dying parent takes with it goes within milliseconds
    orphans = ffmpeg_processes(scratch_root)
    for process in orphans:  # clean up after the figure is taken
        with contextlib.suppress(Exception):
            process.kill()

    stack.start_worker("worker-after-kill", beat=True)
    swept = wait_for(
        lambda: not any(d.exists() for d in killed_dirs), 30, "the sweeper to remove the dir"
    )
    swept_after = time.monotonic() - killed_at
    final = stack.wait(share_id, timeout=300)
    to_ready = time.monotonic() - killed_at
    left = _dirs_of(stack, share_id)
    log = _worker_log(stack)
    stalled = f"share {share_id} stalled; sending its job again" in log
    # how long the resumed run took: the whole job on this input (download, probe, transcode,
    # upload), so the kill did strike a transcode that takes a while
    runs = re.findall(r"process_share\[[^]]+\] succeeded in ([\d.]+)s: 'ready'", log)
    resumed_s = float(runs[-1]) if runs else 0.0

    test = "faults::worker_sigkill"
    record(
        test,
        "when killed: ffmpeg had run / progress shown",
        f"{row['ffmpeg_s']:.1f} s / {row['progress']} %",
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "the resumed job's run time (the input's whole job)",
        round(resumed_s, 1),
        unit="s",
        target="≥ 10 s",
        passed=resumed_s >= 10,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "share status after a new worker started",
        final["status"],
        target="ready",
        passed=final["status"] == "ready",
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "time from SIGKILL to ready (30 s lease + stall check every 5 s + transcode)",
        round(to_ready, 1),
        unit="s",
        target="≤ 240 s",
        passed=final["status"] == "ready" and to_ready <= 240,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "job attempts (killed run + resumed run)",
        final["job_attempts"],
        target="2",
        passed=final["job_attempts"] == 2,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "orphaned ffmpeg processes 1 s after the kill",
        len(orphans),
        target="0",
        passed=not orphans,
        guarantee=SCRATCH,
    )
    record(
        test,
        "killed job's scratch dir removed, seconds after the kill",
        round(swept_after, 1),
        unit="s",
        target="removed by the new worker's start-up sweep",
        passed=bool(swept),
        guarantee=SCRATCH,
    )
    record(
        test,
        "scratch dirs of the share left at the end",
        len(left),
        target="0",
        passed=not left,
        guarantee=SCRATCH,
    )
    assert final["status"] == "ready", final
    assert resumed_s >= 10, f"the input's job takes {resumed_s:.1f} s: make it longer"
    assert stalled, "the job was not re-sent by the stall check"
    assert final["job_attempts"] == 2, final
    assert not orphans, f"{len(orphans)} ffmpeg process(es) outlived the killed worker"
    assert not left, left
    assert to_ready <= 240


# --- the S3 server down for 30 s ----------------------------------------------------------------


def _direct_store(stack) -> S3Store:
    """A client of moto's own port, past the gate: what the test uses to keep the objects."""
    return S3Store(
        endpoint=stack.moto.endpoint,
        access_key=S3_ACCESS,
        secret_key=S3_SECRET,
        bucket=stack.settings.s3_bucket,
    )


def test_s3_down_for_30_s_during_a_job(stack, people, short_recording):
    share_id = _start(stack, people, short_recording)
    wait_for(lambda: stack.share(share_id)["job_attempts"] >= 1, 60, "the job to start", 0.02)

    down_at = time.monotonic()
    stack.gate.down()  # from here on, every client sees connection refused
    direct = _direct_store(stack)
    kept = {name: b"".join(direct.iter_object(name)) for name in direct.list("")}
    stack.moto.stop()  # and the server really goes (moto keeps objects in memory: kept above)
    time.sleep(max(0.0, S3_OUTAGE_S - (time.monotonic() - down_at)))
    stack.moto.start()
    direct = _direct_store(stack)
    direct.check()
    for name, data in kept.items():
        direct.put_stream(name, [data])
    stack.gate.up()
    up_at = time.monotonic()

    final = stack.wait(share_id, timeout=420)
    done_at = time.monotonic()
    retries = _worker_log(stack).count(
        f"share {share_id}: transient failure (StorageUnavailable); retrying"
    )
    objects = stack.store_names(f"shares/{share_id}/")
    clear_failure = final["status"] == "failed" and "unavailable" in (final["error"] or "")

    test = "faults::s3_down_30s"
    record(test, "S3 outage", round(up_at - down_at, 1), unit="s", passed=True, guarantee=LIFECYCLE)
    record(
        test,
        "outcome",
        final["status"] if final["status"] == "ready" else f"failed: {final['error']}",
        target="ready, or failed with a clear message",
        passed=final["status"] == "ready" or clear_failure,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "time from S3 back to the share's end",
        round(done_at - up_at, 1),
        unit="s",
        target="≤ 120 s",
        passed=done_at - up_at <= 120,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "retries with backoff during the outage",
        retries,
        target="≥ 1",
        passed=retries >= 1,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "objects under shares/<id>/ at the end",
        len(objects),
        target="4 if ready, 0 if failed",
        passed=len(objects) == (4 if final["status"] == "ready" else 0),
        guarantee=LIFECYCLE,
    )
    assert final["status"] == "ready" or clear_failure, final
    assert retries >= 1, "the job never met the outage"
    assert len(objects) == (4 if final["status"] == "ready" else 0), objects
    assert done_at - up_at <= 120


# --- PostgreSQL and Redis restarted under a running job -------------------------------------------


def test_postgres_restart_during_a_job(stack, people, long_recording):
    share_id = _start(stack, people, long_recording)
    struck = _mid_transcode(stack, share_id)
    down_at = time.monotonic()
    stack.pg.stop("immediate")  # a crash, as clients see it
    time.sleep(PG_OUTAGE_S)
    stack.pg.start()
    up_at = time.monotonic()
    final = stack.wait(share_id, timeout=300)
    done_at = time.monotonic()
    left = _dirs_of(stack, share_id)
    reason_ok = final["status"] == "ready" or bool(final["error"])

    test = "faults::postgres_restart"
    record(
        test,
        "when struck: ffmpeg had run / progress shown",
        f"{struck['ffmpeg_s']:.1f} s / {struck['progress']} %",
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "PostgreSQL down (immediate stop, then start)",
        round(up_at - down_at, 1),
        unit="s",
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "outcome",
        final["status"] if final["status"] == "ready" else f"failed: {final['error']}",
        target="ready, or failed with a reason",
        passed=reason_ok,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "time from PostgreSQL back to the share's end",
        round(done_at - up_at, 1),
        unit="s",
        target="≤ 180 s",
        passed=done_at - up_at <= 180,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "job attempts",
        final["job_attempts"],
        passed=final["job_attempts"] >= 1,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "scratch dirs of the share left",
        len(left),
        target="0",
        passed=not left,
        guarantee=SCRATCH,
    )
    assert reason_ok, final
    assert not left, left
    assert done_at - up_at <= 180


class _Watch:
    """Samples a share's row and its transcode every 0.2 s on a thread, until it ends."""

    def __init__(self, stack, share_id: str) -> None:
        self.stack, self.share_id = stack, share_id
        self.samples: list[tuple[float, int, object, bool]] = []  # (t, progress, lease, ffmpeg)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                row = self.stack.share(self.share_id)
                running = bool(_transcodes(self.share_id))
                self.samples.append(
                    (time.monotonic(), row["progress"], row["job_lease_until"], running)
                )
                if row["status"] != "processing":
                    return
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class _RedisRestart:
    watch: _Watch  # the share's row and its transcode, sampled while the job ran
    struck: dict  # the row when Redis went down, with ffmpeg_s
    down_at: float
    up_at: float
    final: dict  # the row when the job ended
    done_at: float
    after_final: dict  # a job sent after the restart, when it ended
    after_s: float


@pytest.fixture(scope="module")
def redis_restart(stack, people, long_recording, short_recording) -> _RedisRestart:
    """Redis killed and restarted under a running, watched job — once, for the two tests that
    read it (whichever runs first, or alone, makes it)."""
    share_id = _start(stack, people, long_recording)
    watch = _Watch(stack, share_id)
    try:
        struck = _mid_transcode(stack, share_id)
        down_at = time.monotonic()
        stack.redis.stop()  # SIGKILL; no persistence: every message in Redis is lost
        time.sleep(REDIS_OUTAGE_S)
        stack.redis.start()
        up_at = time.monotonic()
        final = stack.wait(share_id, timeout=300)
        done_at = time.monotonic()
    finally:
        watch.stop()
    # The worker is still consuming after the restart: a new job goes through.
    after = _start(stack, people, short_recording)
    after_final = stack.wait(after, timeout=180)
    after_s = time.monotonic() - done_at
    return _RedisRestart(watch, struck, down_at, up_at, final, done_at, after_final, after_s)


def test_redis_restart_during_a_job(redis_restart):
    run = redis_restart
    struck, down_at, up_at, final = run.struck, run.down_at, run.up_at, run.final
    done_at, after_final, after_s = run.done_at, run.after_final, run.after_s
    reason_ok = final["status"] == "ready" or bool(final["error"])

    test = "faults::redis_restart"
    record(
        test,
        "when struck: ffmpeg had run / progress shown",
        f"{struck['ffmpeg_s']:.1f} s / {struck['progress']} %",
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "Redis down (SIGKILL, no persistence, then start)",
        round(up_at - down_at, 1),
        unit="s",
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "outcome of the running job",
        final["status"] if final["status"] == "ready" else f"failed: {final['error']}",
        target="ready, or failed with a reason",
        passed=reason_ok,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "time from Redis back to the share's end",
        round(done_at - up_at, 1),
        unit="s",
        target="≤ 180 s",
        passed=done_at - up_at <= 180,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "a job sent after the restart",
        f"{after_final['status']} in {after_s:.1f} s",
        target="ready",
        passed=after_final["status"] == "ready",
        guarantee=LIFECYCLE,
    )
    assert reason_ok, final
    assert after_final["status"] == "ready", after_final
    assert done_at - up_at <= 180


def test_progress_and_lease_during_a_transcode(redis_restart):
    """What the job showed while the Redis restart's transcode ran: the progress the employee
    sees, and how often the job renewed its 30 s lease (a lease that runs out lets the stall
    check hand the share to a second worker while the first still works on it)."""
    running = [s for s in redis_restart.watch.samples if s[3]]
    assert len(running) >= 5, "the transcode was not observed"
    began, ended = running[0][0], running[-1][0]
    midpoint = next(s for s in running if s[0] >= began + (ended - began) / 2)
    renewals = [running[0][0]]
    for previous, sample in itertools.pairwise(running):
        if sample[2] != previous[2]:
            renewals.append(sample[0])
    renewals.append(ended)
    longest_gap = max(b - a for a, b in itertools.pairwise(renewals))

    test = "faults::progress_and_lease"
    record(
        test,
        "transcode observed",
        round(ended - began, 1),
        unit="s",
        passed=True,
        guarantee=LIFECYCLE,
    )
    # While ffmpeg runs the job moves from 5 % to 90 %: the employee must see it move, not
    # jump from the start to the end.
    steps = sorted({s[1] for s in running if 5 < s[1] < 90})
    progress_ok = len(steps) >= 3
    record(
        test,
        "distinct progress values shown during the transcode",
        len(steps),
        target="≥ 3 between 5 % and 90 %",
        passed=progress_ok,
        guarantee="§5 progress 0–100 while made",
    )
    record(
        test,
        "progress shown halfway through the observed run",
        midpoint[1],
        unit="%",
        passed=True,
        guarantee="§5 progress 0–100 while made",
    )
    lease_ok = longest_gap <= 2 * LEASE_RENEW_EVERY_S
    record(
        test,
        "longest time without a lease renewal while ffmpeg ran",
        round(longest_gap, 1),
        unit="s",
        target=f"≤ {2 * LEASE_RENEW_EVERY_S:g} s (renewed every {LEASE_RENEW_EVERY_S:g} s)",
        passed=lease_ok,
        guarantee=LIFECYCLE,
    )
    assert progress_ok, "progress did not rise while ffmpeg ran"
    assert lease_ok, "the lease was not renewed while ffmpeg ran"


# --- a revoke while the job runs -----------------------------------------------------------------


def test_revoke_while_a_job_runs(stack, people, long_recording):
    employee, _ = people
    share_id = _start(stack, people, long_recording)
    row = _mid_transcode(stack, share_id)
    revoked_at = time.monotonic()
    response = stack.client.post(f"/api/v1/shares/{share_id}/revoke", headers=employee.headers)
    revoke_ms = (time.monotonic() - revoked_at) * 1000
    assert response.status_code == 200, response.get_json()

    def job_gone():
        return not _transcodes(share_id) and not _dirs_of(stack, share_id)

    wait_for(job_gone, 180, "the job to stop and remove its scratch dir", interval=0.05)
    stopped_s = time.monotonic() - revoked_at
    wait_for(
        lambda: f"share {share_id}: ended" in _worker_log(stack), 30, "the worker to log the end"
    )
    time.sleep(2)  # anything the job would still upload would show by now
    objects = stack.store_names(f"shares/{share_id}/")
    with stack.rt.db.session() as session:
        key_left = session.get(DataKey, row["key_id"]) is not None
        rows_left = session.scalar(
            select(func.count())
            .select_from(MediaObject)
            .where(MediaObject.share_id == uuid.UUID(share_id))
        )
    final = stack.share(share_id)

    test = "faults::revoke_mid_job"
    record(
        test,
        "when revoked: ffmpeg had run / progress shown",
        f"{row['ffmpeg_s']:.1f} s / {row['progress']} %",
        passed=True,
        guarantee=WITHDRAWAL,
    )
    record(
        test, "revoke round trip", round(revoke_ms), unit="ms", passed=True, guarantee=WITHDRAWAL
    )
    record(
        test,
        "time from revoke to ffmpeg stopped and scratch removed",
        round(stopped_s, 2),
        unit="s",
        target="≤ 5 s (the job checks every 3 s)",
        passed=stopped_s <= 5,
        guarantee=WITHDRAWAL,
    )
    record(
        test,
        "objects under shares/<id>/ after the job stopped",
        len(objects),
        target="0",
        passed=not objects,
        guarantee=WITHDRAWAL,
    )
    record(
        test,
        "wrapped key and object rows left",
        int(key_left) + rows_left,
        target="0",
        passed=not key_left and not rows_left,
        guarantee=WITHDRAWAL,
    )
    assert final["status"] == "revoked", final
    assert not objects and not key_left and not rows_left
    assert stopped_s <= 5, f"ffmpeg ran on for {stopped_s:.1f} s after the revoke"


# --- the global check ----------------------------------------------------------------------------


def test_nothing_is_left_behind(stack):
    """Run last: every share of every accepted upload has ended, with a reason if it failed;
    no object lacks its row; no scratch directory is left."""

    def settled():
        with stack.rt.db.session() as session:
            return not session.scalar(
                select(func.count())
                .select_from(Share)
                .where(Share.status == ShareStatus.PROCESSING)
            )

    with contextlib.suppress(AssertionError):
        wait_for(settled, 30, "processing shares to settle")
    with stack.rt.db.session() as session:
        shares = session.execute(select(Share.id, Share.status, Share.error)).all()
        pending_probes = session.scalar(
            select(func.count()).select_from(Recording).where(Recording.probe_status == "pending")
        )
        known = set(session.scalars(select(MediaObject.name)))
        ready_events = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "share.ready")
        )
    stuck = [s.id for s in shares if s.status is ShareStatus.PROCESSING]
    silent = [s.id for s in shares if s.status is ShareStatus.FAILED and not s.error]
    orphans = [name for name in stack.store_names("") if name not in known]
    scratch = stack.scratch_dirs()
    counts: dict[str, int] = {}
    for s in shares:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1

    test = "faults::global_check"
    record(
        test,
        "shares by final status",
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        passed=True,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "shares stuck in processing",
        len(stuck),
        target="0",
        passed=not stuck,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "failed shares without a reason",
        len(silent),
        target="0",
        passed=not silent,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "uploads whose probe never finished",
        pending_probes,
        target="0",
        passed=not pending_probes,
        guarantee=LIFECYCLE,
    )
    record(
        test,
        "objects in the store without a row",
        len(orphans),
        target="0",
        passed=not orphans,
        guarantee=SCRATCH,
    )
    record(
        test,
        "scratch dirs left",
        len(scratch),
        target="0",
        passed=not scratch,
        guarantee=SCRATCH,
    )
    record(
        test,
        "share.ready audit events per ready share",
        f"{ready_events} for {counts.get('ready', 0)}",
        target="one each",
        passed=ready_events == counts.get("ready", 0),
        guarantee=LIFECYCLE,
    )
    assert not stuck, stuck
    assert not silent, silent
    assert not orphans, orphans
    assert not scratch, scratch
    assert not pending_probes
    assert ready_events == counts.get("ready", 0)
