"""The web edge's view of the app in context: its runtime and the request's database session."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from app.runtime import Runtime


def runtime() -> Runtime:
    """The runtime of the Flask app handling this request."""
    return current_app.extensions["consent_replay"]


def db_session() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = runtime().db.sessionmaker()
    return g.db_session


def close_db_session(exc: BaseException | None) -> None:
    db = g.pop("db_session", None)
    if db is not None:
        if exc is not None:
            db.rollback()
        db.close()
