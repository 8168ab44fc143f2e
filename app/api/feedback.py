"""Coaching feedback (SPEC §13): forms the representative approved, feedback for the employee.

Forms: an admin proposes (``/admin/feedback-forms``), the representative approves or rejects
(``/oversight/feedback-forms/{id}/…``) seeing what changed since the previous version.
Feedback: a grantee of a ready share drafts and sends it; the employee reads, acknowledges,
replies, deletes, and alone sees their ratings over time (``/me/progress``).
"""

from __future__ import annotations

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import Strict
from app.auth import current_user, db_session, require
from app.context import runtime
from app.models import Role
from app.services import feedback, forms

blp = Blueprint(
    "feedback",
    __name__,
    url_prefix="/api/v1",
    description="Coaching feedback that belongs to the employee",
)
forms_admin = Blueprint(
    "feedback_forms_admin",
    __name__,
    url_prefix="/api/v1/admin",
    description="Feedback forms: proposals (admin)",
)
forms_oversight = Blueprint(
    "feedback_forms_oversight",
    __name__,
    url_prefix="/api/v1/oversight",
    description="Feedback forms: approval (representative)",
)


class FormSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    family_id = ma.fields.UUID(required=True)
    version = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    language = ma.fields.String(required=True)
    criteria = ma.fields.List(ma.fields.Dict(), required=True)
    status = ma.fields.String(
        required=True, metadata={"description": "proposed, approved, rejected or retired"}
    )
    reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    retired_at = ma.fields.AwareDateTime(allow_none=True)


class ReviewFormSchema(FormSchema):
    changes = ma.fields.Dict(
        allow_none=True,
        metadata={"description": "what differs from the previous version (null for a first one)"},
    )


class FormListSchema(ma.Schema):
    forms = ma.fields.List(ma.fields.Nested(FormSchema), required=True)


class ReviewFormListSchema(ma.Schema):
    forms = ma.fields.List(ma.fields.Nested(ReviewFormSchema), required=True)


class FormProposalSchema(Strict):
    name = ma.fields.String(required=True)
    language = ma.fields.String(load_default="en")
    criteria = ma.fields.Raw(
        required=True,
        metadata={
            "description": 'each {id, title, description, scale}; scale is "yes_no" or '
            "{min, max, labels}"
        },
    )
    replaces = ma.fields.UUID(
        load_default=None, metadata={"description": "an earlier version: propose a change to it"}
    )


class RejectSchema(Strict):
    reason = ma.fields.String(required=True)


class RatingSchema(ma.Schema):
    criterion_id = ma.fields.String(required=True)
    value = ma.fields.Raw(required=True, metadata={"description": "a step of the scale, or a bool"})
    comment = ma.fields.String(allow_none=True)
    at_s = ma.fields.List(ma.fields.Raw(), metadata={"description": "linked moments, seconds"})


def _draft_fields() -> dict[str, ma.fields.Field]:
    return {
        "ratings": ma.fields.Raw(
            metadata={"description": "[{criterion_id, value, comment?, at_s?}]"}
        ),
        "strengths": ma.fields.String(),
        "next_step": ma.fields.String(),
        "summary": ma.fields.String(),
    }


FeedbackCreateSchema = Strict.from_dict(
    {"form_id": ma.fields.String(required=True), **_draft_fields()}, name="FeedbackCreate"
)
FeedbackUpdateSchema = Strict.from_dict(_draft_fields(), name="FeedbackUpdate")


class AcknowledgeSchema(Strict):
    reply = ma.fields.String(load_default=None, allow_none=True)
    agree = ma.fields.Boolean(load_default=None, allow_none=True)


class FeedbackSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    share_id = ma.fields.UUID(allow_none=True)
    form_id = ma.fields.UUID(required=True)
    form = ma.fields.Nested(FormSchema, required=True)
    status = ma.fields.String(
        required=True, metadata={"description": "draft, sent or acknowledged"}
    )
    ratings = ma.fields.List(ma.fields.Nested(RatingSchema), required=True)
    strengths = ma.fields.String(required=True)
    next_step = ma.fields.String(required=True)
    summary = ma.fields.String(required=True)
    coach = ma.fields.Dict(allow_none=True)
    employee = ma.fields.Dict(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
    sent_at = ma.fields.AwareDateTime(allow_none=True)
    acknowledged_at = ma.fields.AwareDateTime(allow_none=True)
    reply = ma.fields.String(allow_none=True)
    agree = ma.fields.Boolean(allow_none=True)
    share_playable = ma.fields.Boolean(
        required=True, metadata={"description": "whether the linked moments can be played now"}
    )


class FeedbackListSchema(ma.Schema):
    feedback = ma.fields.List(ma.fields.Nested(FeedbackSchema), required=True)


class PointSchema(ma.Schema):
    at = ma.fields.AwareDateTime(required=True)
    value = ma.fields.Raw(required=True)
    feedback_id = ma.fields.UUID(required=True)


class SeriesSchema(ma.Schema):
    form_name = ma.fields.String(required=True)
    criterion_id = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    scale = ma.fields.Raw(required=True)
    labels = ma.fields.List(ma.fields.String(), required=True)
    points = ma.fields.List(ma.fields.Nested(PointSchema), required=True)


class NextStepSchema(ma.Schema):
    feedback_id = ma.fields.UUID(required=True)
    next_step = ma.fields.String(required=True)
    sent_at = ma.fields.AwareDateTime(required=True)


class ProgressSchema(ma.Schema):
    criteria = ma.fields.List(ma.fields.Nested(SeriesSchema), required=True)
    next_steps = ma.fields.List(ma.fields.Nested(NextStepSchema), required=True)


# --- forms ------------------------------------------------------------------------------------


@forms_admin.route("/feedback-forms", methods=["GET"])
@require(Role.ADMIN)
@forms_admin.response(200, ReviewFormListSchema)
def admin_list_forms():
    """Every version of every form, with its status (and a rejection's reason)."""
    return _every_version()


def _every_version() -> dict:
    session = db_session()
    return {"forms": [forms.present_for_review(session, f) for f in forms.every_version(session)]}


@forms_admin.route("/feedback-forms", methods=["POST"])
@require(Role.ADMIN)
@forms_admin.arguments(FormProposalSchema)
@forms_admin.response(201, FormSchema)
def propose_form(args):
    """Propose a form, or with ``replaces`` a new version of one; the representative decides."""
    session = db_session()
    form = forms.propose(
        session,
        name=args["name"],
        language=args["language"],
        criteria=args["criteria"],
        replaces=args["replaces"],
        actor_id=current_user().id,
    )
    session.commit()
    return forms.present(form), 201


@forms_admin.route("/feedback-forms/<string:form_id>/retire", methods=["POST"])
@require(Role.ADMIN)
@forms_admin.response(200, FormSchema)
def retire_form(form_id: str):
    """Stop offering an approved form; feedback written on it stays readable."""
    session = db_session()
    form = forms.retire(session, form_id, actor_id=current_user().id)
    session.commit()
    return forms.present(form)


@forms_oversight.route("/feedback-forms", methods=["GET"])
@require(Role.REPRESENTATIVE)
@forms_oversight.response(200, ReviewFormListSchema)
def review_forms():
    """Every version of every form, each with what changed since its previous version."""
    return _every_version()


@forms_oversight.route("/feedback-forms/<string:form_id>/approve", methods=["POST"])
@require(Role.REPRESENTATIVE)
@forms_oversight.response(200, FormSchema)
def approve_form(form_id: str):
    """Approve a proposed form: coaches can use it (its previous version is retired)."""
    session = db_session()
    form = forms.approve(session, form_id, actor_id=current_user().id)
    session.commit()
    return forms.present(form)


@forms_oversight.route("/feedback-forms/<string:form_id>/reject", methods=["POST"])
@require(Role.REPRESENTATIVE)
@forms_oversight.arguments(RejectSchema)
@forms_oversight.response(200, FormSchema)
def reject_form(args, form_id: str):
    """Reject a proposed form, with a reason the admin reads."""
    session = db_session()
    form = forms.reject(session, form_id, args["reason"], actor_id=current_user().id)
    session.commit()
    return forms.present(form)


@blp.route("/feedback-forms", methods=["GET"])
@require(Role.COACH, Role.EMPLOYEE, Role.REPRESENTATIVE)
@blp.response(200, FormListSchema)
def list_forms():
    """The approved forms: what employees can be given feedback on."""
    return {"forms": [forms.present(f) for f in forms.approved(db_session())]}


# --- feedback ---------------------------------------------------------------------------------


def _draft(args: dict) -> feedback.Draft:
    return feedback.Draft(
        ratings=args.get("ratings"),
        strengths=args.get("strengths"),
        next_step=args.get("next_step"),
        summary=args.get("summary"),
    )


@blp.route("/shares/<string:share_id>/feedback", methods=["POST"])
@require(Role.COACH)
@blp.arguments(FeedbackCreateSchema)
@blp.response(201, FeedbackSchema)
@blp.alt_response(410, description="The share has ended")
@blp.alt_response(422, description="The share is not ready, or the form is not approved")
def create_feedback(args, share_id: str):
    """Start feedback on a ready share granted to me: a draft only I see until I send it."""
    rt, session, user = runtime(), db_session(), current_user()
    row = feedback.create(session, rt, user, share_id, args["form_id"], _draft(args))
    session.commit()
    return feedback.present(session, rt, row), 201


@blp.route("/feedback", methods=["GET"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(200, FeedbackListSchema)
def list_feedback():
    """Feedback I received (employee), or gave on shares that still live (coach)."""
    rt, session, user = runtime(), db_session(), current_user()
    return {
        "feedback": [feedback.present(session, rt, r) for r in feedback.list_for(session, user)]
    }


@blp.route("/feedback/<string:feedback_id>", methods=["GET"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(200, FeedbackSchema)
def get_feedback(feedback_id: str):
    """One piece of feedback."""
    rt, session, user = runtime(), db_session(), current_user()
    return feedback.present(session, rt, feedback.get_for(session, user, feedback_id))


@blp.route("/feedback/<string:feedback_id>", methods=["PATCH"])
@require(Role.COACH)
@blp.arguments(FeedbackUpdateSchema)
@blp.response(200, FeedbackSchema)
@blp.alt_response(409, description="Already sent")
def update_feedback(args, feedback_id: str):
    """Change my draft (the page autosaves with this)."""
    rt, session, user = runtime(), db_session(), current_user()
    row = feedback.update(session, rt, user, feedback_id, _draft(args))
    session.commit()
    return feedback.present(session, rt, row)


@blp.route("/feedback/<string:feedback_id>/send", methods=["POST"])
@require(Role.COACH)
@blp.response(200, FeedbackSchema)
@blp.alt_response(409, description="Already sent")
@blp.alt_response(422, description="Not every criterion rated, or no next step")
def send_feedback(feedback_id: str):
    """Send my draft to the employee (they get an e-mail with a link, if they want one)."""
    rt, session, user = runtime(), db_session(), current_user()
    row = feedback.send(session, rt, user, feedback_id)
    session.commit()
    return feedback.present(session, rt, row)


@blp.route("/feedback/<string:feedback_id>/acknowledge", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.arguments(AcknowledgeSchema)
@blp.response(200, FeedbackSchema)
@blp.alt_response(409, description="Already acknowledged")
def acknowledge_feedback(args, feedback_id: str):
    """Say I have read it; optionally reply, and say whether I agree."""
    rt, session, user = runtime(), db_session(), current_user()
    row = feedback.acknowledge(
        session, rt, user, feedback_id, reply=args["reply"], agree=args["agree"]
    )
    session.commit()
    return feedback.present(session, rt, row)


@blp.route("/feedback/<string:feedback_id>", methods=["DELETE"])
@require(Role.EMPLOYEE)
@blp.response(204)
def delete_feedback(feedback_id: str):
    """Shred feedback I received: its key is destroyed, nobody can read it again."""
    rt, session, user = runtime(), db_session(), current_user()
    feedback.delete(session, rt, user, feedback_id)
    session.commit()
    return "", 204


@blp.route("/me/progress", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, ProgressSchema)
def my_progress():
    """My own ratings per criterion over time, and my next steps. Only I see this."""
    rt, session, user = runtime(), db_session(), current_user()
    return feedback.progress(session, rt, user)


blueprints = [blp, forms_admin, forms_oversight]
