"""Celery tasks: thin wrappers that take ids and call the plain functions of the pipeline.

Retry by kind of failure: a bad file fails its share at once (no retry); a storage or database
outage retries with exponential backoff; a share whose lease another worker holds is retried
after that lease would run out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError

from app import jobs
from app.mailer import MailError
from app.models import Recording, RecordingStatus, Share, ShareStatus, utcnow
from app.runtime import Runtime
from app.services import account_links, mail, oidc, sessions, shares, shredding, uploads, users
from app.services import job_messages as M
from app.services.job_messages import say
from app.storage import StorageError
from worker import pipeline

log = logging.getLogger(__name__)

TRANSIENT = (StorageError, OperationalError, ConnectionError, TimeoutError)
MAX_RETRIES = 6


def _backoff(retries: int) -> int:
    return min(5 * 2**retries, 300)


def runtime(task) -> Runtime:
    """The runtime of the Celery app the task runs on (built once per worker process)."""
    return task.app.runtime


@shared_task(bind=True, name=jobs.PROCESS_SHARE, max_retries=MAX_RETRIES)
def process_share(self, share_id: str) -> str:
    rt = runtime(self)
    sid = uuid.UUID(share_id)
    try:
        outcome = pipeline.process_share(rt, sid)
    except pipeline.LeaseHeld as held:
        raise self.retry(countdown=held.retry_in, max_retries=None) from None
    except SoftTimeLimitExceeded:
        pipeline.fail_share(rt, sid, say(M.TIME_LIMIT))
        return "failed"
    except TRANSIENT as exc:
        if self.request.retries >= MAX_RETRIES:
            pipeline.fail_share(rt, sid, say(M.STORE_UNAVAILABLE))
            return "failed"
        log.warning("share %s: transient failure (%s); retrying", share_id, type(exc).__name__)
        raise self.retry(countdown=_backoff(self.request.retries)) from None
    except Exception:
        # A bug or an unforeseen error: retrying would fail the same way, and leaving the share
        # in "processing" would show the employee a job that never ends. The pipeline has
        # already removed its uploads and scratch directory.
        log.exception("share %s: unexpected failure", share_id)
        pipeline.fail_share(rt, sid, say(M.UNEXPECTED))
        return "failed"
    log.info("share %s: %s %s", share_id, outcome.result, outcome.detail)
    return outcome.result


@shared_task(bind=True, name=jobs.PROBE_RECORDING, max_retries=MAX_RETRIES)
def probe_recording(self, recording_id: str) -> str:
    try:
        return pipeline.probe_recording(runtime(self), uuid.UUID(recording_id))
    except TRANSIENT:
        raise self.retry(countdown=_backoff(self.request.retries)) from None


@shared_task(bind=True, name=jobs.SUGGEST_REDACTIONS, max_retries=MAX_RETRIES)
def suggest_redactions(self, recording_id: str) -> str:
    rid = uuid.UUID(recording_id)
    try:
        return pipeline.suggest_redactions(runtime(self), rid)
    except TRANSIENT:
        if self.request.retries < MAX_RETRIES:
            raise self.retry(countdown=_backoff(self.request.retries)) from None
        error = "Storage or the database was unavailable for too long; try again later."
    except Exception:
        # A bug or an unforeseen file: record it rather than leave "pending" forever.
        log.exception("suggestions for %s: unexpected failure", recording_id)
        error = "Reading the screen failed unexpectedly; try again."
    return pipeline.record_suggestions(runtime(self), rid, "failed", error=error)


@shared_task(bind=True, name=jobs.DELETE_OBJECTS, max_retries=None)
def delete_objects(self, share_id: str) -> str:
    """Finish deleting a revoked share's objects when the store was down at revoke time."""
    try:
        shredding.finish_share_deletion(runtime(self), uuid.UUID(share_id))
    except TRANSIENT:
        raise self.retry(countdown=_backoff(min(self.request.retries, 6))) from None
    return "deleted"


@shared_task(bind=True, name=jobs.DELETE_RECORDING_OBJECTS, max_retries=None)
def delete_recording_objects(self, recording_id: str) -> str:
    """Finish deleting a deleted recording's objects when the store was down at the time."""
    try:
        shredding.finish_recording_deletion(runtime(self), uuid.UUID(recording_id))
    except TRANSIENT:
        raise self.retry(countdown=_backoff(min(self.request.retries, 6))) from None
    return "deleted"


@shared_task(bind=True, name=jobs.SEND_MAIL, max_retries=None)
def send_mail(self, mail_id: str) -> str:
    """Send one owed e-mail; retried with backoff while the mail server fails, then recorded
    as failed (admins see a count and a list). Never touched by a request: nobody waits."""
    rt = runtime(self)
    mid = uuid.UUID(mail_id)
    try:
        return mail.deliver(rt, mid, attempt=self.request.retries + 1)
    except MailError as exc:
        if exc.permanent or self.request.retries >= rt.settings.mail_retries:
            log.warning("mail %s failed for good (%s)", mail_id, exc.kind)
            mail.record_failure(rt, mid, exc)
            return "failed"
        countdown = min(rt.settings.mail_retry_s * 2**self.request.retries, 3600)
        log.warning("mail %s: %s; retrying in %d s", mail_id, exc.kind, countdown)
        raise self.retry(countdown=countdown) from None
    except TRANSIENT:
        raise self.retry(countdown=_backoff(min(self.request.retries, 6))) from None


@shared_task(bind=True, name="worker.tasks.purge_expired_credentials")
def purge_expired_credentials(self) -> int:
    """Sessions past their idle or absolute lifetime, expired upload credentials, old links and
    expired sign-in states go (each is refused when used anyway; this keeps the tables small)."""
    rt = runtime(self)
    lifetimes = sessions.Lifetimes.of(
        rt.settings.session_idle_minutes, rt.settings.session_max_hours
    )
    with rt.db.session() as session:
        return (
            sessions.purge_expired(session, lifetimes)
            + users.purge_expired_credentials(session)
            + account_links.purge(session)
            + oidc.purge_expired(session)
        )


@shared_task(bind=True, name="worker.tasks.expire_shares")
def expire_shares(self) -> int:
    """Shares past their end date go through the same path as a revoke."""
    rt = runtime(self)
    with rt.db.session() as session:
        due = list(
            session.scalars(
                select(Share.id)
                .where(
                    Share.expires_at <= utcnow(),
                    Share.status.in_(
                        [ShareStatus.PROCESSING, ShareStatus.READY, ShareStatus.FAILED]
                    ),
                )
                .limit(500)
            )
        )
    for share_id in due:
        shredding.end_share(rt, share_id, reason="expired", actor_id=None)
    return len(due)


@shared_task(bind=True, name="worker.tasks.notify_ending_shares")
def notify_ending_shares(self) -> int:
    """Employees whose shares end in two days are told by e-mail (once each)."""
    rt = runtime(self)
    with rt.db.session() as session:
        return shares.notify_ending(session, rt)


@shared_task(bind=True, name="worker.tasks.delete_expired_drafts")
def delete_expired_drafts(self) -> int:
    """Drafts past their lifetime are shredded, unless a share of them is still active."""
    rt = runtime(self)
    active = select(Share.recording_id).where(
        Share.status.in_([ShareStatus.PROCESSING, ShareStatus.READY])
    )
    with rt.db.session() as session:
        due = list(
            session.scalars(
                select(Recording.id)
                .where(
                    Recording.status == RecordingStatus.DRAFT,
                    Recording.expires_at <= utcnow(),
                    Recording.id.not_in(active),
                )
                .limit(500)
            )
        )
    for recording_id in due:
        with rt.db.session() as session:
            ended = list(
                session.scalars(select(Share.id).where(Share.recording_id == recording_id))
            )
        for share_id in ended:
            shredding.end_share(rt, share_id, reason="recording_deleted", actor_id=None)
        shredding.shred_recording(rt, recording_id, reason="draft_lifetime_ended", actor_id=None)
    return len(due)


@shared_task(bind=True, name="worker.tasks.delete_expired_uploads")
def delete_expired_uploads(self) -> int:
    """Resumable uploads past the draft lifetime: pieces deleted, key shredded (SPEC §16)."""
    deleted = uploads.delete_expired(runtime(self))
    if deleted:
        log.info("deleted %d expired upload(s)", deleted)
    return deleted


@shared_task(bind=True, name="worker.tasks.resume_stalled_shares")
def resume_stalled_shares(self) -> int:
    """Re-send the jobs that a dead worker or a lost message left undone.

    A share whose lease ran out lost its worker; a share or a recording's probe that never
    started after a while lost its message (a broker that was down, or one that keeps nothing
    on restart). A job sent twice does its work once: the share job holds a lease, and a probe
    only fills in what is still pending.
    """
    rt = runtime(self)
    now = utcnow()
    never_started = now - timedelta(seconds=max(60, 12 * rt.settings.stall_check_s))
    with rt.db.session() as session:
        stalled = list(
            session.scalars(
                select(Share.id)
                .where(
                    Share.status == ShareStatus.PROCESSING,
                    or_(
                        Share.job_lease_until < now,
                        Share.job_lease_until.is_(None)
                        & (Share.created_at < never_started)
                        & (Share.job_attempts == 0),
                    ),
                )
                .limit(100)
            )
        )
        unprobed = list(
            session.scalars(
                select(Recording.id)
                .where(
                    Recording.status == RecordingStatus.DRAFT,
                    Recording.probe_status == "pending",
                    Recording.created_at < never_started,
                )
                .limit(100)
            )
        )
    for share_id in stalled:
        log.warning("share %s stalled; sending its job again", share_id)
        rt.jobs.send(jobs.PROCESS_SHARE, str(share_id))
    for recording_id in unprobed:
        log.warning("recording %s was never probed; sending its probe again", recording_id)
        rt.jobs.send(jobs.PROBE_RECORDING, str(recording_id))
    return len(stalled) + len(unprobed)


@shared_task(bind=True, name="worker.tasks.sweep_scratch")
def sweep_scratch(self) -> int:
    removed = pipeline.sweep_scratch(runtime(self).settings.scratch_dir)
    if removed:
        log.warning(
            "removed %d scratch director%s left by killed jobs",
            len(removed),
            "y" if len(removed) == 1 else "ies",
        )
    return len(removed)


@shared_task(bind=True, name="worker.tasks.reconcile_store")
def reconcile_store(self) -> dict:
    """Objects with no row are deleted; rows with no object are reported."""
    from app.services.reconcile import reconcile

    report = reconcile(runtime(self))
    if report["orphans_deleted"] or report["missing"] or report["multipart_aborted"]:
        log.warning("reconcile: %s", report)
    return report


@worker_ready.connect
def _sweep_on_start(**_kwargs) -> None:
    # Scratch directories are per machine, so each worker sweeps its own at start.
    from app.config import load_settings

    removed = pipeline.sweep_scratch(load_settings().scratch_dir)
    if removed:
        log.warning("removed %d scratch directories left by killed jobs", len(removed))
