"""Background jobs: their names, the broker's configuration, and a sender.

The web app and the CLI send jobs by name through a Celery app built here from the settings;
the worker (``worker.celery_app``) builds its Celery app from the same configuration and adds
the task code, time limits and the schedule. So neither side imports the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from celery import Celery
from kombu import Queue

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

PROCESS_SHARE = "worker.tasks.process_share"
PROBE_RECORDING = "worker.tasks.probe_recording"
SUGGEST_REDACTIONS = "worker.tasks.suggest_redactions"
DELETE_OBJECTS = "worker.tasks.delete_objects"
DELETE_RECORDING_OBJECTS = "worker.tasks.delete_recording_objects"
SEND_MAIL = "worker.tasks.send_mail"

MEDIA_QUEUE = "media"
IO_QUEUE = "io"


class Jobs(Protocol):
    def send(self, name: str, *args: str) -> None: ...


class NoJobs:
    """The sender of a runtime not connected to a broker: sending is a bug, said loudly."""

    def send(self, name: str, *args: str) -> None:
        raise RuntimeError(f"this runtime sends no jobs (tried {name})")


def queue_names(settings: Settings) -> tuple[str, str]:
    """The media and I/O queue names; a prefix lets deployments (or test runs) share a broker."""
    return settings.queue_prefix + MEDIA_QUEUE, settings.queue_prefix + IO_QUEUE


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_url.startswith("filesystem"):
        # The embedded default: messages are files in the instance folder, no server needed.
        folders = {
            name: settings.instance_dir / "broker" / name
            for name in ("queue", "processed", "control")
        }
        for folder in folders.values():
            Path(folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        return {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        }
    # Longer than the longest job, or a live worker's job would be handed to a second worker.
    return {"visibility_timeout": settings.visibility_timeout_s}


def celery_config(settings: Settings) -> dict[str, Any]:
    """What sender and worker must agree on: broker, queues, routes, serialisation."""
    media_queue, io_queue = queue_names(settings)
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": broker_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": io_queue,
        "task_queues": [Queue(media_queue), Queue(io_queue)],
        "task_routes": {
            PROCESS_SHARE: {"queue": media_queue},
            PROBE_RECORDING: {"queue": media_queue},
            SUGGEST_REDACTIONS: {"queue": media_queue},
        },
    }


class JobsCelery(Celery):
    """A Celery app that knows the runtime its tasks work with.

    The runtime is made on first use, in the process that uses it (a worker builds its own
    after the fork), or handed in by the web app, which already has one.
    """

    def __init__(self, settings: Settings, runtime_factory: Callable[[], Any], **kwargs) -> None:
        super().__init__("consent_replay", **kwargs)
        self.conf.update(celery_config(settings))
        self.cr_settings = settings
        self._runtime_factory = runtime_factory
        self._runtime: Any = None

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            self._runtime = self._runtime_factory()
        return self._runtime


class CeleryJobs:
    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def send(self, name: str, *args: str) -> None:
        # Only ids travel through the broker: never keys, titles or media (SPEC §2.3).
        for arg in args:
            uuid.UUID(arg)
        self._celery.send_task(name, args=list(args))
        log.info("job sent: %s %s", name, " ".join(args))


def connect(settings: Settings, runtime: Any) -> JobsCelery:
    """The sender of a web app or CLI: jobs go to the broker; ``runtime.jobs`` is set."""
    celery = JobsCelery(settings, lambda: runtime)
    runtime.jobs = CeleryJobs(celery)
    return celery
