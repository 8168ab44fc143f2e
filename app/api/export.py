"""``/api/v1/export``: everything about me, in one ZIP."""

from __future__ import annotations

from flask import Response

from app.api.blueprint import Blueprint
from app.auth import current_user, require
from app.context import runtime
from app.models import Role
from app.services.export import export_archive

blp = Blueprint("export", __name__, url_prefix="/api/v1", description="Export my data")


@blp.route("/export", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.doc(
    responses={
        200: {
            "description": "A ZIP archive",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
)
def export():
    """One ZIP with my receipts, certificates, access logs, comments and my own media."""
    user = current_user()
    return Response(
        export_archive(runtime(), user.id),
        mimetype="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="consent-replay-export.zip"',
            "Cache-Control": "no-store",
        },
        direct_passthrough=True,
    )
