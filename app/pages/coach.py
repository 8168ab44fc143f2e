"""The coach's pages: what was shared with me, and the playback page.

Both are rendered on the server from the same services the API uses; the playback page then
drives the JSON API and the media endpoint from the ES modules in ``static/js/player/``.
Everything a script needs travels in ``data-*`` attributes (strict CSP: no inline script or
style).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, make_response, render_template

from app.auth import current_user, db_session, require
from app.context import runtime
from app.links import share_media_links
from app.models import Role, utcnow
from app.pages.formatting import clock
from app.services import feedback, forms, i18n, shares
from app.services.errors import Gone, NotFound

bp = Blueprint("coach_pages", __name__)

ENDED = ("revoked", "expired")
NOT_FOUND_MESSAGE = i18n.N_("There is no recording here that has been shared with you.")
ENDED_MESSAGE = i18n.N_("This share has ended. The recording is no longer available to you.")


def ends_in(when: datetime | None, now: datetime | None = None) -> str:
    """A short human distance to an end date: "ends in 3 days", "ended 2 hours ago"."""
    if when is None:
        return ""
    now = now or utcnow()
    seconds = (when - now).total_seconds()
    future = seconds > 0
    seconds = abs(seconds)
    if seconds < 3600:
        text = i18n.ngettext("%(num)s minute", "%(num)s minutes", max(1, round(seconds / 60)))
    elif seconds < 86400 * 1.5:
        text = i18n.ngettext("%(num)s hour", "%(num)s hours", round(seconds / 3600))
    else:
        text = i18n.ngettext("%(num)s day", "%(num)s days", round(seconds / 86400))
    return (
        i18n._("ends in %(time)s", time=text) if future else i18n._("ended %(time)s ago", time=text)
    )


def _date(when: datetime | None) -> str:
    if when is None:
        return ""
    return i18n.format_datetime(when)


def _day(when: datetime | None) -> str:
    return i18n.format_date(when) if when else ""


def duration_label(seconds: float | None) -> str:
    return clock(seconds) if seconds else ""


def _decorate(item: dict[str, Any]) -> dict[str, Any]:
    """Add what the templates show but the API does not carry (display strings, flags)."""
    if item["status"] == shares.ENDED:
        # All a coach may know of a share that ended: that it did.
        return {**item, "ended": True, "display_status": shares.ENDED, "playable": False}
    now = utcnow()
    status = item["status"]
    expires_at = item["expires_at"]
    if status == "ready" and expires_at <= now:
        status = "expired"  # the sweeper has not marked it yet; it is over all the same
    item["display_status"] = status
    item["ended"] = status in ENDED
    item["playable"] = status == "ready" and item["playable"]
    item["expires_label"] = _date(expires_at)
    item["expires_day"] = _day(expires_at)
    item["expires_iso"] = expires_at.isoformat()
    item["ends_in"] = ends_in(expires_at, now) if not item["ended"] else ""
    ended_at = item.get("ended_at") or (expires_at if status == "expired" else None)
    item["ended_label"] = _date(ended_at)
    item["ended_day"] = _day(ended_at)
    item["ended_iso"] = ended_at.isoformat() if ended_at else ""
    item["duration_label"] = duration_label(item.get("duration_s"))
    item["ends_soon"] = not item["ended"] and (expires_at - now).total_seconds() < 86400
    return item


def _private(html: str, status: int = 200) -> Response:
    # Titles, purposes and comments are personal data: keep them out of shared caches and
    # out of the back-button cache after sign-out.
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _choices(scale: Any) -> list[tuple[str, str]]:
    """Each step of a scale as (the value the API takes, as text; its label)."""
    labels = forms.labels_of(scale)
    if scale == forms.YES_NO:
        return [("false", labels[0]), ("true", labels[1])]
    return [(str(scale["min"] + index), label) for index, label in enumerate(labels)]


def _feedback_panel(session, rt, share, coach) -> dict[str, Any]:
    """The coach's feedback beside the player: the approved forms, their open draft on this
    share (the page goes on with it), and what they already sent."""
    given = [
        feedback.present(session, rt, row)
        for row in feedback.list_for(session, coach)
        if row.share_id == share.id
    ]
    draft = next((f for f in given if f["status"] == "draft"), None)
    offered = [forms.present(f) for f in forms.approved(session)]
    if draft is not None and all(f["id"] != draft["form_id"] for f in offered):
        offered.insert(0, draft["form"])  # retired since the draft began: finish on it
    chosen = draft["form_id"] if draft else (offered[0]["id"] if offered else None)
    ratings = {r["criterion_id"]: r for r in draft["ratings"]} if draft else {}
    return {
        "forms": [
            {**f, "labelled": [(c, _choices(c["scale"])) for c in f["criteria"]]} for f in offered
        ],
        "draft": draft,
        "chosen": chosen,
        "ratings": ratings,
        "sent": [f for f in given if f["status"] != "draft"],
    }


@bp.route("/coach")
@require(Role.COACH, page=True)
def shared_with_me():
    rt, session, user = runtime(), db_session(), current_user()
    items = [
        _decorate(shares.present(session, rt, share, user))
        for share in shares.list_for(session, user)
    ]
    current = [i for i in items if not i["ended"]]
    ended = [i for i in items if i["ended"]]
    # Ready first, then in preparation, then failed; newest first within each group.
    order = {"ready": 0, "processing": 1, "failed": 2}
    current.sort(key=lambda i: order.get(i["display_status"], 3))
    return _private(
        render_template(
            "coach/shared.html",
            current=current,
            ended=ended,
            any_processing=any(i["display_status"] == "processing" for i in current),
        )
    )


@bp.route("/coach/shares/<share_id>")
@require(Role.COACH, Role.EMPLOYEE, page=True)
def playback(share_id: str):
    rt, session, user = runtime(), db_session(), current_user()
    try:
        share = shares.get_for_viewer(session, user, share_id)
    except NotFound:
        # Someone else's share and no share at all look exactly alike.
        return _private(
            render_template(
                "error.html",
                status=404,
                code="not_found",
                message=i18n.translate(NOT_FOUND_MESSAGE),
            ),
            404,
        )
    except Gone as gone:
        return _private(
            render_template(
                "error.html", status=410, code=gone.code, message=i18n.translate(ENDED_MESSAGE)
            ),
            410,
        )
    item = _decorate(shares.present(session, rt, share, user))
    if item["playable"]:
        item["media"] = share_media_links(share.id)
    comments = shares.list_comments(session, rt, share) if item["playable"] else []
    is_owner = share.owner_id == user.id
    panel = _feedback_panel(session, rt, share, user) if item["playable"] and not is_owner else None
    now = utcnow()
    return _private(
        render_template(
            "coach/playback.html",
            share=item,
            comments=comments,
            is_owner=is_owner,
            viewer=user,
            panel=panel,
            today=i18n.format_date(now),
            clock=clock,
            date=_date,
        )
    )
