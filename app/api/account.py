"""``/api/v1/me``: the caller's own account — tokens, password, sessions, security log,
e-mail preferences, and the embed button's short-lived upload credential.

Everything here acts on the caller alone. Making a token, changing the password or the e-mail
address and minting an upload credential need the browser session (a bearer token cannot make
itself permanent); listing and revoking work with either.
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, g, url_for
from flask_wtf.csrf import generate_csrf
from marshmallow import validate

from app import websession
from app.api.blueprint import Blueprint
from app.api.schemas import MeSchema, Strict
from app.auth import (
    browser_session,
    current_session_id,
    current_user,
    db_session,
    require,
    require_session,
)
from app.auth import sign_in as start_browser_session
from app.models import Role
from app.services import sessions, users
from app.services.errors import InvalidRequest

me = Blueprint("me", __name__, url_prefix="/api/v1", description="The caller and their account")


class MeUpdateSchema(Strict):
    email = ma.fields.String(allow_none=True, validate=validate.Length(max=254))
    email_notifications = ma.fields.Boolean()
    current_password = ma.fields.String(validate=validate.Length(max=1024))
    # Checked by the domain: an unknown language is a 422 with its own code, not a 400.
    language = ma.fields.String(allow_none=True, validate=validate.Length(max=16))


class TokenCreateSchema(Strict):
    label = ma.fields.String(load_default="", validate=validate.Length(max=120))


class TokenSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    label = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    last_used_at = ma.fields.AwareDateTime(allow_none=True)


class CreatedTokenSchema(TokenSchema):
    token = ma.fields.String(required=True, metadata={"description": "shown once"})


class TokenListSchema(ma.Schema):
    tokens = ma.fields.List(ma.fields.Nested(TokenSchema), required=True)


class RevokedSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    revoked = ma.fields.Boolean(required=True)


class PasswordSchema(Strict):
    current_password = ma.fields.String(load_default=None, validate=validate.Length(max=1024))
    new_password = ma.fields.String(required=True, validate=validate.Length(min=12, max=1024))


class PasswordChangedSchema(ma.Schema):
    changed = ma.fields.Boolean(required=True)
    sessions_ended = ma.fields.Boolean(required=True)


class SessionSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    last_seen_at = ma.fields.AwareDateTime(required=True)
    current = ma.fields.Boolean(required=True)


class SessionListSchema(ma.Schema):
    sessions = ma.fields.List(ma.fields.Nested(SessionSchema), required=True)
    idle_minutes = ma.fields.Integer(required=True)
    max_hours = ma.fields.Integer(required=True)


class EndedSchema(ma.Schema):
    ended = ma.fields.Integer(required=True)


class SecurityEventSchema(ma.Schema):
    at = ma.fields.AwareDateTime(required=True)
    action = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    by = ma.fields.String(required=True)
    method = ma.fields.String(allow_none=True)


class SecurityLogSchema(ma.Schema):
    events = ma.fields.List(ma.fields.Nested(SecurityEventSchema), required=True)


class UploadCredentialSchema(ma.Schema):
    credential = ma.fields.String(
        required=True, metadata={"description": "send as 'Authorization: Bearer …'"}
    )
    scope = ma.fields.String(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)
    upload_url = ma.fields.String(required=True)


def _present_me(user) -> dict:
    body = {
        "id": user.id,
        "name": user.name,
        "role": user.role.value,
        "login": user.login,
        "email": user.email,
        "email_notifications": user.email_notifications,
        "team": user.team.name if user.team else None,
        "has_password": bool(user.password_hash),
        "language": user.language,
    }
    if g.get("auth_method") == "session":
        body["csrf_token"] = generate_csrf()
    return body


def _lifetimes() -> sessions.Lifetimes:
    return websession.lifetimes(current_app)


@me.route("/me", methods=["GET"])
@require()
@me.response(200, MeSchema)
def get_me():
    """Who the caller is: id, name and role (and their own e-mail settings)."""
    return _present_me(current_user())


@me.route("/me", methods=["PATCH"])
@require()
@me.arguments(MeUpdateSchema)
@me.response(200, MeSchema)
def update_me(args):
    """Change one's own e-mail address (in the browser, with the current password if one is
    set), the e-mail notification preference, or the language (``en`` or ``nb``; null for the
    browser's)."""
    session, user = db_session(), current_user()
    if "email" in args:
        require_session()
        if user.password_hash and not users.check_password(user, args.get("current_password", "")):
            raise InvalidRequest(
                "Give your current password to change your e-mail address.",
                code="wrong_password",
            )
        users.set_email(session, user, args["email"], actor_id=user.id, by_admin=False)
    if "email_notifications" in args:
        user.email_notifications = args["email_notifications"]
    if "language" in args:
        users.set_language(user, args["language"])
    session.commit()
    return _present_me(user)


@me.route("/me/tokens", methods=["GET"])
@require()
@me.response(200, TokenListSchema)
def list_tokens():
    """The caller's API tokens: label, when made, when last used (never the token itself)."""
    rows = users.list_tokens(db_session(), current_user())
    return {"tokens": rows}


@me.route("/me/tokens", methods=["POST"])
@require()
@me.arguments(TokenCreateSchema)
@me.response(201, CreatedTokenSchema)
def create_token(args):
    """Make an API token for oneself; it is shown once."""
    require_session()
    session, user = db_session(), current_user()
    row, token = users.create_token(session, user, args["label"], actor_id=user.id)
    session.commit()
    return {
        "id": row.id,
        "label": row.label,
        "created_at": row.created_at,
        "last_used_at": None,
        "token": token,
    }, 201


@me.route("/me/tokens/<string:token_id>", methods=["DELETE"])
@require()
@me.response(200, RevokedSchema)
@me.alt_response(404, description="No such token of yours")
def revoke_token(token_id: str):
    """Revoke one of the caller's API tokens; it stops working at once."""
    session, user = db_session(), current_user()
    users.revoke_token(session, user, token_id)
    session.commit()
    return {"id": token_id, "revoked": True}


@me.route("/me/password", methods=["POST"])
@require()
@me.arguments(PasswordSchema)
@me.response(200, PasswordChangedSchema)
def change_password(args):
    """Set or change one's password (the current one is needed if there is one). Every
    session ends; this browser gets a fresh one."""
    require_session()
    session, user = db_session(), current_user()
    users.change_own_password(session, user, args["current_password"], args["new_password"])
    start_browser_session(user)
    session.commit()
    return {"changed": True, "sessions_ended": True}


@me.route("/me/sessions", methods=["GET"])
@require()
@me.response(200, SessionListSchema)
def list_sessions():
    """Where the caller is signed in: when each session began and was last used."""
    lifetimes = _lifetimes()
    current = current_session_id()
    rows = sessions.list_for(db_session(), current_user().id, lifetimes)
    return {
        "sessions": [
            {
                "id": r.id,
                "created_at": r.created_at,
                "last_seen_at": r.last_seen_at,
                "current": r.id == current,
            }
            for r in rows
        ],
        "idle_minutes": int(lifetimes.idle.total_seconds() // 60),
        "max_hours": int(lifetimes.max_age.total_seconds() // 3600),
    }


@me.route("/me/sessions", methods=["DELETE"])
@require()
@me.response(200, EndedSchema)
def end_sessions():
    """Sign out everywhere: every session of the caller ends, this one included."""
    session, user = db_session(), current_user()
    ended = users.sign_out_everywhere(session, user)
    session.commit()
    browser = browser_session()
    if browser is not None:
        websession.finish(browser)
    return {"ended": ended}


@me.route("/me/security-log", methods=["GET"])
@require()
@me.response(200, SecurityLogSchema)
def security_log():
    """What happened to the caller's account: sign-ins, resets, tokens, password — theirs only."""
    return {"events": users.security_log(db_session(), current_user())}


@me.route("/me/upload-credentials", methods=["POST"])
@require(Role.EMPLOYEE)
@me.response(201, UploadCredentialSchema)
def upload_credential():
    """A short-lived credential for the embed button: it can only upload a private draft of
    the caller (``POST /api/v1/recordings``) and is refused everywhere else."""
    require_session()
    session = db_session()
    token, expires = users.issue_upload_credential(session, current_user())
    session.commit()
    return {
        "credential": token,
        "scope": users.UPLOAD_SCOPE,
        "expires_at": expires,
        "upload_url": url_for("recordings.upload"),
    }, 201
