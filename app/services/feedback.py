"""Coaching feedback (SPEC §13): written by a coach of a ready share, for its employee.

Feedback belongs to the employee. Its text is sealed under a data key of its own, owned by the
employee (not the share's key), so it outlives the share: when the share ends the coach loses
it (404, gone from their lists), the employee keeps it until they delete it, which destroys the
key. Ratings are sealed too: nobody but the employee ever gets ratings per person (their own
progress view); oversight sees only counts of events.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app.models import Feedback, FeedbackForm, Role, Share, User, utcnow
from app.services import audit, forms, keys, lifecycle, mail, shares, text
from app.services.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from app.services.i18n import _
from app.services.sealing import open_json, open_text, seal_json, seal_text

if TYPE_CHECKING:
    from app.runtime import Runtime

MAX_TEXT = 4000
MAX_COMMENT = 2000
MAX_MOMENTS = 20
CONTENT = "feedback"
REPLY = "feedback-reply"


@dataclass
class Draft:
    """What a coach writes; each field None when a PATCH leaves it as it is."""

    ratings: Any = None
    strengths: str | None = None
    next_step: str | None = None
    summary: str | None = None


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("feedback") from None


def _text(field: str, value: str | None, limit: int) -> str:
    clean = text.check(field, value or "", multiline=True)
    if len(clean) > limit:
        raise InvalidRequest(
            _("%(field)s can have at most %(most)s characters.", field=field, most=limit),
            code="text_too_long",
        )
    return clean


def _value(criterion: dict[str, Any], value: Any, index: int) -> Any:
    scale = criterion["scale"]
    if scale == forms.YES_NO:
        if not isinstance(value, bool):
            raise InvalidRequest(
                _(
                    "ratings[%(index)s].value must be true or false for this criterion.",
                    index=index,
                ),
                code="rating_out_of_scale",
            )
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (scale["min"] <= value <= scale["max"])
    ):
        raise InvalidRequest(
            _(
                "ratings[%(index)s].value must be a whole number from %(low)s to %(high)s.",
                index=index,
                low=scale["min"],
                high=scale["max"],
            ),
            code="rating_out_of_scale",
        )
    return value


def _moments(at_s: Any, index: int, duration: float | None) -> list[float]:
    if at_s is None:
        return []
    if not isinstance(at_s, list) or len(at_s) > MAX_MOMENTS:
        raise InvalidRequest(
            _(
                "ratings[%(index)s].at_s is a list of at most %(most)s times.",
                index=index,
                most=MAX_MOMENTS,
            ),
            code="invalid_time",
        )
    limit = (duration or math.inf) + 1
    out = []
    for moment in at_s:
        if (
            isinstance(moment, bool)
            or not isinstance(moment, int | float)
            or not 0 <= moment <= limit
        ):
            raise InvalidRequest(
                _("ratings[%(index)s].at_s holds a time outside the recording.", index=index),
                code="invalid_time",
            )
        out.append(round(float(moment), 3))
    return sorted(set(out))


def _ratings(form: FeedbackForm, ratings: Any, duration: float | None) -> list[dict[str, Any]]:
    by_id = {c["id"]: c for c in form.criteria}
    if not isinstance(ratings, list) or len(ratings) > len(by_id):
        raise InvalidRequest(_("ratings is a list, one item per criterion."), code="invalid_rating")
    seen: set[str] = set()
    out = []
    for index, item in enumerate(ratings):
        if (
            not isinstance(item, dict)
            or not {"criterion_id", "value"} <= set(item)
            or not set(item) <= {"criterion_id", "value", "comment", "at_s"}
        ):
            raise InvalidRequest(
                _(
                    "ratings[%(index)s] needs criterion_id and value (comment and at_s optional).",
                    index=index,
                ),
                code="invalid_rating",
            )
        cid = item["criterion_id"]
        if not isinstance(cid, str) or cid not in by_id:
            raise InvalidRequest(
                _("ratings[%(index)s].criterion_id is not a criterion of this form.", index=index),
                code="unknown_criterion",
            )
        if cid in seen:
            raise InvalidRequest(
                _("ratings[%(index)s]: %(id)s is rated twice.", index=index, id=cid),
                code="invalid_rating",
            )
        seen.add(cid)
        comment = item.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise InvalidRequest(
                _("ratings[%(index)s].comment must be text.", index=index), code="invalid_rating"
            )
        out.append(
            {
                "criterion_id": cid,
                "value": _value(by_id[cid], item["value"], index),
                "comment": _text(f"ratings[{index}].comment", comment, MAX_COMMENT),
                "at_s": _moments(item.get("at_s"), index, duration),
            }
        )
    order = list(by_id)
    return sorted(out, key=lambda r: order.index(r["criterion_id"]))


def _dek(session: Session, rt: Runtime, row: Feedback) -> bytes:
    try:
        return keys.load_data_key(session, rt.kek, rt.key_cache, row.key_id)
    except keys.KeyDestroyed:
        raise NotFound("feedback") from None


def _content(session: Session, rt: Runtime, row: Feedback) -> dict[str, Any]:
    dek = _dek(session, rt, row)
    return dict(open_json(dek, row.key_id, CONTENT, row.id, row.content_sealed) or {})


def _store(session: Session, rt: Runtime, row: Feedback, content: dict[str, Any]) -> None:
    dek = _dek(session, rt, row)
    row.content_sealed = seal_json(dek, row.key_id, CONTENT, row.id, content)
    row.updated_at = utcnow()


def _merge(
    current: dict[str, Any], form: FeedbackForm, draft: Draft, duration: float | None
) -> dict[str, Any]:
    out = dict(current)
    if draft.ratings is not None:
        out["ratings"] = _ratings(form, draft.ratings, duration)
    for field in ("strengths", "next_step", "summary"):
        value = getattr(draft, field)
        if value is not None:
            out[field] = _text(field, value, MAX_TEXT)
    return out


def _usable_share(session: Session, coach: User, share_id: uuid.UUID | str) -> Share:
    """The share a coach may write feedback on: theirs by grant, and playable now (410 once
    it ended, 422 while it is not ready)."""
    share = shares.get_for_viewer(session, coach, share_id)
    if share.owner_id == coach.id:
        raise NotFound("share")
    shares.require_viewable(share)
    return share


def create(
    session: Session,
    rt: Runtime,
    coach: User,
    share_id: uuid.UUID | str,
    form_id: uuid.UUID | str,
    draft: Draft,
) -> Feedback:
    share = _usable_share(session, coach, share_id)
    try:
        form = forms.get(session, form_id)
    except NotFound:
        raise Unprocessable(_("No such feedback form."), code="unknown_form") from None
    if form.status != "approved":
        raise Unprocessable(
            _("This form is not approved by the representative, so it cannot be used."),
            code="form_not_approved",
        )
    content = _merge({"ratings": []}, form, draft, share.duration_s)
    key_id = keys.create_data_key(session, rt.kek, owner_id=share.owner_id)[0]
    row = Feedback(
        id=uuid.uuid4(),
        share_id=share.id,
        employee_id=share.owner_id,
        coach_id=coach.id,
        form_id=form.id,
        key_id=key_id,
    )
    session.add(row)
    _store(session, rt, row, content)
    session.flush()
    return row


def _for_coach(session: Session, coach: User, feedback_id: uuid.UUID | str) -> Feedback:
    """The coach's own feedback while its share lives; afterwards it is gone for them (404)."""
    row = session.scalar(
        select(Feedback).where(Feedback.id == _uuid(feedback_id), Feedback.coach_id == coach.id)
    )
    if row is None or row.share is None or shares.has_ended(row.share):
        raise NotFound("feedback")
    return row


def _for_employee(
    session: Session, employee: User, feedback_id: uuid.UUID | str, *, lock: bool = False
) -> Feedback:
    """Feedback the employee received (sent or acknowledged; a coach's draft is not theirs yet)."""
    query = select(Feedback).where(
        Feedback.id == _uuid(feedback_id),
        Feedback.employee_id == employee.id,
        Feedback.status != "draft",
    )
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound("feedback")
    return row


def get_for(session: Session, user: User, feedback_id: uuid.UUID | str) -> Feedback:
    if user.role is Role.COACH:
        return _for_coach(session, user, feedback_id)
    return _for_employee(session, user, feedback_id)


def _require_draft(row: Feedback) -> None:
    if row.status != "draft":
        raise Conflict(
            _("This feedback was sent and can no longer be changed."), code="already_sent"
        )


def update(
    session: Session, rt: Runtime, coach: User, feedback_id: uuid.UUID | str, draft: Draft
) -> Feedback:
    row = _for_coach(session, coach, feedback_id)
    _require_draft(row)
    assert row.share is not None
    shares.require_viewable(row.share)
    _store(
        session, rt, row, _merge(_content(session, rt, row), row.form, draft, row.share.duration_s)
    )
    return row


def send(session: Session, rt: Runtime, coach: User, feedback_id: uuid.UUID | str) -> Feedback:
    row = _for_coach(session, coach, feedback_id)
    _require_draft(row)
    assert row.share is not None
    shares.require_viewable(row.share)
    content = _content(session, rt, row)
    rated = {r["criterion_id"] for r in content.get("ratings", [])}
    missing = [c["id"] for c in row.form.criteria if c["id"] not in rated]
    if missing:
        raise Unprocessable(
            _("Rate every criterion before sending (missing: %(ids)s).", ids=", ".join(missing)),
            code="feedback_incomplete",
        )
    if not content.get("next_step"):
        raise Unprocessable(_("Give one next step before sending."), code="feedback_incomplete")
    lifecycle.feedback_step(session, row, "sent", actor_id=coach.id)
    mail.notify(session, rt, row.employee, "feedback_sent")
    return row


def acknowledge(
    session: Session,
    rt: Runtime,
    employee: User,
    feedback_id: uuid.UUID | str,
    *,
    reply: str | None,
    agree: bool | None,
) -> Feedback:
    row = _for_employee(session, employee, feedback_id, lock=True)
    if row.status != "sent":
        raise Conflict(_("You already acknowledged this feedback."), code="already_acknowledged")
    clean = _text("reply", reply, MAX_TEXT)
    if clean:
        dek = _dek(session, rt, row)
        row.reply_sealed = seal_text(dek, row.key_id, REPLY, row.id, clean)
    row.agree = agree
    lifecycle.feedback_step(session, row, "acknowledged", actor_id=employee.id)
    return row


def delete(session: Session, rt: Runtime, employee: User, feedback_id: uuid.UUID | str) -> None:
    """The employee shreds feedback they received: its key first, then the row."""
    row = _for_employee(session, employee, feedback_id, lock=True)
    keys.shred_data_key(session, rt.key_cache, row.key_id)
    audit.append(
        session,
        "feedback.deleted",
        actor_id=employee.id,
        detail={"feedback": str(row.id)},
    )
    session.delete(row)


def list_for(session: Session, user: User) -> list[Feedback]:
    """Received (employee: sent ones) or given (coach: while each share lives)."""
    if user.role is Role.COACH:
        rows = session.scalars(
            select(Feedback)
            .where(Feedback.coach_id == user.id)
            .order_by(Feedback.created_at.desc())
        )
        return [r for r in rows if r.share is not None and not shares.has_ended(r.share)]
    return list(
        session.scalars(
            select(Feedback)
            .where(Feedback.employee_id == user.id, Feedback.status != "draft")
            .order_by(Feedback.sent_at.desc())
        )
    )


def present(session: Session, rt: Runtime, row: Feedback) -> dict[str, Any]:
    content = _content(session, rt, row)
    dek = _dek(session, rt, row)
    try:
        reply = open_text(dek, row.key_id, REPLY, row.id, row.reply_sealed)
    except crypto.DecryptionError:
        reply = None
    share = row.share
    return {
        "id": row.id,
        "share_id": row.share_id,
        "form_id": row.form_id,
        "form": forms.present(row.form),
        "status": row.status,
        "ratings": content.get("ratings", []),
        "strengths": content.get("strengths", ""),
        "next_step": content.get("next_step", ""),
        "summary": content.get("summary", ""),
        "coach": {"id": row.coach.id, "name": row.coach.name} if row.coach else None,
        "employee": {"id": row.employee.id, "name": row.employee.name},
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "sent_at": row.sent_at,
        "acknowledged_at": row.acknowledged_at,
        "reply": reply,
        "agree": row.agree,
        "share_playable": share is not None and shares.is_viewable(share),
    }


def progress(session: Session, rt: Runtime, employee: User) -> dict[str, Any]:
    """The employee's own ratings per criterion over time, and their next steps."""
    series: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    steps = []
    for row in sorted(list_for(session, employee), key=lambda r: r.sent_at or r.created_at):
        content = _content(session, rt, row)
        criteria = {c["id"]: c for c in row.form.criteria}
        for rating in content.get("ratings", []):
            criterion = criteria[rating["criterion_id"]]
            line = series.setdefault(
                (row.form.family_id, criterion["id"]),
                {
                    "form_name": row.form.name,
                    "criterion_id": criterion["id"],
                    "title": criterion["title"],
                    "scale": criterion["scale"],
                    "labels": forms.labels_of(criterion["scale"]),
                    "points": [],
                },
            )
            line["points"].append(
                {"at": row.sent_at, "value": rating["value"], "feedback_id": row.id}
            )
        if content.get("next_step"):
            steps.append(
                {"feedback_id": row.id, "next_step": content["next_step"], "sent_at": row.sent_at}
            )
    return {"criteria": list(series.values()), "next_steps": steps[::-1]}
