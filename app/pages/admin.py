"""Pages for running (admin) and overseeing (representative) — never content."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth import require
from app.models import Role

bp = Blueprint("admin_pages", __name__)


@bp.route("/admin/users")
@require(Role.ADMIN, page=True)
def users():
    return render_template("admin/users.html")


@bp.route("/admin/policy")
@require(Role.ADMIN, page=True)
def policy():
    return render_template("admin/policy.html")


@bp.route("/admin/keys")
@require(Role.ADMIN, page=True)
def keys():
    return render_template("admin/keys.html")


@bp.route("/oversight")
@require(Role.REPRESENTATIVE, page=True)
def oversight():
    return render_template("admin/oversight.html")
