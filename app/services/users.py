"""Accounts: users, roles, passwords (Argon2id) and API tokens (stored as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import ApiToken, Role, Team, User, utcnow
from app.services import audit, text
from app.services.errors import Conflict, InvalidRequest, NotFound

TOKEN_PREFIX = "cr_"  # noqa: S105 - a prefix, not a secret
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
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


def create_user(
    session: Session,
    *,
    login: str,
    name: str,
    role: Role | str,
    password: str | None = None,
    team_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> User:
    login = login.strip().lower()
    if not _LOGIN.match(login):
        raise InvalidRequest(
            "A login is 2-63 lowercase letters, digits, dots, dashes or underscores.",
            code="invalid_login",
        )
    name = text.check("name", name)
    if not name or len(name) > 200:
        raise InvalidRequest("A name has 1-200 characters.", code="invalid_name")
    try:
        role = Role(role)
    except ValueError:
        raise InvalidRequest(
            f"Unknown role {role!r}; use one of {', '.join(r.value for r in Role)}.",
            code="invalid_role",
        ) from None
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise Conflict(f"The login {login!r} is taken.", code="login_taken")
    user = User(login=login, name=name, role=role, team_id=team_id)
    if password is not None:
        validate_password(password)
        user.password_hash = _hasher.hash(password)
    session.add(user)
    session.flush()
    audit.append(
        session,
        "user.created",
        actor_id=actor_id,
        detail={"user": str(user.id), "role": role.value},
    )
    return user


def set_password(session: Session, user: User, password: str) -> None:
    validate_password(password)
    user.password_hash = _hasher.hash(password)


def authenticate_password(session: Session, login: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.login == login.strip().lower()))
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


def issue_token(session: Session, user: User, label: str = "") -> str:
    """Create an API token; the plaintext is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label=label[:120]))
    return token


def resolve_token(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    user = row.user
    if not user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return user


def reset_tokens(session: Session, user: User, *, actor_id: uuid.UUID | None = None) -> str:
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    audit.append(session, "user.token_reset", actor_id=actor_id, detail={"user": str(user.id)})
    return issue_token(session, user, label="reset")


def set_active(
    session: Session, user: User, active: bool, *, actor_id: uuid.UUID | None = None
) -> None:
    user.active = active
    if not active:
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    audit.append(
        session,
        "user.activated" if active else "user.deactivated",
        actor_id=actor_id,
        detail={"user": str(user.id)},
    )


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


def list_users(session: Session, role: Role | None = None) -> list[User]:
    query = select(User).order_by(User.name)
    if role is not None:
        query = query.where(User.role == role)
    return list(session.scalars(query))


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
