"""The public HTTP API (SPEC §5), documented as OpenAPI by flask-smorest."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api as _SmorestApi

from app.api import ops, v1
from app.api.schemas import ErrorSchema


class Api(_SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        # app.errors owns error handling for the whole app, API and pages alike.
        pass


def init_app(app: Flask) -> Api:
    api = Api(
        app,
        spec_kwargs={
            "info": {
                "description": (
                    "Consent-first coaching: employees opt in one recording at a time; "
                    "withdrawal crypto-shreds it."
                )
            },
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "cookie": {"type": "apiKey", "in": "cookie", "name": "cr_session"},
                    "metricsToken": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "the value of CR_METRICS_TOKEN (for /metrics only)",
                    },
                }
            },
        },
    )
    api.spec.options["security"] = [{"bearer": []}, {"cookie": []}]
    for blueprint in (*ops.blueprints, *v1.blueprints):
        api.register_blueprint(blueprint)
    return api
