"""Scale out: two worker processes share one RabbitMQ queue of 20 share jobs.

Each job must run exactly once (one claim of its lease, one ``share.ready`` audit event),
both workers must take part, and every share must end ready. The 20 jobs are queued before
the workers start, so the queue is what divides the work.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest
from kombu import Connection
from sqlalchemy import func, select

from app.models import AuditEvent, Share
from tests.conftest import WorkerProcess, wait_for
from tests.proof.conftest import AMQP_URL, proof_stack
from tests.proof.record import record

pytestmark = pytest.mark.proof

JOBS = 20
SCALE = "§10 workers scale out, each job once"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with proof_stack(tmp_path_factory, "scale", broker="amqp") as built:
        yield built


def _queue_depth(queue: str) -> int:
    with Connection(AMQP_URL, connect_timeout=5) as connection:
        _, messages, _ = connection.default_channel.queue_declare(queue=queue, passive=True)
        return messages


def test_two_workers_on_rabbitmq_share_20_jobs(stack, samples):
    employee, coach = stack.person("employee"), stack.person("coach")
    recording = stack.upload(employee, {"screen": samples.screen_webm, "audio": samples.call_wav})
    share_ids = [stack.opt_in(employee, recording["id"], [coach])["id"] for _ in range(JOBS)]
    queued = _queue_depth(f"{stack.prefix}media")

    workers = [
        WorkerProcess(
            stack.env, stack.folder / f"scale-worker-{n}.log", queues=stack.queues, concurrency=1
        )
        for n in range(2)
    ]
    stack.workers.extend(workers)  # stopped with the stack
    ready_at: list[float] = []
    starters = [
        threading.Thread(target=lambda w=w: (w.start(), ready_at.append(time.monotonic())))
        for w in workers
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(90)
    assert len(ready_at) == 2, "a worker did not start"
    began = min(ready_at)

    def all_ended():
        with stack.rt.db.session() as session:
            statuses = session.scalars(
                select(Share.status).where(Share.id.in_([uuid.UUID(s) for s in share_ids]))
            ).all()
        return all(s.value in ("ready", "failed") for s in statuses)

    wait_for(all_ended, 300, "the 20 jobs to end", interval=0.2)
    with stack.rt.db.session() as session:
        rows = session.execute(
            select(Share.id, Share.status, Share.job_attempts, Share.ready_at).where(
                Share.id.in_([uuid.UUID(s) for s in share_ids])
            )
        ).all()
        ready_events = dict(
            session.execute(
                select(AuditEvent.share_id, func.count())
                .where(AuditEvent.action == "share.ready")
                .group_by(AuditEvent.share_id)
            ).all()
        )
    ended = time.monotonic()
    ready = [r for r in rows if r.status.value == "ready"]
    once = [r for r in rows if r.job_attempts == 1 and ready_events.get(r.id) == 1]
    per_worker = []
    for worker in workers:
        text = worker.log_path.read_text(errors="replace")
        done = set(re.findall(r"share ([0-9a-f-]{36}): ready", text)) & set(share_ids)
        per_worker.append(len(done))
    # both logs together name every share exactly once
    overlap = sum(per_worker) - len(ready)
    left = _queue_depth(f"{stack.prefix}media")
    minutes = (ended - began) / 60
    throughput = JOBS / minutes

    test = "scale_out::rabbitmq_two_workers"
    record(
        test,
        "messages queued before the workers started (20 jobs + the upload's probe)",
        queued,
        target=f"{JOBS + 1}",
        passed=queued == JOBS + 1,
        guarantee=SCALE,
    )
    record(
        test,
        "shares ready",
        f"{len(ready)} of {JOBS}",
        target=f"{JOBS} of {JOBS}",
        passed=len(ready) == JOBS,
        guarantee=SCALE,
    )
    record(
        test,
        "shares whose job ran once (1 attempt, 1 share.ready event)",
        f"{len(once)} of {JOBS}",
        target=f"{JOBS} of {JOBS}",
        passed=len(once) == JOBS,
        guarantee=SCALE,
    )
    record(
        test,
        "jobs done by each worker (from their logs)",
        " / ".join(map(str, per_worker)),
        target="both > 0, sum 20",
        passed=all(per_worker) and sum(per_worker) == JOBS,
        guarantee=SCALE,
    )
    record(
        test,
        "messages left in the queue",
        left,
        target="0",
        passed=left == 0,
        guarantee=SCALE,
    )
    record(
        test,
        "throughput, 2 workers × concurrency 1, 12 s 640×360 screen + call audio",
        round(throughput, 1),
        unit="jobs/min",
        passed=True,
        guarantee=SCALE,
    )
    assert len(ready) == JOBS, [r for r in rows if r.status.value != "ready"]
    assert len(once) == JOBS, [(r.id, r.job_attempts, ready_events.get(r.id)) for r in rows]
    assert all(per_worker) and sum(per_worker) == JOBS and overlap == 0, per_worker
    assert left == 0
