"""Asking the issuer whether a consent receipt still holds (SPEC §6: every use is checked
against the server's state; ``exp`` is only a backstop).

A receipt verifies offline until its ``exp`` even after the employee withdrew: its signature
cannot be taken back. Whoever holds one — the employee, or someone they showed it to — asks
here. The question is the receipt itself: the answer is given only for a receipt this
deployment signed, so it tells nothing to anyone who does not already hold the receipt.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app.models import Policy, Share, ShareStatus, User, utcnow
from app.runtime import Runtime
from app.services import shares
from app.services.errors import Gone, InvalidRequest
from app.services.i18n import _

MAX_RECEIPT = 16 * 1024


def status(session: Session, rt: Runtime, token: str) -> dict[str, Any]:
    """``active``, ``revoked`` or ``expired``, for a receipt signed by this deployment."""
    token = token.strip()
    if len(token) > MAX_RECEIPT:
        raise InvalidRequest(
            _("That is not a consent receipt of this service."), code="invalid_receipt"
        )
    try:
        claims = crypto.verify(
            token,
            rt.keyring.jwks(),
            typ=crypto.RECEIPT_TYP,
            required=crypto.RECEIPT_CLAIMS,
            check_expiry=False,
        )
        share_id = uuid.UUID(str(claims["jti"]))
    except (crypto.TokenError, ValueError):
        raise InvalidRequest(
            _("That is not a consent receipt of this service (it does not verify)."),
            code="invalid_receipt",
        ) from None
    row = session.execute(
        select(Share.status, Share.expires_at, Share.ended_at).where(Share.id == share_id)
    ).first()
    now = utcnow()
    if row is None or row.status is ShareStatus.EXPIRED or row.expires_at <= now:
        state = "expired" if row is None or row.status is not ShareStatus.REVOKED else "revoked"
    elif row.status is ShareStatus.REVOKED:
        state = "revoked"
    else:
        state = "active"
    return {
        "share_id": share_id,
        "status": state,
        "ended_at": row.ended_at if row is not None and state != "active" else None,
        "checked_at": now,
    }


def readable(
    session: Session, rt: Runtime, owner: User, share_id: uuid.UUID | str
) -> dict[str, Any]:
    """What a person reads on their receipt page: the signed claims (checked against this
    deployment's keys), the coaches by name, and the consent text exactly as it was shown (the
    policy version and language the receipt names). Only while the share lives: the receipt
    is shredded with it."""
    share = shares.get_for_owner(session, owner, share_id)
    token = shares.receipt_of(session, rt, share) if share.status.active else None
    if not token:
        raise Gone(
            _(
                "This share has ended; its receipt was shredded with it. Its deletion certificate "
                "is on My shares."
            ),
            code="share_ended",
        )
    claims = crypto.verify(
        token, rt.keyring.jwks(), typ=crypto.RECEIPT_TYP, required=crypto.RECEIPT_CLAIMS
    )
    named = claims.get("policy") or {}
    shown = session.get(Policy, named.get("version"))
    language = named.get("language", "en")
    return {
        "share": share,
        "token": token,
        "claims": claims,
        "title": shares.title_of(session, rt, share),
        "coaches": [g.coach for g in share.grantees if str(g.coach_id) in claims["grantees"]],
        "issued_at": datetime.fromtimestamp(claims["iat"], UTC),
        "expires_at": datetime.fromtimestamp(claims["exp"], UTC),
        "consent_text": shown.consent_texts.get(language) if shown is not None else None,
        "consent_language": language,
        "policy_version": named.get("version"),
    }
