"""The organisation's policy: limits and the consent text, versioned (every change is kept)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Policy
from app.services import audit, i18n, text
from app.services.errors import InvalidRequest, Unprocessable
from app.services.i18n import _

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
    consent_texts: dict[str, str | None] | None = None,
) -> Policy:
    """Write a new policy version; the old ones stay, for the representatives' history.

    ``consent_texts`` gives the text per language (``consent_text`` is the English one); a
    Norwegian text given as None is removed (shares in Norwegian then wait for a new one)."""
    old = current_policy(session)
    texts = {**old.consent_texts, **(consent_texts or {})}
    if consent_text is not None:
        texts["en"] = consent_text
    if set(texts) - set(i18n.LANGUAGES):
        raise InvalidRequest(
            _("The consent text can be given in: %(languages)s.", languages="en, nb"),
            code="unsupported_language",
        )
    new = Policy(
        version=old.version + 1,
        max_share_days=old.max_share_days if max_share_days is None else max_share_days,
        draft_lifetime_hours=(
            old.draft_lifetime_hours if draft_lifetime_hours is None else draft_lifetime_hours
        ),
        max_upload_bytes=old.max_upload_bytes if max_upload_bytes is None else max_upload_bytes,
        consent_text=_checked_text(texts["en"], "en"),
        consent_text_nb=_checked_text(texts["nb"], "nb") if texts["nb"] is not None else None,
        changed_by=actor_id,
    )
    if not 1 <= new.max_share_days <= MAX_SHARE_DAYS_CEILING:
        raise InvalidRequest(
            _("The maximum share duration must be 1-%(most)s days.", most=MAX_SHARE_DAYS_CEILING),
            code="invalid_policy",
        )
    if not 1 <= new.draft_lifetime_hours <= MAX_DRAFT_HOURS_CEILING:
        raise InvalidRequest(
            _("The draft lifetime must be 1-%(most)s hours.", most=MAX_DRAFT_HOURS_CEILING),
            code="invalid_policy",
        )
    if not 1 << 20 <= new.max_upload_bytes <= hard_upload_limit:
        raise InvalidRequest(
            _(
                "The upload limit must be between 1 MiB and the deployment's limit of "
                "%(most)s MiB.",
                most=hard_upload_limit // (1 << 20),
            ),
            code="invalid_policy",
        )
    session.add(new)
    session.flush()
    audit.append(session, "policy.changed", actor_id=actor_id, detail={"version": new.version})
    return new


def _checked_text(value: str | None, language: str) -> str:
    checked = text.check("consent_text", value or "", multiline=True)
    if not 20 <= len(checked) <= 20000:
        raise InvalidRequest(
            _("The consent text (%(language)s) must be 20-20000 characters.", language=language),
            code="invalid_policy",
        )
    return checked


def require_language(language: str) -> None:
    """A language this service speaks (en, nb), else a 422 naming them."""
    if language not in i18n.LANGUAGES:
        raise Unprocessable(
            _("The language must be one of: %(languages)s.", languages=", ".join(i18n.LANGUAGES)),
            code="unsupported_language",
        )


def consent_text_for(current: Policy, language: str) -> str:
    """The consent text an employee reads in ``language``; 422 when there is none."""
    require_language(language)
    found = current.consent_texts.get(language)
    if not found:
        raise Unprocessable(
            _(
                "The policy has no consent text in %(language)s yet, so nothing can be shared in "
                "that language. Switch the language, or ask an admin to add the text.",
                language=i18n.language_name(language),
            ),
            code="consent_text_missing",
        )
    return found
