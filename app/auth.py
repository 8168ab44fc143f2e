"""Who is asking, and may they: authentication and role checks in one place.

A request is authenticated either by ``Authorization: Bearer <token>`` (API clients) or by the
session cookie (pages; the session lives on the server, ``app.websession``). State-changing
requests that ride on the cookie must carry a CSRF token; bearer requests need none, since a
browser never attaches the header by itself.

A bearer credential with a scope (the embed button's short-lived upload credential) is
accepted only by the endpoints :data:`SCOPES` lists for it, and refused everywhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, g, redirect, request, session, url_for

from app import websession
from app.context import close_db_session, db_session
from app.extensions import csrf
from app.models import Role, User
from app.services import sessions, users
from app.services.errors import Forbidden, Unauthenticated

F = TypeVar("F", bound=Callable)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Forms that change state before anyone is signed in (login CSRF is a real attack too).
_ANONYMOUS_FORMS = {"pages.login", "pages.logout", "pages.account_link", "i18n.switch_language"}

# What a scoped credential may reach: endpoint names per scope. Everything else refuses it.
# Resumable uploads (tus, /api/v1/uploads) add their endpoints to "upload" here.
SCOPES: dict[str, frozenset[str]] = {
    # Send files (multipart, or tus: create, resume from the offset, send, cancel one's own
    # upload), and make the draft from them; not list, read, share or revoke.
    users.UPLOAD_SCOPE: frozenset(
        {
            "recordings.upload",
            "uploads.create_upload",
            "uploads.get_upload",
            "uploads.append",
            "uploads.terminate",
        }
    ),
}
SCOPE_PURPOSE = {users.UPLOAD_SCOPE: "upload a private draft recording"}


def current_user() -> User | None:
    return g.get("user")


def browser_session() -> websession.ServerSession | None:
    """This request's session object (not Flask's proxy to it)."""
    current = session._get_current_object()  # type: ignore[attr-defined]
    return current if isinstance(current, websession.ServerSession) else None


def _bearer(header: str) -> None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Use 'Authorization: Bearer <token>' with an API token.", code="bad_auth_header"
        )
    db = db_session()
    row = users.resolve_credential(db, token.strip())
    if row is None:
        raise Unauthenticated("The API token is not valid (or has expired).", code="invalid_token")
    if row.scope is not None and request.endpoint not in SCOPES.get(row.scope, frozenset()):
        raise Forbidden(
            f"This credential may only {SCOPE_PURPOSE.get(row.scope, 'do one thing')}.",
            code="insufficient_scope",
        )
    if db.is_modified(row):
        db.commit()  # last_used_at, shown on the owner's account page
    g.user, g.auth_method, g.token_scope = row.user, "token", row.scope


def _authenticate() -> None:
    g.user = g.auth_method = g.token_scope = None
    header = request.headers.get("Authorization")
    if header is not None:
        _bearer(header)
        return
    browser = browser_session()
    if browser is None or browser.user_id is None:
        return
    user = db_session().get(User, browser.user_id)
    if user is None or not user.active:
        sign_out()
        return
    g.user, g.auth_method = user, "session"


def sign_in(user: User) -> None:
    """Start a new server-side session for ``user`` in this browser (the caller commits)."""
    db = db_session()
    browser = browser_session()
    assert browser is not None
    if browser.session_id is not None:
        sessions.end(db, browser.session_id)
    cookie, session_id = sessions.start(db, user.id)
    websession.begin(browser, cookie, session_id, user.id)
    g.user, g.auth_method = user, "session"


def sign_out() -> None:
    """End this browser's session (the row goes, so a copy of the cookie stops working too)."""
    browser = browser_session()
    if browser is not None:
        if browser.session_id is not None:
            db = db_session()
            sessions.end(db, browser.session_id)
            db.commit()
        websession.finish(browser)
    g.user = g.auth_method = None


def current_session_id():
    browser = browser_session()
    return browser.session_id if browser is not None else None


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


def require_session() -> None:
    """Refuse a bearer token where only the person in their browser may act: making tokens,
    changing the password or the e-mail address, minting upload credentials. A leaked token
    must not be able to make itself permanent."""
    if g.get("auth_method") != "session":
        raise Forbidden(
            "Do this on your account page, signed in; an API token cannot.",
            code="session_required",
        )


def init_app(app: Flask) -> None:
    app.session_interface = websession.ServerSessionInterface()
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
