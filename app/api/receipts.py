"""``POST /api/v1/receipts/status``: does a consent receipt still hold?"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.api.blueprint import Blueprint
from app.api.schemas import Strict
from app.auth import db_session
from app.context import runtime
from app.extensions import limiter
from app.services import receipts

blp = Blueprint(
    "receipts",
    __name__,
    url_prefix="/api/v1/receipts",
    description="The current status of a consent receipt, for whoever holds it",
)


class ReceiptQuerySchema(Strict):
    receipt = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=receipts.MAX_RECEIPT),
        metadata={"description": "the consent receipt (JWT) itself"},
    )


class ReceiptStatusSchema(ma.Schema):
    share_id = ma.fields.UUID(required=True)
    status = ma.fields.String(
        required=True,
        metadata={
            "description": "active, revoked or expired",
            "enum": ["active", "revoked", "expired"],
        },
    )
    ended_at = ma.fields.AwareDateTime(allow_none=True)
    checked_at = ma.fields.AwareDateTime(required=True)


@blp.route("/status", methods=["POST"])
@limiter.limit("60 per minute")
@blp.doc(security=[])
@blp.arguments(ReceiptQuerySchema)
@blp.response(200, ReceiptStatusSchema)
@blp.alt_response(400, description="Not a receipt this deployment signed")
def receipt_status(args):
    """Whether the consent a receipt records still holds. A receipt verifies offline until
    its end date even after it was withdrawn; this asks the issuer. Send the receipt itself:
    only a receipt this deployment signed gets an answer."""
    return receipts.status(db_session(), runtime(), args["receipt"])


blueprints = [blp]
