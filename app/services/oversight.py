"""What a union or works-council representative sees: aggregate figures, never names or content.

Counts under :data:`SMALL_COUNT` are suppressed (reported as ``null``), so that no week's figure
can single out one person — including the fact that someone declined.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, FeedbackForm, utcnow
from app.services import audit, policy

SMALL_COUNT = 5
FIGURES = {
    "share.created": "shares_made",
    "share.revoked": "shares_revoked",
    "share.expired": "shares_expired",
    "media.play": "plays",
    # Account resets by an admin or the operator (issue 12): each one ended someone's
    # sessions and tokens, so representatives see how often it happens.
    "user.reset": "account_resets",
    # Coaching feedback (SPEC §13): how much is sent and acknowledged — never by whom, never
    # a rating.
    "feedback.sent": "feedback_sent",
    "feedback.acknowledged": "feedback_acknowledged",
}


def _week_start(moment: datetime) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def suppress(count: int) -> int | None:
    return count if count >= SMALL_COUNT else None


def weekly_summary(session: Session, weeks: int = 12) -> dict[str, Any]:
    now = utcnow()
    first = _week_start(now) - timedelta(weeks=weeks - 1)
    counts: Counter[tuple[datetime, str]] = Counter()
    rows = session.execute(
        select(AuditEvent.at, AuditEvent.action).where(
            AuditEvent.at >= first, AuditEvent.action.in_(list(FIGURES))
        )
    )
    for at, action in rows:
        counts[(_week_start(at), FIGURES[action])] += 1
    result = []
    for index in range(weeks):
        week = first + timedelta(weeks=index)
        figures = {name: suppress(counts[(week, name)]) for name in FIGURES.values()}
        result.append({"week_start": week.date().isoformat(), **figures})
    return {
        "weeks": result,
        # Forms are not people: how many are in use is shown as it is.
        "forms_in_use": session.scalar(
            select(func.count()).select_from(FeedbackForm).where(FeedbackForm.status == "approved")
        ),
        "suppressed_below": SMALL_COUNT,
        "note": f"Figures under {SMALL_COUNT} are shown as null so that nobody is singled out.",
    }


def policy_history(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "version": p.version,
            "created_at": p.created_at,
            "max_share_days": p.max_share_days,
            "draft_lifetime_hours": p.draft_lifetime_hours,
            "max_upload_bytes": p.max_upload_bytes,
            "consent_text": p.consent_text,
        }
        for p in policy.history(session)
    ]


def verify_audit(session: Session) -> dict[str, Any]:
    """The verdict on the audit chain, and nothing that moves with activity: no count of
    events, no head hash (watched over time, either would show when anyone does anything —
    SPEC §2.7). ``consent-replay audit verify`` shows both to an operator."""
    verdict = audit.verify_chain(session)
    return {
        "ok": verdict.ok,
        "broken_seq": verdict.broken_seq,
        "reason": verdict.reason,
        "checked_at": utcnow(),
    }
