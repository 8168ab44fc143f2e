"""The application factory: settings in, a wired Flask app out. Nothing binds at import time.

``create_app`` reads the settings, builds the shared runtime (database, object store,
keyring, key cache) and a job sender for the broker, and binds every extension and blueprint.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api, auth, errors, i18n, jobs, metrics, pages, request_limits
from app.config import Settings, load_settings
from app.errors import request_id
from app.extensions import limiter
from app.logs import configure_logging
from app.runtime import Runtime
from app.services import revocations

# Strict CSP: no inline script or style anywhere, so an injected tag cannot run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.log_level)

    app = Flask("app", instance_path=str(settings.instance_dir))
    app.config.update(settings.as_flask_config())
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    runtime = Runtime.from_settings(settings)
    app.extensions["consent_replay"] = runtime
    # Each web process learns of every ended share before its next media write (NOTIFY on
    # PostgreSQL, and a bounded poll of the shares it streams); the listener starts with the
    # process's first media response.
    listener = revocations.Listener(runtime.ended, runtime.db)
    runtime.ended.on_first_watch = listener.start
    app.extensions["revocations"] = listener
    celery = jobs.connect(settings, runtime)
    # Task bodies called directly in this process (tests, the CLI) use this app's runtime.
    celery.set_default()
    app.extensions["celery"] = celery

    errors.init_app(app)
    request_limits.init_app(app)
    metrics.init_app(app, settings)
    auth.init_app(app)
    i18n.init_app(app)
    limiter.init_app(app)
    api.init_app(app)
    pages.init_app(app)
    _bound_slow_clients(app, settings)
    _security_headers(app, settings)
    return app


def _bound_slow_clients(app: Flask, settings: Settings) -> None:
    @app.before_request
    def bound_slow_clients():
        # A client that stops sending (or reading) for this long loses its connection, so a
        # handful of trickling clients cannot hold every web thread. Behind a buffering
        # reverse proxy this never triggers.
        sock = request.environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(settings.client_timeout_s)


def _security_headers(app: Flask, settings: Settings) -> None:
    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), geolocation=()")
        if settings.secure_cookies:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        headers.setdefault("X-Request-Id", request_id())
        # The API and every page carry personal data (at the least, who is signed in): kept
        # out of shared caches and the back-button cache after sign-out.
        personal = request.path.startswith("/api/") or response.mimetype == "text/html"
        if personal and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
