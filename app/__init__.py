"""consent-replay: consent-first call and screen coaching.

``create_app`` is the application factory: it reads the settings, builds the shared runtime
(database, object store, keyring, key cache), binds Celery, and wires every extension and
blueprint. Nothing binds to an app at import time.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings, load_settings

limiter = Limiter(key_func=get_remote_address, default_limits=[])

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


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_consent_replay", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
        handler._consent_replay = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Library loggers that would otherwise print request URLs with signed queries at DEBUG.
    for noisy in ("urllib3", "botocore", "minio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_app(settings: Settings | None = None) -> Flask:
    from app import api, auth, errors, metrics, pages
    from app.errors import request_id
    from app.jobs import CeleryJobs
    from app.runtime import Runtime
    from worker.celery_app import create_celery

    settings = settings or load_settings()
    configure_logging(settings.log_level)

    app = Flask(__name__, instance_path=str(settings.instance_dir))
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
    celery = create_celery(app)
    runtime.jobs = CeleryJobs(celery)

    errors.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)
    limiter.init_app(app)
    api.init_app(app)
    pages.init_app(app)

    @app.before_request
    def bound_slow_clients():
        # A client that stops sending (or reading) for this long loses its connection, so a
        # handful of trickling clients cannot hold every web thread. Behind a buffering
        # reverse proxy this never triggers.
        sock = request.environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(settings.client_timeout_s)

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
        if request.path.startswith("/api/") and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response

    return app
