"""Operations endpoints: liveness, readiness, metrics and the public verification keys."""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import current_app, jsonify

from app import metrics as app_metrics
from app.api.blueprint import Blueprint
from app.context import runtime

log = logging.getLogger(__name__)
ops = Blueprint("ops", __name__, description="Health, readiness, metrics, verification keys")
_CHECK_TIMEOUT_S = 5.0
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")
# The check of each part still running, per app. A part that hangs (a store that accepts the
# connection and never answers) holds its thread until its own timeouts fire; later probes
# wait on that same check instead of starting more, so hung checks cannot fill the pool and
# make the healthy parts time out too.
_running: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_running_lock = threading.Lock()


@ops.route("/healthz")
@ops.doc(security=[], responses={200: {"description": "The process is alive"}})
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


def _check_database() -> None:
    runtime().db.ping()


def _check_broker() -> None:
    celery = current_app.extensions["celery"]
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)


def _check_storage() -> None:
    runtime().store.check()


@ops.route("/readyz")
@ops.doc(
    security=[],
    responses={
        200: {"description": "Database, broker and storage all answer"},
        503: {"description": "One part is down; the error names it"},
    },
)
def readyz():
    """Readiness: database, broker and storage, each named when it fails."""
    app = current_app._get_current_object()

    def run(check):
        with app.app_context():
            check()

    checks = {"database": _check_database, "broker": _check_broker, "storage": _check_storage}
    futures: dict[str, Future] = {}
    with _running_lock:
        running = _running.setdefault(app, {})
        for name, check in checks.items():
            future = running.get(name)
            if future is None or future.done():
                future = running[name] = _pool.submit(run, check)
            futures[name] = future
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=_CHECK_TIMEOUT_S)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "unavailable"
    failing = [name for name, state in results.items() if state != "ok"]
    if failing:
        body = {
            "status": "unavailable",
            "checks": results,
            "error": {
                "code": "not_ready",
                "message": f"Not ready: {', '.join(failing)} {'is' if len(failing) == 1 else 'are'}"
                " not reachable.",
            },
        }
        response = jsonify(body)
        response.status_code = 503
        return response
    return jsonify({"status": "ok", "checks": results})


@ops.route("/metrics")
@ops.doc(
    security=[{"metricsToken": []}],
    responses={
        200: {"description": "Prometheus text format"},
        401: {"description": "No or a wrong CR_METRICS_TOKEN bearer token"},
        403: {"description": "Metrics are off (CR_METRICS_TOKEN is not set)"},
    },
)
def metrics():
    """Prometheus metrics of this web process, for the bearer of ``CR_METRICS_TOKEN``. No
    counter tells uploads, opt-ins, deletions or revocations apart."""
    return app_metrics.scrape(runtime().settings)


@ops.route("/.well-known/jwks.json")
@ops.doc(security=[], responses={200: {"description": "JSON Web Key Set (Ed25519)"}})
def jwks():
    """The public keys that verify consent receipts and deletion certificates."""
    response = jsonify(runtime().keyring.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


blueprints = [ops]
