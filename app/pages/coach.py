"""The coach's pages: what was shared with me, and the playback page."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth import require
from app.models import Role

bp = Blueprint("coach_pages", __name__)


@bp.route("/coach")
@require(Role.COACH, page=True)
def shared_with_me():
    return render_template("coach/shared.html")
