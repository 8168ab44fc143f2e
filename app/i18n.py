"""The web edge of the two languages (SPEC §14): which one a request is in, and switching.

The choice, first that applies: the signed-in person's own (``User.language``), the
``cr_lang`` cookie (the switch on the sign-in page and in the header), the browser's
``Accept-Language``, ``CR_DEFAULT_LANGUAGE``. Flask-Babel is told the same choice, so its
formats agree with :mod:`app.services.i18n`, which holds the language of the request.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    request,
    url_for,
)
from flask_babel import Babel

from app.auth import current_user, db_session
from app.links import safe_next
from app.services import i18n, job_messages

# What each role is called where a person reads it.
ROLE_NAMES = {
    "employee": i18n.N_("employee"),
    "coach": i18n.N_("coach"),
    "admin": i18n.N_("admin"),
    "representative": i18n.N_("representative"),
}
COOKIE = "cr_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

bp = Blueprint("i18n", __name__)


def select_language() -> str:
    user = current_user()
    if user is not None and user.language in i18n.LANGUAGES:
        return user.language
    cookie = i18n.normalise(request.cookies.get(COOKIE))
    if cookie is not None:
        return cookie
    offered = request.accept_languages.best_match(["en", "nb", "no", "nn"])
    return i18n.normalise(offered) or current_app.config["CR_SETTINGS"].default_language


@bp.route("/i18n/<lang>.json")
def script_catalog(lang: str):
    """The page scripts' catalog. Its URL carries the catalog's version, so it may be kept."""
    if lang not in i18n.LANGUAGES:
        abort(404)
    response = jsonify({"language": lang, "messages": i18n.catalog(lang)})
    # The pages ask for it by version (?v=): that URL never changes meaning. The embeddable
    # button asks without one, so it hears of a new catalog within minutes.
    versioned = request.args.get("v") == i18n.catalog_version(lang)
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if versioned else "public, max-age=300"
    )
    return response


@bp.route("/language", methods=["POST"])
def switch_language():
    """Choose the language: a cookie for this browser and, when signed in, the person's own."""
    chosen = i18n.normalise(request.form.get("language"))
    if chosen is None:
        abort(400, description=i18n._("Choose English or Norwegian (bokmål)."))
    user = current_user()
    if user is not None:
        user.language = chosen
        db_session().commit()
    target = safe_next(request.form.get("next")) or url_for("pages.index")
    response = redirect(target, code=303)
    settings = current_app.config["CR_SETTINGS"]
    response.set_cookie(
        COOKIE,
        chosen,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies,
    )
    return response


def _catalog_url(lang: str) -> str:
    return url_for("i18n.script_catalog", lang=lang, v=i18n.catalog_version(lang))


def init_app(app: Flask) -> None:
    """After :func:`app.auth.init_app`: the person is known before the language is chosen."""
    Babel(app, locale_selector=lambda: g.get("language") or select_language())
    app.register_blueprint(bp)
    # Jinja's newstyle gettext fills in the %(name)s values itself (escaped).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.translate, i18n.translate_plural, newstyle=True
    )

    def choose_language():
        g.language = select_language()
        token = i18n.set_language(g.language)
        g.setdefault("language_token", token)

    # Once before anything else (a refusal by the sign-in check is in the reader's language
    # too), and again once the person is known (their own choice comes first).
    app.before_request_funcs.setdefault(None, []).insert(0, choose_language)
    app.before_request(choose_language)

    @app.teardown_request
    def forget_language(_error=None):
        token = g.pop("language_token", None)
        if token is not None:
            i18n.reset_language(token)

    @app.context_processor
    def language_globals():
        lang = i18n.current()
        other = "nb" if lang == "en" else "en"
        return {
            "lang": lang,
            "other_language": other,
            "language_names": i18n.NAMES,
            "language_name": i18n.language_name,
            "catalog_url": _catalog_url(lang),
            "role_names": {role: i18n.translate(name) for role, name in ROLE_NAMES.items()},
        }

    app.jinja_env.filters["number"] = i18n.format_number
    app.jinja_env.filters["date"] = i18n.format_date
    app.jinja_env.filters["datetime"] = i18n.format_datetime
    app.jinja_env.filters["duration"] = i18n.format_duration
    # What the worker wrote about a file or a share, in the reader's language.
    app.jinja_env.filters["job_message"] = job_messages.in_reader_language
