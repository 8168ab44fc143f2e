"""The Celery application, bound to a Flask app so tasks run in its app context."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from celery import Celery, Task
from kombu import Queue

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings

MEDIA_QUEUE = "media"
IO_QUEUE = "io"


def queue_names(settings: Settings) -> tuple[str, str]:
    """The media and I/O queue names; a prefix lets deployments (or test runs) share a broker."""
    return settings.queue_prefix + MEDIA_QUEUE, settings.queue_prefix + IO_QUEUE


def broker_options(settings: Settings) -> dict:
    if settings.broker_url.startswith("filesystem"):
        # The embedded default: messages are files in the instance folder, no server needed.
        queue = settings.instance_dir / "broker" / "queue"
        processed = settings.instance_dir / "broker" / "processed"
        control = settings.instance_dir / "broker" / "control"
        for folder in (queue, processed, control):
            Path(folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }
    # Longer than the longest job, or a live worker's job would be handed to a second worker.
    return {"visibility_timeout": settings.visibility_timeout_s}


def create_celery(flask_app: Flask) -> Celery:
    settings: Settings = flask_app.config["CR_SETTINGS"]

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    media_queue, io_queue = queue_names(settings)
    celery = Celery(flask_app.import_name, task_cls=FlaskTask, include=["worker.tasks"])
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=io_queue,
        task_queues=[Queue(media_queue), Queue(io_queue)],
        task_routes={
            "worker.tasks.process_share": {"queue": media_queue},
            "worker.tasks.probe_recording": {"queue": media_queue},
        },
        task_time_limit=settings.job_time_limit_s,
        task_soft_time_limit=max(settings.job_time_limit_s - 30, 5),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule_filename=str(settings.instance_dir / "celerybeat-schedule"),
        beat_schedule={
            "expire-shares": {"task": "worker.tasks.expire_shares", "schedule": 30.0},
            "delete-expired-drafts": {
                "task": "worker.tasks.delete_expired_drafts",
                "schedule": timedelta(minutes=5),
            },
            "resume-stalled-shares": {
                "task": "worker.tasks.resume_stalled_shares",
                "schedule": float(settings.stall_check_s),
            },
            "sweep-scratch": {"task": "worker.tasks.sweep_scratch", "schedule": 600.0},
            "reconcile-store": {
                "task": "worker.tasks.reconcile_store",
                "schedule": timedelta(hours=1),
            },
        },
    )
    celery.set_default()
    flask_app.extensions["celery"] = celery
    return celery
