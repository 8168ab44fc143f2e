"""The organisation's policy: limits and the consent text, versioned (every change is kept)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Policy
from app.services import audit, text
from app.services.errors import InvalidRequest

MAX_SHARE_DAYS_CEILING = 365
MAX_DRAFT_HOURS_CEILING = 24 * 30


def current_policy(session: Session) -> Policy:
    policy = session.scalar(select(Policy).order_by(Policy.version.desc()).limit(1))
    if policy is None:
        raise RuntimeError("no policy row: run `consent-replay migrate`")
    return policy


def history(session: Session) -> list[Policy]:
    return list(session.scalars(select(Policy).order_by(Policy.version.desc())))


def update_policy(
    session: Session,
    *,
    actor_id: uuid.UUID,
    hard_upload_limit: int,
    max_share_days: int | None = None,
    draft_lifetime_hours: int | None = None,
    max_upload_bytes: int | None = None,
    consent_text: str | None = None,
) -> Policy:
    """Write a new policy version; the old ones stay, for the representatives' history."""
    old = current_policy(session)
    new = Policy(
        version=old.version + 1,
        max_share_days=old.max_share_days if max_share_days is None else max_share_days,
        draft_lifetime_hours=(
            old.draft_lifetime_hours if draft_lifetime_hours is None else draft_lifetime_hours
        ),
        max_upload_bytes=old.max_upload_bytes if max_upload_bytes is None else max_upload_bytes,
        consent_text=(
            old.consent_text
            if consent_text is None
            else text.check("consent_text", consent_text, multiline=True)
        ),
        changed_by=actor_id,
    )
    if not 1 <= new.max_share_days <= MAX_SHARE_DAYS_CEILING:
        raise InvalidRequest(
            f"The maximum share duration must be 1-{MAX_SHARE_DAYS_CEILING} days.",
            code="invalid_policy",
        )
    if not 1 <= new.draft_lifetime_hours <= MAX_DRAFT_HOURS_CEILING:
        raise InvalidRequest(
            f"The draft lifetime must be 1-{MAX_DRAFT_HOURS_CEILING} hours.", code="invalid_policy"
        )
    if not 1 << 20 <= new.max_upload_bytes <= hard_upload_limit:
        raise InvalidRequest(
            f"The upload limit must be between 1 MiB and the deployment's limit of "
            f"{hard_upload_limit // (1 << 20)} MiB.",
            code="invalid_policy",
        )
    if not 20 <= len(new.consent_text) <= 20000:
        raise InvalidRequest("The consent text must be 20-20000 characters.", code="invalid_policy")
    session.add(new)
    session.flush()
    audit.append(session, "policy.changed", actor_id=actor_id, detail={"version": new.version})
    return new
