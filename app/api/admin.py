"""``/api/v1/admin`` and ``/api/v1/oversight``: running and overseeing, never watching.

Nothing here returns a recording, a share, a title, a comment or who shared or declined — and
nothing returns a credential, a session or a link that acts as someone else (SPEC §2.5): an
admin can only have a single-use link sent to the person's own e-mail address.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate
from sqlalchemy import select

from app.api.blueprint import Blueprint
from app.api.schemas import PolicySchema, Strict
from app.auth import current_user, db_session, require
from app.context import runtime
from app.models import Role, Team
from app.services import account_links, datamap, i18n, keys, mail, oversight, policy, users
from app.services.errors import Conflict, InvalidRequest

admin = Blueprint(
    "admin",
    __name__,
    url_prefix="/api/v1/admin",
    description="Users, teams, policy and keys (no content)",
)
oversight_blp = Blueprint(
    "oversight",
    __name__,
    url_prefix="/api/v1/oversight",
    description="Aggregate figures for representatives (no names)",
)


class TeamSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)


class AdminUserSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    login = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    team = ma.fields.Nested(TeamSchema, allow_none=True)
    created_at = ma.fields.AwareDateTime()
    email = ma.fields.String(allow_none=True)
    enrolled = ma.fields.Boolean(
        required=True,
        metadata={"description": "has held a credential; from then on only they set the e-mail"},
    )
    source = ma.fields.String(
        required=True,
        validate=validate.OneOf(["local", "provider"]),
        metadata={
            "description": "provider: signs in with the organisation's identity provider (no "
            "password, no enrolment or reset link); local: a password or tokens made here"
        },
    )


class AdminUserListSchema(ma.Schema):
    users = ma.fields.List(ma.fields.Nested(AdminUserSchema), required=True)


class UserCreateSchema(Strict):
    login = ma.fields.String(required=True, validate=validate.Length(min=2, max=63))
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = ma.fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    team_id = ma.fields.UUID(load_default=None)
    email = ma.fields.String(load_default=None, validate=validate.Length(max=254))
    send_enrolment_link = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "with an e-mail address: send the enrolment link at once"},
    )


class UserUpdateSchema(Strict):
    active = ma.fields.Boolean()
    team_id = ma.fields.UUID(allow_none=True)
    email = ma.fields.String(
        allow_none=True,
        validate=validate.Length(max=254),
        metadata={"description": "only before the person first signs in"},
    )


class CreatedUserSchema(AdminUserSchema):
    enrolment_link_sent = ma.fields.Boolean(required=True)


class LinkSentSchema(ma.Schema):
    kind = ma.fields.String(required=True, metadata={"description": "enrolment or reset"})
    email = ma.fields.String(required=True, metadata={"description": "where it goes"})
    queued = ma.fields.Boolean(required=True)


class MailFailureSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    kind = ma.fields.String(required=True)
    user_id = ma.fields.UUID(allow_none=True)
    login = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    failed_at = ma.fields.AwareDateTime(allow_none=True)
    attempts = ma.fields.Integer(required=True)
    error = ma.fields.String(allow_none=True)


class MailOverviewSchema(ma.Schema):
    queued = ma.fields.Integer(required=True)
    failed = ma.fields.Integer(required=True)
    failures = ma.fields.List(ma.fields.Nested(MailFailureSchema), required=True)


class TeamCreateSchema(Strict):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))


class TeamListSchema(ma.Schema):
    teams = ma.fields.List(ma.fields.Nested(TeamSchema), required=True)


class PolicyUpdateSchema(Strict):
    max_share_days = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=365))
    draft_lifetime_hours = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=720))
    max_upload_bytes = ma.fields.Integer(strict=True, validate=validate.Range(min=1 << 20))
    consent_text = ma.fields.String(validate=validate.Length(min=20, max=20000))
    # {"en": "…", "nb": "…"}; a null Norwegian text removes it (the domain checks the rest).
    consent_texts = ma.fields.Dict(
        keys=ma.fields.String(validate=validate.Length(max=16)),
        values=ma.fields.String(allow_none=True, validate=validate.Length(max=20000)),
    )


class KeyVersionSchema(ma.Schema):
    version = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    current = ma.fields.Boolean(required=True)
    created_at = ma.fields.Raw(allow_none=True)
    # Whether any data key uses it — not how many: a count would let an admin watch drafts
    # being made and discarded (SPEC §2.7).
    in_use = ma.fields.Boolean(required=True)


class KeyStatusSchema(ma.Schema):
    versions = ma.fields.List(ma.fields.Nested(KeyVersionSchema), required=True)


class RotationSchema(ma.Schema):
    # No counts: how many keys exist would tell an admin how many drafts there are.
    new_version = ma.fields.Integer(required=True)
    completed = ma.fields.Boolean(required=True)


class RetireSchema(ma.Schema):
    destroyed = ma.fields.List(ma.fields.Integer(), required=True)


class WeekSchema(ma.Schema):
    week_start = ma.fields.String(required=True)
    shares_made = ma.fields.Integer(allow_none=True)
    shares_revoked = ma.fields.Integer(allow_none=True)
    shares_expired = ma.fields.Integer(allow_none=True)
    plays = ma.fields.Integer(allow_none=True)
    account_resets = ma.fields.Integer(allow_none=True)
    feedback_sent = ma.fields.Integer(allow_none=True)
    feedback_acknowledged = ma.fields.Integer(allow_none=True)


class SummarySchema(ma.Schema):
    weeks = ma.fields.List(ma.fields.Nested(WeekSchema), required=True)
    forms_in_use = ma.fields.Integer(metadata={"description": "approved feedback forms"})
    suppressed_below = ma.fields.Integer(required=True)
    note = ma.fields.String()


class SummaryArgs(Strict):
    weeks = ma.fields.Integer(load_default=12, validate=validate.Range(min=1, max=104))


class PolicyHistorySchema(ma.Schema):
    versions = ma.fields.List(ma.fields.Nested(PolicySchema), required=True)


class ChainSchema(ma.Schema):
    """A verification result: no event count, no head hash (either would be a live counter
    of activity)."""

    ok = ma.fields.Boolean(required=True)
    broken_seq = ma.fields.Integer(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    checked_at = ma.fields.AwareDateTime(required=True)


class DataMapEntrySchema(ma.Schema):
    what = ma.fields.String(required=True)
    whose = ma.fields.String(required=True)
    personal = ma.fields.Boolean(required=True)
    protection = ma.fields.String(required=True)
    deleted = ma.fields.String(required=True)


def _entries() -> ma.fields.Dict:
    return ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Nested(DataMapEntrySchema), required=True
    )


class DataMapSchema(ma.Schema):
    """app/services/datamap.py: what is kept, whose, how protected, when deleted."""

    tables = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    columns = _entries()
    store = _entries()
    object_kinds = _entries()
    emails = _entries()
    log_fields = _entries()
    log_values = _entries()


def _present_user(user) -> dict:
    return {
        "id": user.id,
        "login": user.login,
        "name": user.name,
        "role": user.role.value,
        "active": user.active,
        "created_at": user.created_at,
        "team": {"id": user.team.id, "name": user.team.name} if user.team else None,
        "email": user.email,
        "enrolled": user.enrolled_at is not None,
        "source": "provider" if user.from_provider else "local",
    }


def _team(session, team_id):
    if team_id is None:
        return None
    team = session.get(Team, team_id)
    if team is None:
        raise InvalidRequest(i18n._("No such team."), code="unknown_team")
    return team


@admin.route("/users", methods=["GET"])
@require(Role.ADMIN)
@admin.response(200, AdminUserListSchema)
def list_users():
    """All users: login, name, role, team, active."""
    return {"users": [_present_user(u) for u in users.list_users(db_session())]}


@admin.route("/users", methods=["POST"])
@require(Role.ADMIN)
@admin.arguments(UserCreateSchema)
@admin.response(201, CreatedUserSchema)
def create_user(args):
    """Create a user. No credential is answered: with an e-mail address the person gets an
    enrolment link there; without one, the operator's CLI prints one."""
    session, actor = db_session(), current_user()
    team = _team(session, args["team_id"])
    user = users.create_user(
        session,
        login=args["login"],
        name=args["name"],
        role=args["role"],
        team_id=team.id if team else None,
        email=args["email"],
        actor_id=actor.id,
    )
    sent = bool(user.email and args["send_enrolment_link"])
    if sent:
        mail.queue(session, runtime(), user, "enrolment", actor_id=actor.id)
    session.commit()
    return {**_present_user(user), "enrolment_link_sent": sent}, 201


@admin.route("/users/<string:user_id>", methods=["PATCH"])
@require(Role.ADMIN)
@admin.arguments(UserUpdateSchema)
@admin.response(200, AdminUserSchema)
def update_user(args, user_id: str):
    """Deactivate or reactivate a user, move them to a team, or set the e-mail address of
    someone who has not signed in yet."""
    session, actor = db_session(), current_user()
    user = users.get_user_by_text_id(session, user_id)
    if "active" in args:
        if user.id == actor.id and not args["active"]:
            raise Conflict(i18n._("You cannot deactivate yourself."), code="self_deactivation")
        users.set_active(session, user, args["active"], actor_id=actor.id)
    if "team_id" in args:
        team = _team(session, args["team_id"])
        user.team_id = team.id if team else None
    if "email" in args:
        users.set_email(session, user, args["email"], actor_id=actor.id, by_admin=True)
    session.commit()
    return _present_user(user)


@admin.route("/users/<string:user_id>/enrolment-link", methods=["POST"])
@require(Role.ADMIN)
@admin.response(202, LinkSentSchema)
@admin.alt_response(
    409,
    description="No e-mail address, deactivated, already enrolled, or signs in with the "
    "identity provider",
)
def send_enrolment_link(user_id: str):
    """E-mail the person a single-use link to set their password or make a token. Nothing
    comes back: the link goes only to their own address."""
    session, actor = db_session(), current_user()
    user = users.get_user_by_text_id(session, user_id)
    account_links.refuse_provider_account(user)
    if user.enrolled_at is not None:
        raise Conflict(
            i18n._("%(name)s has signed in before; send a reset link instead.", name=user.name),
            code="already_enrolled",
        )
    mail.queue(session, runtime(), user, "enrolment", actor_id=actor.id)
    session.commit()
    return {"kind": "enrolment", "email": user.email, "queued": True}, 202


@admin.route("/users/<string:user_id>/reset", methods=["POST"])
@require(Role.ADMIN)
@admin.response(202, LinkSentSchema)
@admin.alt_response(
    409, description="No e-mail address, deactivated, or signs in with the identity provider"
)
def reset_user(user_id: str):
    """Reset an account: every session and API token of the person ends at once, and a
    single-use link to choose a new password goes to their own e-mail address. The person
    sees it at their next sign-in and in their security log; oversight counts resets."""
    session, actor = db_session(), current_user()
    user = users.get_user_by_text_id(session, user_id)
    mail.queue(session, runtime(), user, "reset", actor_id=actor.id)
    users.reset(session, user, actor_id=actor.id)
    session.commit()
    return {"kind": "reset", "email": user.email, "queued": True}, 202


@admin.route("/mail", methods=["GET"])
@require(Role.ADMIN)
@admin.response(200, MailOverviewSchema)
def mail_overview():
    """E-mail waiting and failed (after every retry): counts, and the failures without content."""
    return mail.overview(db_session())


@admin.route("/teams", methods=["GET"])
@require(Role.ADMIN)
@admin.response(200, TeamListSchema)
def list_teams():
    """All teams."""
    teams = db_session().scalars(select(Team).order_by(Team.name))
    return {"teams": [{"id": t.id, "name": t.name} for t in teams]}


@admin.route("/teams", methods=["POST"])
@require(Role.ADMIN)
@admin.arguments(TeamCreateSchema)
@admin.response(201, TeamSchema)
def create_team(args):
    """Create a team."""
    session = db_session()
    team = users.create_team(session, args["name"], actor_id=current_user().id)
    session.commit()
    return {"id": team.id, "name": team.name}, 201


@admin.route("/policy", methods=["GET"])
@require(Role.ADMIN)
@admin.response(200, PolicySchema)
def get_policy():
    """The policy in force."""
    return policy.current_policy(db_session())


@admin.route("/policy", methods=["PUT"])
@require(Role.ADMIN)
@admin.arguments(PolicyUpdateSchema)
@admin.response(200, PolicySchema)
def update_policy(args):
    """Change the policy (a new version; earlier versions stay in the history)."""
    session = db_session()
    new = policy.update_policy(
        session,
        actor_id=current_user().id,
        hard_upload_limit=runtime().settings.max_upload_bytes,
        **args,
    )
    session.commit()
    return new


@admin.route("/keys", methods=["GET"])
@require(Role.ADMIN)
@admin.response(200, KeyStatusSchema)
def key_status():
    """Key-encryption key versions, and whether each still wraps a data key."""
    rt = runtime()
    return {"versions": keys.status(rt.db, rt.kek)}


@admin.route("/keys/rotate", methods=["POST"])
@require(Role.ADMIN)
@admin.response(200, RotationSchema)
def rotate_keys():
    """Add a KEK version and rewrap every live data key under it."""
    rt = runtime()
    report = keys.rotate(rt.db, rt.kek, actor_id=current_user().id)
    return {"new_version": report.new_version, "completed": True}


@admin.route("/keys/retire", methods=["POST"])
@require(Role.ADMIN)
@admin.response(200, RetireSchema)
def retire_keys():
    """Destroy KEK versions that no data key uses any more."""
    rt = runtime()
    destroyed = keys.retire(rt.db, rt.kek, actor_id=current_user().id)
    return {"destroyed": destroyed}


@oversight_blp.route("/summary", methods=["GET"])
@require(Role.REPRESENTATIVE)
@oversight_blp.arguments(SummaryArgs, location="query")
@oversight_blp.response(200, SummarySchema)
def summary(args):
    """Weekly figures: shares made, revoked, expired; plays. Small counts suppressed."""
    return oversight.weekly_summary(db_session(), args["weeks"])


@oversight_blp.route("/policy-history", methods=["GET"])
@require(Role.REPRESENTATIVE)
@oversight_blp.response(200, PolicyHistorySchema)
def policy_history():
    """Every version of the policy, newest first."""
    return {"versions": oversight.policy_history(db_session())}


@oversight_blp.route("/audit-chain", methods=["GET"])
@require(Role.REPRESENTATIVE, Role.ADMIN)
@oversight_blp.response(200, ChainSchema)
def audit_chain():
    """Verify the audit log's hash chain: intact or not (no events, no counts)."""
    return oversight.verify_audit(db_session())


@oversight_blp.route("/data-map", methods=["GET"])
@require(Role.REPRESENTATIVE, Role.ADMIN)
@oversight_blp.response(200, DataMapSchema)
def data_map():
    """The data map, a record of processing: every column, object kind, log field and e-mail,
    whose it is, whether it is personal data, how it is protected and when it is deleted."""
    return datamap.as_json()


blueprints = [admin, oversight_blp]
