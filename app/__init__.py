"""consent-replay: consent-first call and screen coaching.

The package is layered (see docs/ARCHITECTURE.md and the import contracts in
``.importlinter``): the web edge (``app.api``, ``app.pages``, ``app.auth``) and the worker
(``worker``) call the domain services (``app.services``), which work over the database
(``app.models``, ``app.db``), the object store (``app.storage``) and the crypto API
(``crypto``). ``create_app`` (in ``app.factory``) builds the web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The web application (see :func:`app.factory.create_app`)."""
    from app.factory import create_app as factory

    return factory(settings)
