"""Accounts: users, roles, passwords (Argon2id) and API tokens (stored as SHA-256 hashes).

Credentials reach only their owner (SPEC §2.5, issue 12): a person makes their own tokens and
sets their own password; an admin can only have a single-use link sent to the person's own
address (``app.services.mail``), and only the operator's CLI prints one. No function here
hands a credential to anyone but the person it belongs to, except the CLI's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import AccountLink, ApiToken, AuditEvent, Role, Team, User, utcnow
from app.services import audit, i18n, sessions, text
from app.services.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unprocessable

TOKEN_PREFIX = "cr_"  # noqa: S105 - a prefix, not a secret
UPLOAD_SCOPE = "upload"
UPLOAD_CREDENTIAL_MINUTES = 15
NEW_ACCOUNT_DAYS = 14
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
# The HTML form's definition of a valid e-mail address (printable ASCII, no quoting).
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_hasher = PasswordHasher()
# Verified against when the login is unknown, so a miss costs as much time as a hit.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_password(password: str) -> None:
    if len(password) < 12:
        raise InvalidRequest("A password needs at least 12 characters.", code="weak_password")
    if len(password) > 1024:
        raise InvalidRequest("A password can have at most 1024 characters.", code="weak_password")


def normalise_email(email: str | None) -> str | None:
    """A plain address (``name@example.org``), or None for none; anything else is refused."""
    if email is None or not email.strip():
        return None
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidRequest(
            "That is not an e-mail address (expected name@example.org).", code="invalid_email"
        )
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def _check_login(login: str) -> str:
    login = login.strip().lower()
    if not _LOGIN.match(login):
        raise InvalidRequest(
            "A login is 2-63 lowercase letters, digits, dots, dashes or underscores.",
            code="invalid_login",
        )
    return login


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRequest(
            f"Unknown role {role!r}; use one of {', '.join(r.value for r in Role)}.",
            code="invalid_role",
        ) from None


def create_user(
    session: Session,
    *,
    login: str,
    name: str,
    role: Role | str,
    password: str | None = None,
    team_id: uuid.UUID | None = None,
    email: str | None = None,
    actor_id: uuid.UUID | None = None,
) -> User:
    login = _check_login(login)
    name = text.check("name", name)
    if not name or len(name) > 200:
        raise InvalidRequest("A name has 1-200 characters.", code="invalid_name")
    role = _check_role(role)
    address = normalise_email(email)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise Conflict(f"The login {login!r} is taken.", code="login_taken")
    user = User(login=login, name=name, role=role, team_id=team_id, email=address)
    if password is not None:
        validate_password(password)
        user.password_hash = _hasher.hash(password)
        user.enrolled_at = utcnow()
    session.add(user)
    session.flush()
    audit.append(
        session,
        "user.created",
        actor_id=actor_id,
        detail={"user": str(user.id), "role": role.value},
    )
    return user


def _mark_enrolled(user: User) -> None:
    if user.enrolled_at is None:
        user.enrolled_at = utcnow()


# --- passwords --------------------------------------------------------------------------------


def set_password(
    session: Session, user: User, password: str, *, actor_id: uuid.UUID | None
) -> None:
    """A new password ends every session of the person (each browser signs in again)."""
    validate_password(password)
    user.password_hash = _hasher.hash(password)
    _mark_enrolled(user)
    sessions.end_all(session, user.id)
    audit.append(session, "user.password_changed", actor_id=actor_id, detail={"user": str(user.id)})


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return bool(_hasher.verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def change_own_password(session: Session, user: User, current: str | None, new: str) -> None:
    if user.password_hash and not check_password(user, current or ""):
        raise Forbidden("Your current password is not right.", code="wrong_password")
    set_password(session, user, new, actor_id=user.id)


def authenticate_password(session: Session, login: str, password: str) -> User | None:
    login = login.strip().lower()
    # Not a possible login (a NUL, say, which PostgreSQL refuses): no query, same time spent.
    user = session.scalar(select(User).where(User.login == login)) if _LOGIN.match(login) else None
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def record_sign_in(session: Session, user: User, method: str) -> bool:
    """Log a sign-in in the person's security log; True if a reset waits to be shown."""
    _mark_enrolled(user)
    audit.append(
        session, "user.signed_in", actor_id=user.id, detail={"user": str(user.id), "by": method}
    )
    return user.reset_notice_at is not None


# --- API tokens -------------------------------------------------------------------------------


def create_token(
    session: Session, user: User, label: str = "", *, actor_id: uuid.UUID | None = None
) -> tuple[ApiToken, str]:
    """A full API token of ``user``; the plaintext is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    label = label.strip()[:120]
    if any(not ch.isprintable() for ch in label):
        raise InvalidRequest("A token label is plain text on one line.", code="invalid_label")
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), label=label)
    session.add(row)
    session.flush()
    _mark_enrolled(user)
    audit.append(
        session,
        "user.token_created",
        actor_id=actor_id,
        detail={"user": str(user.id), "token": str(row.id)},
    )
    return row, token


def issue_token(session: Session, user: User, label: str = "") -> str:
    """For the operator's CLI and the tests: a token for the person the operator serves."""
    return create_token(session, user, label)[1]


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.scope.is_(None))
            .order_by(ApiToken.created_at.desc())
        )
    )


def revoke_token(session: Session, user: User, token_id: str) -> None:
    try:
        wanted = uuid.UUID(token_id)
    except ValueError:
        raise NotFound("token") from None
    row = session.get(ApiToken, wanted)
    if row is None or row.user_id != user.id or row.scope is not None:
        raise NotFound("token")
    session.delete(row)
    audit.append(
        session,
        "user.token_revoked",
        actor_id=user.id,
        detail={"user": str(user.id), "token": str(row.id)},
    )


def issue_upload_credential(
    session: Session, user: User, minutes: int = UPLOAD_CREDENTIAL_MINUTES
) -> tuple[str, datetime]:
    """A short-lived credential that can only upload private drafts of ``user`` (the embed
    button's): refused by every other endpoint (``app/auth.SCOPES``)."""
    if user.role != Role.EMPLOYEE:
        raise Forbidden("Only employees upload recordings.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(minutes=minutes)
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            label="upload",
            scope=UPLOAD_SCOPE,
            expires_at=expires,
        )
    )
    return token, expires


def resolve_credential(session: Session, token: str) -> ApiToken | None:
    """The live token row a bearer value names (its user active, not expired), or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = utcnow()
    if not row.user.active or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return row


def resolve_token(session: Session, token: str) -> User | None:
    row = resolve_credential(session, token)
    return None if row is None else row.user


def purge_expired_credentials(session: Session) -> int:
    result = session.execute(
        delete(ApiToken).where(ApiToken.expires_at.is_not(None), ApiToken.expires_at <= utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- the account's state ----------------------------------------------------------------------


def end_credentials(session: Session, user: User) -> None:
    """Every API token, upload credential, session and unused link of ``user`` ends."""
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(
        delete(AccountLink).where(AccountLink.user_id == user.id, AccountLink.used_at.is_(None))
    )
    sessions.end_all(session, user.id)


def reset(session: Session, user: User, *, actor_id: uuid.UUID | None) -> None:
    """End everything that signs in as ``user``; shown to them at their next sign-in, in their
    security log, and counted (weekly, small counts suppressed) in oversight."""
    end_credentials(session, user)
    user.reset_notice_at = utcnow()
    audit.append(
        session,
        "user.reset",
        actor_id=actor_id,
        detail={"user": str(user.id), "by": "operator" if actor_id is None else "admin"},
    )


def sign_out_everywhere(session: Session, user: User) -> int:
    ended = sessions.end_all(session, user.id)
    audit.append(
        session, "user.signed_out_everywhere", actor_id=user.id, detail={"user": str(user.id)}
    )
    return ended


def set_active(
    session: Session, user: User, active: bool, *, actor_id: uuid.UUID | None = None
) -> None:
    user.active = active
    if not active:
        end_credentials(session, user)
    audit.append(
        session,
        "user.activated" if active else "user.deactivated",
        actor_id=actor_id,
        detail={"user": str(user.id)},
    )


def set_language(user: User, language: str | None) -> None:
    """The person's own language; None goes back to the browser's choice."""
    if language is not None and language not in i18n.LANGUAGES:
        raise Unprocessable(
            i18n._(
                "The language must be one of: %(languages)s.", languages=", ".join(i18n.LANGUAGES)
            ),
            code="unsupported_language",
        )
    user.language = language


def set_email(
    session: Session, user: User, email: str | None, *, actor_id: uuid.UUID | None, by_admin: bool
) -> None:
    """Set the person's address. An admin may do it only before the person ever held a
    credential: afterwards a reset link sent there could reach the admin instead."""
    address = normalise_email(email)
    if address == user.email:
        return
    if by_admin and user.enrolled_at is not None:
        raise Conflict(
            f"{user.name} has already signed in, so only they (on their account page) or the "
            "operator (consent-replay users set-email) can change their e-mail address.",
            code="email_locked",
        )
    user.email = address
    audit.append(session, "user.email_changed", actor_id=actor_id, detail={"user": str(user.id)})


def take_reset_notice(user: User) -> datetime | None:
    """The reset not yet shown to the person, if any; shown once."""
    moment, user.reset_notice_at = user.reset_notice_at, None
    return moment


# --- the person's security log ----------------------------------------------------------------

ACCOUNT_EVENTS = {
    "user.created": "Your account was created",
    "user.signed_in": "Signed in",
    "user.signed_out_everywhere": "Signed out everywhere",
    "user.password_changed": "Password set or changed",
    "user.token_created": "API token made",
    "user.token_revoked": "API token revoked",
    "user.reset": "Account reset: every session and API token ended",
    "user.link_sent": "Sign-in link sent to your e-mail",
    "user.link_used": "Sign-in link used",
    "user.email_changed": "E-mail address changed",
    "user.deactivated": "Account deactivated",
    "user.activated": "Account reactivated",
}


def _by(event: AuditEvent, user: User, names: dict[uuid.UUID, str]) -> str:
    if event.actor_id == user.id:
        return "you"
    if event.actor_id is None:
        return "the operator"
    return f"{names.get(event.actor_id, 'someone')} (admin)"


def security_log(session: Session, user: User, limit: int = 200) -> list[dict[str, Any]]:
    """What happened to the person's account, newest first: their own events only."""
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action.in_(list(ACCOUNT_EVENTS)),
                AuditEvent.detail["user"].as_string() == str(user.id),
            )
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        )
    )
    actors = {e.actor_id for e in events if e.actor_id and e.actor_id != user.id}
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(actors))).all())
    return [
        {
            "at": event.at,
            "action": event.action,
            "description": ACCOUNT_EVENTS[event.action],
            "by": _by(event, user, names),
            "method": (event.detail or {}).get("by") if event.action == "user.signed_in" else None,
        }
        for event in events
    ]


# --- looking people up ------------------------------------------------------------------------


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    return user


def get_user_by_text_id(session: Session, user_id: str) -> User:
    try:
        return get_user(session, uuid.UUID(user_id))
    except ValueError:
        raise NotFound("user") from None


def get_user_by_login(session: Session, login: str) -> User:
    login = login.strip().lower()
    user = session.scalar(select(User).where(User.login == login)) if _LOGIN.match(login) else None
    if user is None:
        raise NotFound("user")
    return user


def list_users(session: Session, role: Role | None = None) -> list[User]:
    query = select(User).order_by(User.name)
    if role is not None:
        query = query.where(User.role == role)
    return list(session.scalars(query))


def coach_choices(session: Session) -> list[dict[str, Any]]:
    """The coaches an employee may pick, told apart: login, team, a new account marked, and
    whether another coach has the same name (a look-alike must not pass as the first)."""
    coaches = [c for c in list_users(session, Role.COACH) if c.active]
    same_name = Counter(c.name.casefold() for c in coaches)
    recent = utcnow() - timedelta(days=NEW_ACCOUNT_DAYS)
    return [
        {
            "id": c.id,
            "name": c.name,
            "login": c.login,
            "team": c.team.name if c.team else None,
            "created_at": c.created_at,
            "new_account": c.created_at >= recent,
            "name_shared": same_name[c.name.casefold()] > 1,
        }
        for c in coaches
    ]


def create_team(session: Session, name: str, *, actor_id: uuid.UUID | None = None) -> Team:
    name = text.check("name", name)
    if not name or len(name) > 200:
        raise InvalidRequest("A team name has 1-200 characters.", code="invalid_name")
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"A team named {name!r} exists.", code="team_exists")
    team = Team(name=name)
    session.add(team)
    session.flush()
    audit.append(session, "team.created", actor_id=actor_id, detail={"team": str(team.id)})
    return team
