"""The account page, for every role: one's own tokens, password, sessions, security log and
e-mail settings. The lists are filled by ``static/js/account.js`` from ``/api/v1/me/…``."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth import current_user, db_session, require
from app.context import runtime
from app.services import users

bp = Blueprint("account_pages", __name__)


@bp.route("/account")
@require(page=True)
def account():
    session, user = db_session(), current_user()
    reset_at = users.take_reset_notice(user)
    if reset_at is not None:
        session.commit()
    page = render_template(
        "account/index.html",
        user=user,
        reset_at=reset_at,
        provider_name=runtime().settings.oidc_name,
    )
    return page, 200, {"Cache-Control": "no-store"}
