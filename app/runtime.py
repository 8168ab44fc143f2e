"""The parts every entry point shares: settings, database, object store, keyring, key cache.

The web app, the Celery worker and the CLI each build one :class:`Runtime` from the same
settings and pass its parts to the domain services, which know nothing of Flask or Celery.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

import crypto
from app.config import Settings
from app.db import Database
from app.jobs import Jobs
from app.storage import ObjectStore, create_store


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: ObjectStore
    keyring: crypto.FileKeyring
    key_cache: crypto.DataKeyCache
    jobs: Jobs | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            store=create_store(settings),
            keyring=crypto.FileKeyring(settings.keyring_path),
            key_cache=crypto.DataKeyCache(ttl_seconds=60),
        )


def runtime() -> Runtime:
    """The runtime of the Flask app in context (web requests and Celery tasks alike)."""
    return current_app.extensions["consent_replay"]
