"""``/api/v1/shares``: the opt-in, the revocation, comments, views and the access log."""

from __future__ import annotations

import time

from app.api.blueprint import Blueprint
from app.api.schemas import (
    AccessLogSchema,
    CoachListSchema,
    CommentCreateSchema,
    CommentListSchema,
    CommentSchema,
    HeartbeatSchema,
    PolicySchema,
    RevocationSchema,
    ShareCreateSchema,
    ShareListSchema,
    ShareSchema,
    ViewStartSchema,
)
from app.auth import current_user, db_session, require
from app.context import runtime
from app.links import share_media_links
from app.models import Role
from app.services import i18n, policy, revocations, shares, shredding, users, viewing

blp = Blueprint(
    "shares", __name__, url_prefix="/api/v1", description="Shares: the opt-in and its withdrawal"
)


def present(session, rt, share, user) -> dict:
    """A share as the API answers it: the domain's view plus media links when it plays."""
    data = shares.present(session, rt, share, user)
    if data.get("playable"):
        data["media"] = share_media_links(share.id)
    return data


@blp.route("/recordings/<string:recording_id>/shares", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.arguments(ShareCreateSchema)
@blp.response(202, ShareSchema)
@blp.alt_response(404, description="No such recording of yours")
@blp.alt_response(422, description="A choice the recording does not allow")
def create_share(args, recording_id: str):
    """The opt-in: share one recording with named coaches, for a purpose, until an end date."""
    rt, session, user = runtime(), db_session(), current_user()
    trim = args.get("trim") or {}
    share = shares.create_share(
        session,
        rt,
        user,
        recording_id,
        shares.ShareRequest(
            coach_ids=args["coach_ids"],
            purpose=args["purpose"],
            expires_in_days=args["expires_in_days"],
            trim_start_s=trim.get("start_s"),
            trim_end_s=trim.get("end_s"),
            include_customer_audio=args["include_customer_audio"],
            note=args.get("note"),
            redactions=args.get("redactions"),
            language=args.get("language") or i18n.current(),
        ),
    )
    session.commit()
    return present(session, rt, share, user), 202


@blp.route("/shares", methods=["GET"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(200, ShareListSchema)
def list_shares():
    """My shares (employee) or the shares granted to me (coach)."""
    rt, session, user = runtime(), db_session(), current_user()
    return {"shares": [present(session, rt, s, user) for s in shares.list_for(session, user)]}


@blp.route("/shares/<string:share_id>", methods=["GET"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(200, ShareSchema)
def get_share(share_id: str):
    """Status, progress, error, expiry, and media links when ready."""
    rt, session, user = runtime(), db_session(), current_user()
    return present(session, rt, shares.get_for_viewer(session, user, share_id), user)


@blp.route("/shares/<string:share_id>/revoke", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.response(200, RevocationSchema)
def revoke_share(share_id: str):
    """Withdraw consent: access stops at once, the key is destroyed, a certificate returned."""
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_owner(session, user, share_id)
    session.rollback()
    ending = time.monotonic()
    outcome = shredding.end_share(rt, share.id, reason="revoked", actor_id=user.id)
    # Answer only once every web process has stopped serving it (at once with NOTIFY or
    # every process's confirmation on the local bus).
    revocations.settle(rt.db, ending, confirmed=outcome.known_everywhere)
    # Where a revoke's time went (RFC 9110 Server-Timing: the steps' names and milliseconds,
    # no content), for whoever measures it.
    timing = ", ".join(f"{step};dur={s * 1000:.1f}" for step, s in outcome.timings.items())
    return (
        {
            "id": outcome.share_id,
            "status": outcome.status.value,
            "revoked_at": outcome.ended_at,
            "key_destroyed": outcome.key_destroyed,
            "certificate": outcome.certificate,
        },
        200,
        {"Server-Timing": timing} if timing else {},
    )


@blp.route("/shares/<string:share_id>/access-log", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, AccessLogSchema)
def access_log(share_id: str):
    """Every access event of this share, and each viewing session."""
    rt, session, user = runtime(), db_session(), current_user()
    viewing.flush(rt.db, rt.views)  # what this process served is in the log at once
    return shares.access_log(session, shares.get_for_owner(session, user, share_id))


@blp.route("/shares/<string:share_id>/comments", methods=["GET"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(200, CommentListSchema)
def list_comments(share_id: str):
    """Timestamped comments, decrypted with the share's key."""
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    return {"comments": shares.list_comments(session, rt, share)}


@blp.route("/shares/<string:share_id>/comments", methods=["POST"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.arguments(CommentCreateSchema)
@blp.response(201, CommentSchema)
def add_comment(args, share_id: str):
    """Comment at a time in the recording (stored encrypted under the share's key)."""
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    comment = shares.add_comment(session, rt, share, user, args["at_s"], args["body"])
    session.commit()
    return comment, 201


@blp.route("/shares/<string:share_id>/views", methods=["POST"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.response(201, ViewStartSchema)
def start_view(share_id: str):
    """Start a viewing session (the player calls this, then sends heartbeats)."""
    session, user = db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    shares.require_viewable(share)
    view = viewing.start(session, share, user)
    session.commit()
    return {"id": view.id}, 201


@blp.route("/shares/<string:share_id>/views/<string:view_id>/heartbeat", methods=["POST"])
@require(Role.EMPLOYEE, Role.COACH)
@blp.arguments(HeartbeatSchema)
@blp.response(200, ViewStartSchema)
@blp.alt_response(410, description="Consent ended: the player must stop")
def heartbeat(args, share_id: str, view_id: str):
    """The player's heartbeat: time watched since the last one. 410 once consent ends."""
    session, user = db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    shares.require_viewable(share)
    view = viewing.heartbeat(session, share, user, view_id, args["watched_s"], args["position_s"])
    session.commit()
    return {"id": view.id}


@blp.route("/coaches", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, CoachListSchema)
def list_coaches():
    """The coaches an employee can choose from, told apart: login, team, new accounts marked."""
    return {"coaches": users.coach_choices(db_session())}


@blp.route("/policy", methods=["GET"])
@require()
@blp.response(200, PolicySchema)
def get_policy():
    """The policy in force: limits and the consent text an employee agrees to."""
    return policy.current_policy(db_session())
