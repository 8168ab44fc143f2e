"""``/api/v1``: the blueprints of the versioned public API."""

from __future__ import annotations

from app.api import (
    account,
    admin,
    export,
    feedback,
    receipts,
    recordings,
    shares,
    streaming,
    uploads,
)

blueprints = [
    account.me,
    recordings.blp,
    uploads.blp,
    shares.blp,
    streaming.blp,
    export.blp,
    *receipts.blueprints,
    *admin.blueprints,
    *feedback.blueprints,
]
