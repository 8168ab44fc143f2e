"""The employee's pages: recordings, the opt-in, capture, shares, their data."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth import require
from app.models import Role

bp = Blueprint("employee_pages", __name__)


@bp.route("/recordings")
@require(Role.EMPLOYEE, page=True)
def recordings():
    return render_template("employee/recordings.html")


@bp.route("/record")
@require(Role.EMPLOYEE, page=True)
def capture():
    return render_template("employee/capture.html")


@bp.route("/shares")
@require(Role.EMPLOYEE, page=True)
def shares():
    return render_template("employee/shares.html")


@bp.route("/my-data")
@require(Role.EMPLOYEE, page=True)
def my_data():
    return render_template("employee/my_data.html")
