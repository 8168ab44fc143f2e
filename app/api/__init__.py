"""The public HTTP API (SPEC §5), documented as OpenAPI by flask-smorest."""

from __future__ import annotations

import marshmallow as ma
from flask import Flask
from flask_smorest import Api as _SmorestApi


class ErrorBody(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "human-readable text"})
    details = ma.fields.Dict(metadata={"description": "extra context, e.g. per-field errors"})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorBody, required=True)


class Api(_SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        # app.errors owns error handling for the whole app, API and pages alike.
        pass


def init_app(app: Flask) -> Api:
    from app.api import ops, v1

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
                }
            },
        },
    )
    api.spec.options["security"] = [{"bearer": []}, {"cookie": []}]
    for blueprint in (*ops.blueprints, *v1.blueprints):
        api.register_blueprint(blueprint)
    return api
