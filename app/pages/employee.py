"""The employee's pages: recordings, the opt-in, capture, shares, their data.

The lists are rendered here (escaped by Jinja) from the same services the JSON API uses; the
actions on them (share, revoke, delete, comment, upload) go through the public API from the
static scripts, with the CSRF token from the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, render_template, request, url_for

from app.auth import current_user, db_session, require
from app.context import runtime
from app.models import Role, utcnow
from app.pages import feedback_views
from app.pages.formatting import clock, redactions_text
from app.services import feedback as feedback_service
from app.services import policy, receipts
from app.services import recordings as recording_service
from app.services import shares as share_service
from app.services.i18n import _, format_number, ngettext

bp = Blueprint("employee_pages", __name__)

ACTIVE_SHARE_STATES = ("processing", "ready", "failed")


def in_words(moment: datetime | None, now: datetime | None = None) -> str:
    """How far ``moment`` is from now, in plain words ("2 days", "5 hours", "40 minutes")."""
    if moment is None:
        return ""
    seconds = (moment - (now or utcnow())).total_seconds()
    if seconds <= 60:
        return _("less than a minute")
    minutes = int(seconds // 60)
    if minutes < 60:
        return ngettext("%(num)s minute", "%(num)s minutes", minutes)
    hours = round(seconds / 3600)
    if hours < 48:
        return ngettext("%(num)s hour", "%(num)s hours", hours)
    return ngettext("%(num)s day", "%(num)s days", round(seconds / 86400))


def _recording_view(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    shared = len(item["share_ids"])
    if shared:
        keep = ngettext(
            "Kept while shared (%(num)s active share)",
            "Kept while shared (%(num)s active shares)",
            shared,
        )
    else:
        keep = _(
            "Deleted automatically in %(time)s unless shared",
            time=in_words(item["expires_at"], now),
        )
    return {
        **item,
        "keep_text": keep,
        "duration_text": clock(item["duration_s"]),
        "expiring_soon": not shared and (item["expires_at"] - now).total_seconds() < 12 * 3600,
        "main_part": "screen" if "screen" in item["parts"] else "audio",
    }


@bp.route("/recordings")
@require(Role.EMPLOYEE, page=True)
def recordings():
    rt, session, user = runtime(), db_session(), current_user()
    now = utcnow()
    items = [
        _recording_view(recording_service.present(session, rt, r), now)
        for r in recording_service.list_own(session, user)
    ]
    current = policy.current_policy(session)
    max_upload = min(current.max_upload_bytes, rt.settings.max_upload_bytes)
    return render_template(
        "employee/recordings.html",
        recordings=items,
        policy=current,
        max_upload=max_upload,
        max_upload_text=_size_text(max_upload),
        open_share=(request.args.get("share") or "")[:64],
        highlight=(request.args.get("highlight") or "")[:64],
    )


def _size_text(size: int) -> str:
    if size >= 1 << 30:
        return format_number(round(size / (1 << 30), 1)) + " GB"
    return format_number(size // (1 << 20)) + " MB"


@bp.route("/record")
@require(Role.EMPLOYEE, page=True)
def capture():
    current = policy.current_policy(db_session())
    return render_template("employee/capture.html", policy=current)


@bp.route("/shares")
@require(Role.EMPLOYEE, page=True)
def shares():
    rt, session, user = runtime(), db_session(), current_user()
    items = [
        share_service.present(session, rt, s, user) for s in share_service.list_for(session, user)
    ]
    for item in items:
        item["trim_text"] = _trim_text(item.get("trim"))
        item["redactions_text"] = redactions_text(item.get("redactions"))
        # Receipts and certificates are fetched on demand from the API, not put in the page.
        item.pop("receipt", None)
        item.pop("certificate", None)
    active = [s for s in items if s["status"] in ACTIVE_SHARE_STATES]
    ended = [s for s in items if s["status"] not in ACTIVE_SHARE_STATES]
    return render_template("employee/shares.html", active=active, ended=ended)


@bp.route("/shares/<share_id>/receipt")
@require(Role.EMPLOYEE, page=True)
def receipt(share_id: str):
    """The consent receipt for a person to read and print; the signed JWT stays for machines."""
    rt, session, user = runtime(), db_session(), current_user()
    readable = receipts.readable(session, rt, user, share_id)
    return render_template(
        "employee/receipt.html",
        r=readable,
        trim_text=_trim_text(readable["claims"].get("trim")),
        # Where this page is served from, which is where the reader can reach them.
        jwks_url=url_for("ops.jwks", _external=True),
        status_url=url_for("receipts.receipt_status", _external=True),
    )


def _trim_text(trim: dict[str, float] | None) -> str:
    if not trim:
        return _("The whole recording")
    return f"{clock(trim['start_s'])} – {clock(trim['end_s'])}"


@bp.route("/my-data")
@require(Role.EMPLOYEE, page=True)
def my_data():
    rt, session, user = runtime(), db_session(), current_user()
    deleted = [
        recording_service.present(session, rt, r)
        for r in recording_service.list_own(session, user, include_deleted=True)
        if r.status.value == "deleted"
    ]
    return render_template("employee/my_data.html", deleted=deleted)


@bp.route("/feedback")
@require(Role.EMPLOYEE, page=True)
def feedback():
    """Coaching feedback I received: mine to read, acknowledge, answer and delete."""
    rt, session, user = runtime(), db_session(), current_user()
    items = [
        feedback_views.decorate(feedback_service.present(session, rt, row))
        for row in feedback_service.list_for(session, user)
    ]
    return render_template(
        "employee/feedback.html", items=items, open_id=(request.args.get("open") or "")[:64]
    )


@bp.route("/progress")
@require(Role.EMPLOYEE, page=True)
def progress():
    """My own ratings per criterion over time, and my next steps. Nobody else sees this."""
    rt, session, user = runtime(), db_session(), current_user()
    data = feedback_service.progress(session, rt, user)
    series = [{**line, "chart": feedback_views.chart(line)} for line in data["criteria"]]
    return render_template("employee/progress.html", series=series, steps=data["next_steps"])


@bp.route("/embed/example")
@require(Role.EMPLOYEE, page=True)
def embed_example():
    return render_template("embed/example.html", host=request.host_url.rstrip("/"))
