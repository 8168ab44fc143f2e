"""Prometheus metrics of this process (per process; scrape each web process)."""

from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "consent_replay_http_requests_total", "HTTP requests", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "consent_replay_http_request_seconds", "Time to the response headers", ["endpoint"]
)
MEDIA_BYTES = Counter("consent_replay_media_bytes_served_total", "Decrypted media bytes served")
REVOKES = Histogram(
    "consent_replay_revoke_seconds",
    "Revocation latency inside the app",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
UPLOAD_BYTES = Counter("consent_replay_upload_bytes_total", "Raw media bytes received")


def init_app(app: Flask) -> None:
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def record(response):
        endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response
