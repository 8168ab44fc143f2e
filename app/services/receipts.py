"""Asking the issuer whether a consent receipt still holds (SPEC §6: every use is checked
against the server's state; ``exp`` is only a backstop).

A receipt verifies offline until its ``exp`` even after the employee withdrew: its signature
cannot be taken back. Whoever holds one — the employee, or someone they showed it to — asks
here. The question is the receipt itself: the answer is given only for a receipt this
deployment signed, so it tells nothing to anyone who does not already hold the receipt.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app.models import Share, ShareStatus, utcnow
from app.runtime import Runtime
from app.services.errors import InvalidRequest

MAX_RECEIPT = 16 * 1024


def status(session: Session, rt: Runtime, token: str) -> dict[str, Any]:
    """``active``, ``revoked`` or ``expired``, for a receipt signed by this deployment."""
    token = token.strip()
    if len(token) > MAX_RECEIPT:
        raise InvalidRequest(
            "That is not a consent receipt of this service.", code="invalid_receipt"
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
            "That is not a consent receipt of this service (it does not verify).",
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
