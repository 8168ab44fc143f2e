"""Flask's session, kept on the server once someone signs in (finding 5 of issue 12).

- Signed in: the cookie holds a random id (``s1.…``) and nothing else; the row in
  ``web_sessions`` (its SHA-256, the user, the CSRF secret, two times) is the session. Deleting
  the row ends it: a copied cookie stops working at sign-out, "sign out everywhere", a password
  change, a reset or deactivation, and after the idle or absolute lifetime.
- Not signed in: Flask's signed cookie, holding only the CSRF secret of the sign-in form (no
  row per anonymous visitor, so nobody can fill the table by loading the sign-in page).

Under https the cookie is ``__Host-cr_session``: Secure, ``Path=/``, no ``Domain``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import BadSignature
from werkzeug.datastructures import CallbackDict

from app.services import sessions

# An anonymous session (the sign-in form's CSRF secret) is good for this long.
ANONYMOUS_MAX_AGE = timedelta(hours=12)


class ServerSession(CallbackDict, SessionMixin):
    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        *,
        cookie: str | None = None,
        session_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
    ) -> None:
        def on_update(this: ServerSession) -> None:
            this.modified = True

        super().__init__(initial, on_update)
        self.cookie = cookie  # the signed-in cookie's value (the random id)
        self.session_id = session_id
        self.user_id = user_id
        self.modified = False
        self.send_cookie = False  # (re)send the cookie: a new session
        self.drop_cookie = False  # delete the cookie: ended, expired or unknown


def lifetimes(app: Flask) -> sessions.Lifetimes:
    settings = app.config["CR_SETTINGS"]
    return sessions.Lifetimes.of(settings.session_idle_minutes, settings.session_max_hours)


class ServerSessionInterface(SecureCookieSessionInterface):
    session_class = ServerSession

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        if request.path.startswith(f"{app.static_url_path}/"):
            return ServerSession()  # static files need no session (and never change it)
        raw = request.cookies.get(self.get_cookie_name(app))
        if not raw:
            return ServerSession()
        if raw.startswith(sessions.PREFIX):
            with app.extensions["consent_replay"].db.session() as db:
                found = sessions.resolve(db, raw, lifetimes(app))
            if found is None:
                ended = ServerSession()
                ended.drop_cookie = True
                return ended
            return ServerSession(found.data, cookie=raw, session_id=found.id, user_id=found.user_id)
        serializer = self.get_signing_serializer(app)
        try:
            data = serializer.loads(raw, max_age=int(ANONYMOUS_MAX_AGE.total_seconds()))
        except BadSignature:
            data = None
        if not isinstance(data, dict) or "uid" in data:
            # Tampered, too old, or a cookie of the old kind: start afresh.
            stale = ServerSession()
            stale.drop_cookie = True
            return stale
        return ServerSession(data)

    def _cookie_options(self, app: Flask) -> dict[str, Any]:
        return {
            "domain": None,
            "path": "/",
            "secure": self.get_cookie_secure(app),
            "httponly": True,
            "samesite": self.get_cookie_samesite(app),
        }

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = self.get_cookie_name(app)
        options = self._cookie_options(app)
        if session.session_id is not None:
            if session.modified:
                with app.extensions["consent_replay"].db.session() as db:
                    sessions.save_data(db, session.session_id, dict(session))
            if session.send_cookie and session.cookie:
                response.set_cookie(name, session.cookie, **options)
            response.vary.add("Cookie")
            return
        if not session:
            if session.drop_cookie or session.modified:
                response.delete_cookie(
                    name, domain=None, path="/", secure=options["secure"], samesite="Lax"
                )
            return
        if session.modified or session.drop_cookie:
            value = self.get_signing_serializer(app).dumps(dict(session))
            response.set_cookie(name, value, **options)
        response.vary.add("Cookie")


def begin(session: ServerSession, cookie: str, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Make ``session`` the new signed-in session (nothing of the anonymous one carries over)."""
    dict.clear(session)
    session.cookie, session.session_id, session.user_id = cookie, session_id, user_id
    session.send_cookie, session.drop_cookie, session.modified = True, False, False


def finish(session: ServerSession) -> None:
    """Forget the session in this response: the cookie is deleted."""
    dict.clear(session)
    session.cookie = session.session_id = session.user_id = None
    session.send_cookie, session.drop_cookie, session.modified = False, True, False
