"""Server-rendered pages, one module per role; JSON comes from the public API."""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from app.auth import current_user, db_session, sign_in, sign_out
from app.extensions import limiter
from app.models import Role
from app.services import users

pages = Blueprint("pages", __name__)

HOME_BY_ROLE = {
    Role.EMPLOYEE: "employee_pages.recordings",
    Role.COACH: "coach_pages.shared_with_me",
    Role.ADMIN: "admin_pages.users",
    Role.REPRESENTATIVE: "admin_pages.oversight",
}


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths: an open redirect would turn sign-in into a phishing aid.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@pages.route("/")
def index():
    user = current_user()
    if user is None:
        return redirect(url_for("pages.login"))
    return redirect(url_for(HOME_BY_ROLE[user.role]))


@pages.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
def login():
    error = None
    if request.method == "POST":
        login_name = (request.form.get("login") or "")[:120]
        password = (request.form.get("password") or "")[:1024]
        session = db_session()
        user = users.authenticate_password(session, login_name, password)
        if user is not None:
            session.commit()
            sign_in(user)
            return redirect(_safe_next(request.args.get("next")) or url_for("pages.index"))
        error = "That login and password do not match."
    return render_template("login.html", error=error), (401 if error else 200)


@pages.route("/logout", methods=["POST"])
def logout():
    sign_out()
    return redirect(url_for("pages.login"))


def init_app(app: Flask) -> None:
    from app.pages import admin, coach, employee

    app.register_blueprint(pages)
    app.register_blueprint(employee.bp)
    app.register_blueprint(coach.bp)
    app.register_blueprint(admin.bp)

    @app.context_processor
    def template_globals():
        return {"current_user": current_user(), "csrf_token": generate_csrf, "Role": Role}
