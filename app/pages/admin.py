"""Pages for running (admin) and overseeing (representative) — never content.

Nothing rendered here names a recording, a share, a title or a comment, and nothing counts
anything per employee: the admin runs the system, the representative sees aggregates only.
The tables are filled by the static scripts from the admin and oversight API.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from app.auth import db_session, require
from app.context import runtime
from app.models import Role
from app.services import datamap
from app.services import oversight as oversight_service
from app.services import policy as policy_service

bp = Blueprint("admin_pages", __name__)


@bp.route("/admin/users")
@require(Role.ADMIN, page=True)
def users():
    return render_template(
        "admin/users.html",
        roles=[r.value for r in Role],
        provider_name=runtime().settings.oidc_name,
    )


@bp.route("/admin/policy")
@require(Role.ADMIN, page=True)
def policy():
    current = policy_service.current_policy(db_session())
    hard_limit = runtime().settings.max_upload_bytes
    return render_template(
        "admin/policy.html",
        policy=current,
        upload_mib=current.max_upload_bytes // (1 << 20),
        hard_limit_mib=hard_limit // (1 << 20),
    )


@bp.route("/admin/keys")
@require(Role.ADMIN, page=True)
def keys():
    return render_template("admin/keys.html")


@bp.route("/admin/feedback-forms")
@require(Role.ADMIN, page=True)
def feedback_forms():
    return render_template("admin/feedback_forms.html")


@bp.route("/oversight")
@require(Role.REPRESENTATIVE, page=True)
def oversight():
    return render_template("admin/oversight.html")


@bp.route("/oversight/records")
@require(Role.REPRESENTATIVE, Role.ADMIN, page=True)
def records():
    """Records of processing, printable: the data map, and the policy with its history."""
    session = db_session()
    return render_template(
        "admin/records.html",
        sections=datamap.SECTIONS,
        tables=datamap.TABLES,
        policy=policy_service.current_policy(session),
        history=oversight_service.policy_history(session),
    )


@bp.route("/oversight/records/data-map.<any(md, json):fmt>")
@require(Role.REPRESENTATIVE, Role.ADMIN, page=True)
def data_map_download(fmt: str):
    """The data map as a file: Markdown to read and print, JSON for a register tool."""
    if fmt == "json":
        body = json.dumps(datamap.as_json(), indent=2, ensure_ascii=False)
        mimetype = "application/json"
    else:
        body, mimetype = datamap.markdown(), "text/markdown; charset=utf-8"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=consent-replay-data-map.{fmt}"
    return response
