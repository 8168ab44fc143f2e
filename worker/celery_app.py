"""The worker's Celery app: the shared job configuration plus task code, limits and schedule.

Built from the settings alone: the worker knows the domain services, never the web app.
Each worker process builds its own runtime (database engine, store, keyring) on first use,
after the fork.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from app.jobs import CeleryJobs, JobsCelery, queue_names
from app.runtime import Runtime

if TYPE_CHECKING:
    from app.config import Settings

__all__ = ["create_celery", "queue_names"]


def _schedule(settings: Settings) -> dict:
    return {
        "expire-shares": {"task": "worker.tasks.expire_shares", "schedule": 30.0},
        "delete-expired-drafts": {
            "task": "worker.tasks.delete_expired_drafts",
            "schedule": timedelta(minutes=5),
        },
        "delete-expired-uploads": {
            "task": "worker.tasks.delete_expired_uploads",
            "schedule": timedelta(minutes=5),
        },
        "resume-stalled-shares": {
            "task": "worker.tasks.resume_stalled_shares",
            "schedule": float(settings.stall_check_s),
        },
        "sweep-scratch": {"task": "worker.tasks.sweep_scratch", "schedule": 600.0},
        "notify-ending-shares": {"task": "worker.tasks.notify_ending_shares", "schedule": 600.0},
        "purge-expired-credentials": {
            "task": "worker.tasks.purge_expired_credentials",
            "schedule": 600.0,
        },
        "reconcile-store": {
            "task": "worker.tasks.reconcile_store",
            "schedule": timedelta(hours=1),
        },
    }


def create_celery(settings: Settings) -> JobsCelery:
    celery: JobsCelery

    def build_runtime() -> Runtime:
        runtime = Runtime.from_settings(settings)
        runtime.jobs = CeleryJobs(celery)
        return runtime

    celery = JobsCelery(settings, build_runtime, include=["worker.tasks"])
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.job_time_limit_s,
        task_soft_time_limit=max(settings.job_time_limit_s - 30, 5),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule_filename=str(settings.instance_dir / "celerybeat-schedule"),
        beat_schedule=_schedule(settings),
    )
    return celery
