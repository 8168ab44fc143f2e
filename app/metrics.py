"""Prometheus metrics of this process (per process; scrape each web process).

``/metrics`` answers only the bearer token ``CR_METRICS_TOKEN`` (compared in constant time);
without that setting it answers nobody. And what it counts cannot tell anyone who declined
(SPEC §2.7): uploads, opt-ins, deletions and revocations are not counted apart. Every request
to an endpoint that touches someone's recordings or shares (the ``PERSONAL`` blueprints, and
any endpoint not known to be operational) is counted under one label, ``personal``, with its
status class only — no method, no exact status, no timing — so that an observer of counter
deltas learns "someone did something", never "a draft was made and not shared" nor "a share was
withdrawn". There is no revocation counter and no upload-bytes counter.
"""

from __future__ import annotations

import hmac
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from app.config import Settings
from app.services.errors import Forbidden, Unauthenticated
from app.services.i18n import _

REQUESTS = Counter(
    "consent_replay_http_requests_total", "HTTP requests", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "consent_replay_http_request_seconds", "Time to the response headers", ["endpoint"]
)
MEDIA_BYTES = Counter("consent_replay_media_bytes_served_total", "Decrypted media bytes served")

# Blueprints whose endpoints may be counted by name: running the system, not using it.
OPERATIONAL = ("ops.", "pages.", "admin.", "admin_pages.", "oversight.", "api-docs.")
PERSONAL = "personal"


def label_of(endpoint: str, method: str, status: int) -> tuple[str, str, str]:
    """The labels a request is counted under (see the module's docstring)."""
    if endpoint == "static" or endpoint.startswith(OPERATIONAL):
        return endpoint, method, str(status)
    return PERSONAL, "-", f"{status // 100}xx"


def scrape(settings: Settings) -> Response:
    """The metrics, to the holder of CR_METRICS_TOKEN only."""
    token = settings.metrics_token
    if not token:
        raise Forbidden(
            _("Metrics are off. Set CR_METRICS_TOKEN and scrape with it as a bearer token."),
            code="metrics_disabled",
        )
    scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Unauthenticated(
            _("Metrics need the bearer token set in CR_METRICS_TOKEN."),
            code="metrics_token_required",
        )
    response = Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, settings: Settings) -> None:
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.before_request
    def metrics_credential():
        # Answered here, before user authentication: the metrics token is not an API token.
        if request.endpoint == "ops.metrics":
            return scrape(settings)
        return None

    @app.after_request
    def record(response):
        endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
        labels = label_of(endpoint, request.method, response.status_code)
        REQUESTS.labels(*labels).inc()
        started = g.get("request_started")
        # No timing of personal requests: how long one took tells a share (signing, sealing)
        # or a revoke (shredding) from a read.
        if started is not None and labels[0] != PERSONAL:
            LATENCY.labels(labels[0]).observe(time.perf_counter() - started)
        return response
