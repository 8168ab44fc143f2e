"""Sending background jobs by name, so the web app never imports the worker's code."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

log = logging.getLogger(__name__)

PROCESS_SHARE = "worker.tasks.process_share"
PROBE_RECORDING = "worker.tasks.probe_recording"
DELETE_OBJECTS = "worker.tasks.delete_objects"


class Jobs(Protocol):
    def send(self, name: str, *args: str) -> None: ...


class CeleryJobs:
    def __init__(self, celery) -> None:
        self._celery = celery

    def send(self, name: str, *args: str) -> None:
        # Only ids travel through the broker: never keys, titles or media (SPEC §2.3).
        for arg in args:
            uuid.UUID(arg)
        self._celery.send_task(name, args=list(args))
        log.info("job sent: %s %s", name, " ".join(args))
