"""Feedback forms (SPEC §13): what employees are assessed on, agreed with their representative.

An admin proposes a form; every change is a new version of it (same ``family_id``). Only a
version the representative approved can be used, and approving a new version retires the one
it replaces. A rejected proposal keeps its reason. Retiring never touches the feedback written
on a form: feedback refers to the exact version it was written on. Every step is in the audit
chain, which is also the representative's history of forms.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import FeedbackForm, utcnow
from app.services import audit, lifecycle, text
from app.services.errors import Conflict, InvalidRequest, NotFound
from app.services.i18n import _

MAX_CRITERIA = 20
MAX_TITLE = 200
MAX_DESCRIPTION = 1000
MAX_LABEL = 80
MAX_REASON = 1000
SCALE_BOUNDS = (0, 10)
LANGUAGES = ("en", "nb")
YES_NO = "yes_no"
YES_NO_LABELS = ["No", "Yes"]
_CRITERION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_form")


def _scale(index: int, scale: Any) -> Any:
    if scale == YES_NO:
        return YES_NO
    if not isinstance(scale, dict) or set(scale) != {"min", "max", "labels"}:
        raise _invalid(
            _(
                'criteria[%(index)s].scale must be "yes_no" or {"min", "max", "labels"}.',
                index=index,
            )
        )
    low, high, labels = scale["min"], scale["max"], scale["labels"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise _invalid(
            _("criteria[%(index)s].scale: min and max must be whole numbers.", index=index)
        )
    if not SCALE_BOUNDS[0] <= low < high <= SCALE_BOUNDS[1]:
        raise _invalid(
            _(
                "criteria[%(index)s].scale: need %(low)s <= min < max <= %(high)s.",
                index=index,
                low=SCALE_BOUNDS[0],
                high=SCALE_BOUNDS[1],
            )
        )
    if not isinstance(labels, list) or len(labels) != high - low + 1:
        raise _invalid(
            _(
                "criteria[%(index)s].scale.labels must name each of the %(steps)s steps.",
                index=index,
                steps=high - low + 1,
            )
        )
    clean = []
    for label in labels:
        if not isinstance(label, str):
            raise _invalid(_("criteria[%(index)s].scale.labels must be text.", index=index))
        label = text.check("label", label)
        if not 1 <= len(label) <= MAX_LABEL:
            raise _invalid(
                _(
                    "criteria[%(index)s].scale: each label needs 1–%(most)s characters.",
                    index=index,
                    most=MAX_LABEL,
                )
            )
        clean.append(label)
    return {"min": low, "max": high, "labels": clean}


def _criterion(index: int, item: Any, seen: set[str]) -> dict[str, Any]:
    if (
        not isinstance(item, dict)
        or not {"id", "title", "scale"} <= set(item)
        or not set(item) <= {"id", "title", "description", "scale"}
    ):
        raise _invalid(
            _(
                "criteria[%(index)s] needs id, title and scale (and may have description).",
                index=index,
            )
        )
    cid, title, description = item["id"], item["title"], item.get("description") or ""
    if not isinstance(cid, str) or not _CRITERION_ID.match(cid):
        raise _invalid(
            _("criteria[%(index)s].id: lower-case letters, digits, - and _ (max 40).", index=index)
        )
    if cid in seen:
        raise _invalid(_("criteria[%(index)s].id %(id)s is used twice.", index=index, id=cid))
    seen.add(cid)
    if not isinstance(title, str) or not isinstance(description, str):
        raise _invalid(_("criteria[%(index)s]: title and description must be text.", index=index))
    title = text.check("title", title)
    description = text.check("description", description, multiline=True)
    if not 1 <= len(title) <= MAX_TITLE or len(description) > MAX_DESCRIPTION:
        raise _invalid(
            _(
                "criteria[%(index)s]: a title of 1–%(title)s characters, a description of at "
                "most %(description)s.",
                index=index,
                title=MAX_TITLE,
                description=MAX_DESCRIPTION,
            )
        )
    return {
        "id": cid,
        "title": title,
        "description": description,
        "scale": _scale(index, item["scale"]),
    }


def check_criteria(criteria: Any) -> list[dict[str, Any]]:
    if not isinstance(criteria, list) or not 1 <= len(criteria) <= MAX_CRITERIA:
        raise _invalid(_("A form has 1–%(most)s criteria.", most=MAX_CRITERIA))
    seen: set[str] = set()
    return [_criterion(index, item, seen) for index, item in enumerate(criteria)]


def propose(
    session: Session,
    *,
    name: str,
    language: str,
    criteria: Any,
    actor_id: uuid.UUID,
    replaces: uuid.UUID | None = None,
) -> FeedbackForm:
    """A new form, or (``replaces``) the next version of an existing one: ``proposed``."""
    name = text.check("name", name)
    if not 1 <= len(name) <= MAX_TITLE:
        raise _invalid(_("A form's name needs 1–%(most)s characters.", most=MAX_TITLE))
    if language not in LANGUAGES:
        raise _invalid(_("language must be one of %(languages)s.", languages=", ".join(LANGUAGES)))
    clean = check_criteria(criteria)
    family_id, version = uuid.uuid4(), 1
    if replaces is not None:
        earlier = session.get(FeedbackForm, replaces)
        if earlier is None:
            raise InvalidRequest(_("replaces names no form."), code="unknown_form")
        family_id = earlier.family_id
        # The family's row lock orders two admins proposing at once.
        session.execute(
            select(FeedbackForm.id).where(FeedbackForm.family_id == family_id).with_for_update()
        )
        latest = session.scalar(
            select(func.max(FeedbackForm.version)).where(FeedbackForm.family_id == family_id)
        )
        version = (latest or 0) + 1
    form = FeedbackForm(
        id=uuid.uuid4(),
        family_id=family_id,
        version=version,
        name=name,
        language=language,
        criteria=clean,
        proposed_by=actor_id,
        created_at=utcnow(),
    )
    session.add(form)
    session.flush()
    audit.append(
        session,
        "feedback_form.proposed",
        actor_id=actor_id,
        detail={"form": str(form.id), "family": str(family_id), "version": version},
    )
    return form


def get(session: Session, form_id: uuid.UUID | str, *, lock: bool = False) -> FeedbackForm:
    try:
        key = uuid.UUID(str(form_id))
    except ValueError:
        raise NotFound("feedback form") from None
    query = select(FeedbackForm).where(FeedbackForm.id == key)
    form = session.scalar(query.with_for_update() if lock else query)
    if form is None:
        raise NotFound("feedback form")
    return form


def approve(session: Session, form_id: uuid.UUID | str, *, actor_id: uuid.UUID) -> FeedbackForm:
    form = get(session, form_id, lock=True)
    _require_proposed(form)
    for older in session.scalars(
        select(FeedbackForm).where(
            FeedbackForm.family_id == form.family_id, FeedbackForm.status == "approved"
        )
    ):
        lifecycle.decide_form(session, older, "retired", actor_id=actor_id)
    lifecycle.decide_form(session, form, "approved", actor_id=actor_id)
    return form


def reject(
    session: Session, form_id: uuid.UUID | str, reason: str, *, actor_id: uuid.UUID
) -> FeedbackForm:
    form = get(session, form_id, lock=True)
    reason = text.check("reason", reason, multiline=True)
    if not 1 <= len(reason) <= MAX_REASON:
        raise InvalidRequest(
            _("Give a reason of 1–%(most)s characters for the rejection.", most=MAX_REASON),
            code="reason_required",
        )
    _require_proposed(form)
    lifecycle.decide_form(session, form, "rejected", actor_id=actor_id, reason=reason)
    return form


def retire(session: Session, form_id: uuid.UUID | str, *, actor_id: uuid.UUID) -> FeedbackForm:
    form = get(session, form_id, lock=True)
    if form.status != "approved":
        raise Conflict(_("Only an approved form can be retired."), code="form_not_approved")
    lifecycle.decide_form(session, form, "retired", actor_id=actor_id)
    return form


def _require_proposed(form: FeedbackForm) -> None:
    if form.status != "proposed":
        raise Conflict(_("This form was decided already."), code="form_already_decided")


def approved(session: Session) -> list[FeedbackForm]:
    return list(
        session.scalars(
            select(FeedbackForm)
            .where(FeedbackForm.status == "approved")
            .order_by(FeedbackForm.name, FeedbackForm.version)
        )
    )


def every_version(session: Session) -> list[FeedbackForm]:
    return list(
        session.scalars(
            select(FeedbackForm).order_by(
                FeedbackForm.created_at.desc(), FeedbackForm.version.desc()
            )
        )
    )


def labels_of(scale: Any) -> list[str]:
    return YES_NO_LABELS if scale == YES_NO else list(scale["labels"])


def present(form: FeedbackForm) -> dict[str, Any]:
    return {
        "id": form.id,
        "family_id": form.family_id,
        "version": form.version,
        "name": form.name,
        "language": form.language,
        "criteria": form.criteria,
        "status": form.status,
        "reason": form.reason,
        "created_at": form.created_at,
        "decided_at": form.decided_at,
        "retired_at": form.retired_at,
    }


def changes(session: Session, form: FeedbackForm) -> dict[str, Any] | None:
    """What differs from the previous version of the same form (None for a first version):
    what the representative reads before approving."""
    previous = session.scalar(
        select(FeedbackForm).where(
            FeedbackForm.family_id == form.family_id, FeedbackForm.version == form.version - 1
        )
    )
    if previous is None:
        return None
    before = {c["id"]: c for c in previous.criteria}
    after = {c["id"]: c for c in form.criteria}
    changed = []
    for cid in after.keys() & before.keys():
        fields = [
            f for f in ("title", "description", "scale") if after[cid].get(f) != before[cid].get(f)
        ]
        if fields:
            changed.append(
                {"id": cid, "fields": fields, "before": before[cid], "after": after[cid]}
            )
    return {
        "previous_id": previous.id,
        "previous_version": previous.version,
        "name": None
        if previous.name == form.name
        else {"before": previous.name, "after": form.name},
        "language": None
        if previous.language == form.language
        else {"before": previous.language, "after": form.language},
        "added": [after[c] for c in after if c not in before],
        "removed": [before[c] for c in before if c not in after],
        "changed": sorted(changed, key=lambda c: c["id"]),
    }


def present_for_review(session: Session, form: FeedbackForm) -> dict[str, Any]:
    return {**present(form), "changes": changes(session, form)}
