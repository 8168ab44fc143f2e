"""The parts every entry point shares: settings, database, object store, keyring, KEK
provider, key cache, mail transport.

The web app, the Celery worker and the CLI each build one :class:`Runtime` from the same
settings and pass its parts to the domain services, which know nothing of Flask or Celery.
The web edge reaches the app's runtime through ``app.context.runtime()``; a task through its
Celery app (``app.jobs.JobsCelery.runtime``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import crypto
from app.config import Settings
from app.db import Database
from app.jobs import Jobs, NoJobs
from app.mailer import Mailer, create_mailer
from app.storage import ObjectStore, create_store


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: ObjectStore
    keyring: crypto.FileKeyring  # the receipt-signing keys (and the embedded default's KEKs)
    kek: crypto.KekProvider  # wraps and unwraps the data keys
    key_cache: crypto.DataKeyCache
    mailer: Mailer  # only the worker sends (app.services.mail)
    jobs: Jobs = field(default_factory=NoJobs)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        keyring = crypto.FileKeyring(settings.keyring_path)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            store=create_store(settings),
            keyring=keyring,
            kek=create_kek_provider(settings, keyring),
            key_cache=crypto.DataKeyCache(ttl_seconds=60),
            mailer=create_mailer(settings),
        )


def create_kek_provider(settings: Settings, keyring: crypto.FileKeyring) -> crypto.KekProvider:
    """The KEK provider CR_KEK_PROVIDER names: the keyring file, or an HSM over PKCS#11."""
    if settings.kek_provider == "pkcs11":
        from crypto.pkcs11_kek import Pkcs11Kek

        assert settings.pkcs11_module and settings.pkcs11_token and settings.pkcs11_pin
        return Pkcs11Kek(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin)
    return keyring
