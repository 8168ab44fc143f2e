"""Sign-in with the organisation's identity provider (SPEC §15): OpenID Connect through Authlib.

- ``/auth/oidc/login`` starts the authorization code flow with PKCE (S256), ``state`` and
  ``nonce``. The state's data (verifier, nonce, redirect URI) lives in the database
  (:class:`StateStore`), bound to the browser by its key in the sign-in cookie, and is *taken*
  by the callback: a replayed callback finds nothing.
- ``/auth/oidc/callback`` swaps the code; Authlib checks the ID token's signature (keys from the
  provider's JWKS, fetched again when a token names a ``kid`` it does not know), ``iss``,
  ``aud``, ``exp``, ``nonce`` and ``at_hash``. The groups claim gives the role
  (``services/oidc``); no role or two: a page that says why and whom to ask.
- ``/auth/oidc/backchannel-logout`` (Back-Channel Logout 1.0): a verified logout token ends
  every session of its user; any other is refused with 400.
- Sign-out of a provider's user continues at the provider (RP-initiated logout), by a page
  that moves on by itself: the pages' ``form-action 'self'`` forbids a form's redirect there.

Discovery and the JWKS are cached per process (discovery for a day).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from app.auth import db_session, sign_in
from app.context import runtime
from app.links import safe_next
from app.services import oidc
from app.services.errors import Forbidden, InvalidRequest
from app.services.i18n import _

bp = Blueprint("oidc", __name__, url_prefix="/auth/oidc")
log = logging.getLogger(__name__)
CLIENT = "oidc"
DISCOVERY_MAX_AGE_S = 24 * 3600
CALLBACK_PATH = "/auth/oidc/callback"
# Explicitly typed (Back-Channel Logout 1.0 §2.4), or the generic type many providers send.
LOGOUT_TOKEN_TYPES = {"logout+jwt", "application/logout+jwt", "jwt"}
_NO_STORE = {"Cache-Control": "no-store"}


class StateStore:
    """Authlib's cache interface over ``oidc_single_use``: ``get`` takes (reads and deletes)."""

    def get(self, key: str) -> str | None:
        with runtime().db.session() as db:
            data = oidc.take(db, oidc.key_of("state", key))
            db.commit()
        return data

    def set(self, key: str, value: str, expires_in: int) -> None:
        with runtime().db.session() as db:
            oidc.put(db, oidc.key_of("state", key), value, expires_in)
            db.commit()

    def delete(self, key: str) -> None:
        self.get(key)


def _settings():
    return runtime().settings


def _client():
    client = current_app.extensions["oidc_oauth"].create_client(CLIENT)
    loaded = client.server_metadata.get("_loaded_at")
    if loaded is not None and time.time() - loaded > DISCOVERY_MAX_AGE_S:
        client.server_metadata.clear()  # Authlib fetches it again on first use
    return client


def _metadata(client) -> dict[str, Any]:
    metadata = client.load_server_metadata()
    if metadata.get("issuer") != _settings().oidc_issuer:
        # OpenID Connect Discovery §4.3: a document naming another issuer is not this provider.
        client.server_metadata.clear()
        raise OAuthError(description="the provider's discovery document names another issuer")
    return metadata


def _page(template: str, status: int, **context: Any):
    return render_template(template, provider=_settings().oidc_name, **context), status, _NO_STORE


def _failed(reason: str, status: int = 400):
    return _page("auth/oidc_failed.html", status, reason=reason)


def _unreachable(exc: Exception):
    log.warning("identity provider unreachable: %s", type(exc).__name__)
    return _failed(
        _(
            "%(provider)s could not be reached just now. Try again in a minute; if it keeps "
            "happening, tell your IT support.",
            provider=_settings().oidc_name,
        ),
        503,
    )


@bp.before_request
def configured_only():
    if not _settings().oidc_issuer:
        return _failed(_("Sign-in with an identity provider is not set up here."), 404)
    return None


@bp.route("/login")
def login():
    session["oidc_next"] = safe_next(request.args.get("next")) or ""
    client = _client()
    try:
        _metadata(client)
        return client.authorize_redirect(redirect_uri=_settings().public_url + CALLBACK_PATH)
    except requests.RequestException as exc:
        return _unreachable(exc)
    except OAuthError as exc:
        return _failed(
            _(
                "%(provider)s is not set up as expected: %(reason)s.",
                provider=_settings().oidc_name,
                reason=exc.description,
            )
        )


def _exchange() -> dict[str, Any]:
    client = _client()
    _metadata(client)
    token = client.authorize_access_token()
    claims = token.get("userinfo")
    if not claims:
        raise OAuthError(description="the provider sent no ID token")
    return dict(claims)


@bp.route("/callback")
def callback():
    settings = _settings()
    try:
        claims = _exchange()
    except MismatchingStateError:
        return _failed(
            _(
                "This sign-in was already used, has expired, or was started in another "
                "browser. Start again from the sign-in page."
            )
        )
    except requests.RequestException as exc:
        return _unreachable(exc)
    except OAuthError as exc:
        said = " ".join(filter(None, [exc.description, f"({exc.error})" if exc.error else ""]))
        return _failed(
            _(
                "%(provider)s did not sign you in: %(reason)s.",
                provider=settings.oidc_name,
                reason=said,
            )
        )
    except (JoseError, ValueError) as exc:
        log.warning("ID token refused: %s", exc)
        return _failed(
            _(
                "The answer from %(provider)s did not pass our checks (%(reason)s), so you are "
                "not signed in.",
                provider=settings.oidc_name,
                reason=getattr(exc, "description", None) or exc,
            )
        )
    db = db_session()
    try:
        role = oidc.role_from_claims(claims, settings.oidc_roles_claim, settings.oidc_role_map)
        user = oidc.sign_in(db, issuer=settings.oidc_issuer, claims=claims, role=role)
    except oidc.RoleRefused as exc:
        db.rollback()
        return _page("auth/no_role.html", 403, error=exc, role_map=settings.oidc_role_map)
    except (Forbidden, InvalidRequest) as exc:
        db.rollback()
        return _failed(exc.message, 403)
    next_url = session.get("oidc_next") or url_for("pages.index")
    sign_in(user)
    if isinstance(claims.get("sid"), str):
        session["oidc_sid"] = claims["sid"][:200]  # for a logout token naming only the sid
    db.commit()
    return redirect(next_url)


def provider_logout():
    """After the local sign-out: on to the provider's end-session endpoint, if it has one."""
    settings = _settings()
    client = _client()
    try:
        metadata = _metadata(client)
    except (requests.RequestException, OAuthError):
        return redirect(url_for("pages.login"))
    if not metadata.get("end_session_endpoint"):
        return redirect(url_for("pages.login"))
    url = client.create_logout_url(
        post_logout_redirect_uri=settings.public_url + "/", client_id=settings.oidc_client_id
    )["url"]
    return _page("auth/signed_out.html", 200, url=url)


def _verified_claims(token: str, client) -> dict[str, Any]:
    metadata = _metadata(client)
    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(algorithms=[a for a in algorithms if a != "none"])
    try:
        decoded = jwt.decode(
            token, KeySet.import_key_set(client.fetch_jwk_set()), registry=registry
        )
    except InvalidKeyIdError:
        # Anyone can post a logout token naming a new kid: the JWKS is fetched again for it at
        # most once a minute, so junk cannot make this app hammer the provider.
        if time.monotonic() - client.server_metadata.get("_jwks_forced_at", -1e9) < 60:
            raise
        client.server_metadata["_jwks_forced_at"] = time.monotonic()
        keys = KeySet.import_key_set(client.fetch_jwk_set(force=True))
        decoded = jwt.decode(token, keys, registry=registry)
    if decoded.header.get("typ", "logout+jwt").lower() not in LOGOUT_TOKEN_TYPES:
        raise oidc.InvalidLogoutToken(_("That is not a logout token (its 'typ' says otherwise)."))
    return dict(decoded.claims)


def _refused(message: str):
    body = {"error": "invalid_request", "error_description": message}
    return body, 400, _NO_STORE


@bp.route("/backchannel-logout", methods=["POST"])
def backchannel_logout():
    settings = _settings()
    token = request.form.get("logout_token", "")
    if not token or len(token) > 16_384:
        return _refused("Send the logout token as the form field logout_token.")
    try:
        claims = _verified_claims(token, _client())
        logout = oidc.check_logout_claims(
            claims,
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            now=datetime.now(UTC),
        )
        db = db_session()
        oidc.back_channel_logout(db, issuer=settings.oidc_issuer, logout=logout)
        db.commit()
    except oidc.InvalidLogoutToken as exc:
        return _refused(exc.message)
    except (JoseError, ValueError) as exc:
        return _refused(f"The logout token is not valid: {exc}")
    except requests.RequestException:
        return {"error": "temporarily_unavailable"}, 503, _NO_STORE
    return "", 200, _NO_STORE


def sign_in_options() -> dict[str, Any]:
    """What the sign-in page offers: the provider's button, the password form, or both."""
    settings = _settings()
    return {
        "oidc_enabled": bool(settings.oidc_issuer),
        "oidc_name": settings.oidc_name,
        "password_login": settings.password_login,
    }


def init_app(app: Flask) -> None:
    settings = app.config["CR_SETTINGS"]
    oauth = OAuth(app, cache=StateStore())
    if settings.oidc_issuer:
        oauth.register(
            CLIENT,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid profile email",
                "code_challenge_method": "S256",
                "default_timeout": 10,
            },
        )
    app.extensions["oidc_oauth"] = oauth
    app.register_blueprint(bp)
