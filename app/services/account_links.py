"""Single-use enrolment and reset links: how a credential reaches only its owner.

A link is ``<public URL>/account/link#<secret>``: the secret sits in the fragment, which
browsers never send to a server (so it is in no access log and no Referer). Only its SHA-256
is stored. A link works once, until it expires, for an active account, and only the newest
link of a person works. Using it leads to a page where the person sets a password and/or makes
an API token.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.models import AccountLink, User, utcnow
from app.services import audit, i18n
from app.services.errors import Conflict, Gone, InvalidRequest
from app.services.i18n import _

KINDS = ("enrolment", "reset")
LIFETIME = {"enrolment": timedelta(hours=72), "reset": timedelta(hours=4)}
LINK_PATH = "/account/link"
_SECRET_PREFIX = "crl_"  # noqa: S105 - a prefix, not a secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def url(public_url: str, secret: str) -> str:
    return f"{public_url.rstrip('/')}{LINK_PATH}#{secret}"


def hours_valid(kind: str) -> int:
    return int(LIFETIME[kind].total_seconds() // 3600)


def refuse_provider_account(user: User) -> None:
    """An account of the organisation's identity provider (SPEC §15) has no password and gets
    no enrolment or reset link: its access is managed at the provider."""
    if user.from_provider:
        raise Conflict(
            _(
                "%(name)s signs in with the organisation's identity provider: there is no "
                "password or sign-in link to set here. Their access is managed there.",
                name=user.name,
            ),
            code="provider_account",
        )


def issue(session: Session, user: User, kind: str) -> str:
    """A new link secret for ``user`` (every earlier unused link of theirs stops working)."""
    refuse_provider_account(user)
    if kind not in KINDS:
        raise InvalidRequest(_("Unknown link kind %(kind)r.", kind=kind), code="invalid_link_kind")
    session.execute(
        delete(AccountLink).where(AccountLink.user_id == user.id, AccountLink.used_at.is_(None))
    )
    secret = _SECRET_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AccountLink(
            user_id=user.id,
            kind=kind,
            token_hash=_hash(secret),
            created_at=now,
            expires_at=now + LIFETIME[kind],
        )
    )
    return secret


_INVALID = i18n.N_("This link has expired or was already used. Ask an admin to send you a new one.")


def redeem(session: Session, secret: str) -> tuple[User, str]:
    """Use a link once: its person and kind. Refused (410) if unknown, used or expired."""
    secret = (secret or "").strip()
    if not secret.startswith(_SECRET_PREFIX) or len(secret) > 100:
        raise Gone(i18n.translate(_INVALID), code="link_invalid")
    link = session.scalar(select(AccountLink).where(AccountLink.token_hash == _hash(secret)))
    now = utcnow()
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise Gone(i18n.translate(_INVALID), code="link_invalid")
    user = session.get(User, link.user_id)
    if user is None or not user.active:
        raise Gone(i18n.translate(_INVALID), code="link_invalid")
    # Claimed with a conditional UPDATE: of two requests racing with one link, one wins.
    claimed = session.execute(
        update(AccountLink)
        .where(AccountLink.id == link.id, AccountLink.used_at.is_(None))
        .values(used_at=now)
    )
    if not getattr(claimed, "rowcount", 0):
        raise Gone(i18n.translate(_INVALID), code="link_invalid")
    audit.append(
        session,
        "user.link_used",
        actor_id=user.id,
        detail={"user": str(user.id), "kind": link.kind},
    )
    return user, link.kind


def purge(session: Session, keep: timedelta = timedelta(days=7)) -> int:
    result = session.execute(delete(AccountLink).where(AccountLink.expires_at < utcnow() - keep))
    return int(getattr(result, "rowcount", 0) or 0)


def has_live_link(session: Session, user_id: uuid.UUID) -> bool:
    return (
        session.scalar(
            select(AccountLink.id).where(
                AccountLink.user_id == user_id,
                AccountLink.used_at.is_(None),
                AccountLink.expires_at > utcnow(),
            )
        )
        is not None
    )
