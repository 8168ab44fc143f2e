"""Server-rendered pages, one module per role; JSON comes from the public API."""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from app.auth import current_user, db_session, sign_in, sign_out
from app.context import runtime
from app.extensions import limiter
from app.links import safe_next
from app.models import Role
from app.pages import oidc
from app.services import account_links, users
from app.services.errors import DomainError
from app.services.i18n import N_, _

pages = Blueprint("pages", __name__)

HOME_BY_ROLE = {
    Role.EMPLOYEE: "employee_pages.recordings",
    Role.COACH: "coach_pages.shared_with_me",
    Role.ADMIN: "admin_pages.users",
    Role.REPRESENTATIVE: "admin_pages.oversight",
}
PER_ADDRESS = "10 per minute; 50 per hour"
PER_ACCOUNT = "5 per minute; 20 per hour"
# Limiter messages: looked up in the reader's language when the refusal is written.
ADDRESS_LIMITED = N_(
    "Too many sign-in attempts from your network address. Wait a minute and try again."
)
ACCOUNT_LIMITED = N_(
    "Too many failed sign-ins for this account. Wait a few minutes and try again; if you have "
    "forgotten your password, ask an admin to send you a reset link."
)


def _login_key() -> str:
    # Per account: a guesser spreading attempts over many addresses still hits this one.
    return "account:" + (request.form.get("login") or "").strip().lower()[:120]


def _failed(response) -> bool:
    return response.status_code == 401


@pages.route("/")
def index():
    user = current_user()
    if user is None:
        return redirect(url_for("pages.login"))
    return redirect(url_for(HOME_BY_ROLE[user.role]))


@pages.route("/login", methods=["GET", "POST"])
# Failed attempts only, as per account: a contact centre's agents often share one address (the
# office's NAT), and at a shift's start their successful sign-ins must not lock each other out.
@limiter.limit(PER_ADDRESS, methods=["POST"], deduct_when=_failed, error_message=ADDRESS_LIMITED)
@limiter.limit(
    PER_ACCOUNT,
    methods=["POST"],
    key_func=_login_key,
    deduct_when=_failed,
    error_message=ACCOUNT_LIMITED,
)
def login():
    error = None
    if request.method == "POST" and not runtime().settings.password_login:
        error = _(
            "Passwords are turned off here: sign in with %(provider)s.",
            provider=runtime().settings.oidc_name,
        )
        return render_template("login.html", error=error, **oidc.sign_in_options()), 403
    if request.method == "POST":
        login_name = (request.form.get("login") or "")[:120]
        password = (request.form.get("password") or "")[:1024]
        session = db_session()
        user = users.authenticate_password(session, login_name, password)
        if user is not None:
            reset_waiting = users.record_sign_in(session, user, "password")
            sign_in(user)
            session.commit()
            if reset_waiting:  # shown before anything else (finding 1 of issue 12)
                return redirect(url_for("account_pages.account"))
            return redirect(safe_next(request.args.get("next")) or url_for("pages.index"))
        error = _("That login and password do not match.")
    page = render_template("login.html", error=error, **oidc.sign_in_options())
    return page, (401 if error else 200)


@pages.route("/logout", methods=["POST"])
def logout():
    user = current_user()
    sign_out()
    if user is not None and user.from_provider:
        return oidc.provider_logout()  # RP-initiated logout, where the provider offers it
    return redirect(url_for("pages.login"))


def _link_form(error: str | None = None, secret: str = "", status: int = 200):
    response = render_template("account/link.html", error=error, secret=secret)
    return response, status, {"Cache-Control": "no-store"}


@pages.route(account_links.LINK_PATH, methods=["GET", "POST"])
@limiter.limit(PER_ADDRESS, methods=["POST"], error_message=ADDRESS_LIMITED)
def account_link():
    """Where an enrolment or reset link leads: choose a password and/or make an API token."""
    if request.method == "GET":
        return _link_form()
    secret = (request.form.get("token") or "")[:200]
    password = (request.form.get("password") or "")[:1024]
    make_token = request.form.get("make_token") == "on"
    if password != (request.form.get("password_confirm") or "")[:1024]:
        return _link_form(_("The two passwords differ."), secret, 400)
    if not password and not make_token:
        return _link_form(_("Choose a password, or make an API token, or both."), secret, 400)
    try:
        if password:
            users.validate_password(password)  # before the link is used up by a typo
        session = db_session()
        user, _kind = account_links.redeem(session, secret)
        if password:
            users.set_password(session, user, password, actor_id=user.id)
        token = None
        if make_token:
            label = (request.form.get("token_label") or "").strip()[:120] or "first token"
            token = users.create_token(session, user, label, actor_id=user.id)[1]
        users.record_sign_in(session, user, "link")
        reset_at = users.take_reset_notice(user)
        sign_in(user)
        session.commit()
    except DomainError as exc:
        return _link_form(exc.message, secret if exc.code == "weak_password" else "", 400)
    page = render_template("account/link_done.html", token=token, reset_at=reset_at, user=user)
    return page, 200, {"Cache-Control": "no-store"}


def init_app(app: Flask) -> None:
    from app.pages import account, admin, coach, employee

    app.register_blueprint(pages)
    app.register_blueprint(account.bp)
    app.register_blueprint(employee.bp)
    app.register_blueprint(coach.bp)
    app.register_blueprint(admin.bp)
    oidc.init_app(app)

    @app.context_processor
    def template_globals():
        return {"current_user": current_user(), "csrf_token": generate_csrf, "Role": Role}
