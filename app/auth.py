"""Who is asking, and may they: authentication and role checks in one place.

A request is authenticated either by ``Authorization: Bearer <token>`` (API clients) or by the
signed session cookie (pages). State-changing requests that ride on the cookie must carry a
CSRF token; bearer requests need none, since a browser never attaches the header by itself.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, g, redirect, request, session, url_for

from app.context import close_db_session, db_session
from app.extensions import csrf
from app.models import Role, User
from app.services import users
from app.services.errors import Forbidden, Unauthenticated

F = TypeVar("F", bound=Callable)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Forms that change state before anyone is signed in (login CSRF is a real attack too).
_ANONYMOUS_FORMS = {"pages.login", "pages.logout"}


def current_user() -> User | None:
    return g.get("user")


def _authenticate() -> None:
    g.user = None
    g.auth_method = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "Use 'Authorization: Bearer <token>' with an API token.", code="bad_auth_header"
            )
        user = users.resolve_token(db_session(), token.strip())
        if user is None:
            raise Unauthenticated("The API token is not valid.", code="invalid_token")
        g.user, g.auth_method = user, "token"
        return
    uid = session.get("uid")
    if uid:
        try:
            user = db_session().get(User, uuid.UUID(uid))
        except ValueError:
            user = None
        if user is None or not user.active or session.get("epoch") != _epoch(user):
            session.clear()
            return
        g.user, g.auth_method = user, "session"


def _epoch(user: User) -> str:
    # Tied to the password hash, so a password change ends every session opened with the old one.
    return (user.password_hash or "")[-16:]


def sign_in(user: User) -> None:
    session.clear()
    session["uid"] = str(user.id)
    session["epoch"] = _epoch(user)
    session.permanent = False


def sign_out() -> None:
    session.clear()


def require(*roles: Role, page: bool = False) -> Callable[[F], F]:
    """Allow only signed-in users with one of ``roles`` (any role if none is given)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                if page:
                    return redirect(url_for("pages.login", next=request.full_path))
                raise Unauthenticated("Sign in or send an API token.")
            if roles and user.role not in roles:
                raise Forbidden("Your role does not allow this.")
            return view(*args, **kwargs)

        wrapped.required_roles = roles  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def init_app(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_HEADERS", ["X-CSRFToken", "X-CSRF-Token"])
    csrf.init_app(app)

    @app.before_request
    def authenticate_and_check_csrf():
        _authenticate()
        # Only a browser session can be ridden by a forged request; an anonymous request to an
        # API endpoint gets its 401 (and an unknown path its 404) rather than a CSRF error.
        if (
            request.method in _UNSAFE
            and request.routing_exception is None
            and (g.auth_method == "session" or request.endpoint in _ANONYMOUS_FORMS)
        ):
            csrf.protect()

    app.teardown_appcontext(close_db_session)
