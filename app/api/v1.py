"""``/api/v1``: the blueprints of the versioned public API."""

from __future__ import annotations

from app.api import admin, export, receipts, recordings, shares, streaming
from app.api.blueprint import Blueprint
from app.api.schemas import MeSchema
from app.auth import current_user, require

me = Blueprint("me", __name__, url_prefix="/api/v1", description="The caller")


@me.route("/me")
@require()
@me.response(200, MeSchema)
def get_me():
    """Who the caller is: id, name and role."""
    user = current_user()
    return {"id": user.id, "name": user.name, "role": user.role.value, "login": user.login}


blueprints = [
    me,
    recordings.blp,
    shares.blp,
    streaming.blp,
    export.blp,
    *receipts.blueprints,
    *admin.blueprints,
]
