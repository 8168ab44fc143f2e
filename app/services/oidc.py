"""Sign-in with the organisation's identity provider (SPEC §15): what verified claims make of
someone here, and what a verified logout token ends.

The web edge (``app/pages/oidc.py``) speaks OpenID Connect through Authlib and checks every
token's signature first; this module decides on the claims. An account of the provider is
keyed by issuer + ``sub`` only (never by e-mail, which a provider lets people change); its role
comes from the groups claim at every sign-in; it has no password and gets no sign-in link.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import OidcSingleUse, Role, User, WebSession, utcnow
from app.services import audit, sessions, users
from app.services.errors import Conflict, Forbidden, InvalidRequest
from app.services.i18n import _, translate

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# A logout token's jti is remembered this long (its exp bounds its use; this covers skew).
JTI_MEMORY = timedelta(hours=1)
LEEWAY_S = 120  # clock skew allowed on exp and iat, as for ID tokens
_LOGIN_CHARS = re.compile(r"[^a-z0-9._-]+")


class RoleRefused(Forbidden):
    """The groups claim gives no role, or two: nothing is created; the page says why."""

    def __init__(self, message: str, *, code: str, groups: list[str]) -> None:
        super().__init__(message, code=code, details={"groups": groups})


class InvalidLogoutToken(InvalidRequest):
    code = "invalid_logout_token"


def key_of(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


# --- roles ------------------------------------------------------------------------------------


def role_from_claims(claims: Mapping[str, Any], claim: str, role_map: Mapping[str, str]) -> Role:
    """The one role the user's groups map to; RoleRefused for none, for two, or for a groups
    claim that is not a list of names."""
    groups = claims.get(claim, [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise RoleRefused(
            _(
                "Your identity provider sent the '%(claim)s' claim as something other than a "
                "list of group names, so no role can be read from it.",
                claim=claim,
            ),
            code="bad_groups_claim",
            groups=[],
        )
    roles = sorted({role_map[group] for group in groups if group in role_map})
    mapped = sorted(group for group in groups if group in role_map)
    if not roles:
        raise RoleRefused(
            _("None of your groups gives you a role here."), code="no_role", groups=mapped
        )
    if len(roles) > 1:
        raise RoleRefused(
            _(
                "Your groups give you more than one role here (%(roles)s); a person has exactly "
                "one.",
                roles=", ".join(translate(role) for role in roles),
            ),
            code="two_roles",
            groups=mapped,
        )
    return Role(roles[0])


# --- accounts ---------------------------------------------------------------------------------


def _clean(value: Any, limit: int) -> str:
    """Printable text from a claim: control and format characters dropped, cut to ``limit``."""
    if not isinstance(value, str):
        return ""
    kept = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C")
    return " ".join(kept.split())[:limit]


def _name(claims: Mapping[str, Any]) -> str:
    given = " ".join(
        filter(None, (_clean(claims.get(k), 100) for k in ("given_name", "family_name")))
    )
    for candidate in (claims.get("name"), given, claims.get("preferred_username")):
        name = _clean(candidate, 200)
        if name:
            return name
    return _clean(claims.get("email"), 200) or "Unnamed person"


def _email(claims: Mapping[str, Any]) -> str | None:
    try:
        return users.normalise_email(_clean(claims.get("email"), 254) or None)
    except InvalidRequest:
        return None  # a provider's odd address is no reason to keep someone out


def _free_login(session: Session, claims: Mapping[str, Any]) -> str:
    """A login for display and the CLI (never for signing in: the account has no password)."""
    wanted = _clean(claims.get("preferred_username") or claims.get("email"), 200)
    base = _LOGIN_CHARS.sub("-", wanted.split("@")[0].lower()).strip("-._")[:50] or "user"
    if len(base) < 2:
        base = f"{base}-user"
    login = base
    while session.scalar(select(User.id).where(User.login == login)) is not None:
        login = f"{base}-{secrets.token_hex(3)}"
    return login


def _find(session: Session, issuer: str, subject: str) -> User | None:
    return session.scalar(
        select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)
    )


def _create(
    session: Session, issuer: str, subject: str, claims: Mapping[str, Any], role: Role
) -> User:
    """The account at first sign-in; two first sign-ins at once make one (the unique issuer +
    sub refuses the second, which then finds the first)."""
    try:
        with session.begin_nested():
            user = users.create_user(
                session,
                login=_free_login(session, claims),
                name=_name(claims),
                role=role,
                email=_email(claims),
            )
            user.oidc_issuer, user.oidc_subject = issuer, subject
            session.flush()
    except (IntegrityError, Conflict):
        found = _find(session, issuer, subject)
        if found is None:
            raise Conflict(
                _("Signing you in collided with another sign-in. Try again."), code="sign_in_race"
            ) from None
        return found
    return user


def sign_in(session: Session, *, issuer: str, claims: Mapping[str, Any], role: Role) -> User:
    """The account of ``issuer`` + ``sub``, created at first sign-in, its role, name and e-mail
    taken from the claims; Forbidden for a deactivated account (whatever the provider says)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise InvalidRequest(_("The identity provider sent no usable 'sub'."), code="bad_subject")
    user = _find(session, issuer, subject) or _create(session, issuer, subject, claims, role)
    if not user.active:
        raise Forbidden(
            _("Your account here is deactivated. An admin of consent-replay can reactivate it."),
            code="deactivated",
        )
    if user.role != role:
        audit.append(
            session,
            "user.role_changed",
            actor_id=None,
            detail={"user": str(user.id), "from": user.role.value, "to": role.value},
        )
        user.role = role
    user.name, user.email = _name(claims), _email(claims)
    users.record_sign_in(session, user, "provider")
    return user


# --- single use: sign-in states and logout token ids ------------------------------------------


def purge_expired(session: Session) -> int:
    """Sign-in states and logout-token ids past their expiry: each is refused when used anyway
    (an expired state, an expired logout token), so keeping them only grows the table."""
    result = session.execute(delete(OidcSingleUse).where(OidcSingleUse.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def put(session: Session, key: str, data: str, expires_in: int) -> None:
    purge_expired(session)
    session.add(
        OidcSingleUse(
            key=key, data=data, expires_at=utcnow() + timedelta(seconds=max(expires_in, 1))
        )
    )


def take(session: Session, key: str) -> str | None:
    """The data stored under ``key``, gone from then on: a second callback with the same
    state finds nothing (also one racing this one)."""
    row = session.execute(
        delete(OidcSingleUse)
        .where(OidcSingleUse.key == key)
        .returning(OidcSingleUse.data, OidcSingleUse.expires_at)
    ).first()
    if row is None or row.expires_at <= utcnow():
        return None
    data: str | None = row.data
    return data


def use_once(session: Session, key: str, until: datetime) -> bool:
    """Record ``key`` as used; False if it was used before."""
    try:
        with session.begin_nested():
            session.add(OidcSingleUse(key=key, data=None, expires_at=until))
    except IntegrityError:
        return False
    return True


# --- back-channel logout ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogoutOf:
    subject: str | None
    sid: str | None
    jti: str
    expires_at: datetime


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidLogoutToken(_("The logout token has no numeric '%(name)s'.", name=name))
    return value


def check_logout_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: datetime
) -> LogoutOf:
    """OpenID Connect Back-Channel Logout 1.0 §2.6, after the signature was verified."""
    if claims.get("iss") != issuer:
        raise InvalidLogoutToken(_("The logout token is from another issuer."))
    audience = claims.get("aud")
    if audience != client_id and not (isinstance(audience, list) and client_id in audience):
        raise InvalidLogoutToken(_("The logout token is meant for another client."))
    stamp = now.timestamp()
    if _number(claims, "exp") < stamp - LEEWAY_S:
        raise InvalidLogoutToken(_("The logout token has expired."))
    if _number(claims, "iat") > stamp + LEEWAY_S:
        raise InvalidLogoutToken(_("The logout token was issued in the future."))
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise InvalidLogoutToken(_("The logout token has no back-channel logout event."))
    if "nonce" in claims:
        raise InvalidLogoutToken(_("A logout token must not carry a nonce."))
    subject, sid, jti = claims.get("sub"), claims.get("sid"), claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidLogoutToken(_("The logout token has no 'jti'."))
    if not (isinstance(subject, str) and subject) and not (isinstance(sid, str) and sid):
        raise InvalidLogoutToken(_("The logout token names neither a 'sub' nor a 'sid'."))
    return LogoutOf(
        subject if isinstance(subject, str) and subject else None,
        sid if isinstance(sid, str) and sid else None,
        jti,
        now + JTI_MEMORY,
    )


def _users_of_sid(session: Session, issuer: str, sid: str) -> set[uuid.UUID]:
    rows = session.execute(
        select(WebSession.user_id, WebSession.data)
        .join(User, User.id == WebSession.user_id)
        .where(User.oidc_issuer == issuer)
    )
    return {user_id for user_id, data in rows if (data or {}).get("oidc_sid") == sid}


def back_channel_logout(session: Session, *, issuer: str, logout: LogoutOf) -> int:
    """End every session of the user the token names (by ``sub``, else by ``sid``); a token
    seen before is refused. Returns how many sessions ended."""
    if not use_once(session, key_of("jti", f"{issuer}\0{logout.jti}"), logout.expires_at):
        raise InvalidLogoutToken(_("This logout token was used before."))
    if logout.subject is not None:
        found = _find(session, issuer, logout.subject)
        targets = {found.id} if found is not None else set()
    else:
        assert logout.sid is not None
        targets = _users_of_sid(session, issuer, logout.sid)
    ended = 0
    for user_id in targets:
        ended += sessions.end_all(session, user_id)
        audit.append(
            session, "user.signed_out_by_provider", actor_id=None, detail={"user": str(user_id)}
        )
    return ended
