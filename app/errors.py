"""One error shape for every failure: ``{"error": {"code", "message"}}`` (SPEC §5).

The domain raises the plain exceptions of :mod:`app.services.errors` (a machine code and a
human message); the handlers here give each kind its status, and turn werkzeug's HTTP errors
and validation errors into the same shape. An
unexpected exception is logged with the request id and answered with a generic 500: no stack
trace, path or SQL ever reaches a client.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.services import errors as domain
from app.services.errors import DomainError
from app.services.i18n import N_, translate
from app.services.playback import IntegrityFailure
from app.storage import StorageUnavailable
from app.validation_messages import translate_errors

log = logging.getLogger(__name__)


class HttpError(Exception):
    """An HTTP-only refusal raised by the web edge itself (a bad Range, say)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.details = headers, details


# The status of each kind of domain refusal. A subclass maps as its nearest listed base.
STATUS_OF: dict[type[DomainError], int] = {
    domain.InvalidRequest: 400,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.PayloadTooLarge: 413,
    domain.UnsupportedMedia: 415,
    # tus 1.0 checksum extension: "460 Checksum Mismatch".
    domain.ChecksumMismatch: 460,
    domain.Unprocessable: 422,
    domain.RateLimited: 429,
    domain.ServiceUnavailable: 503,
    IntegrityFailure: 502,
}


def status_of(error: DomainError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]  # type: ignore[index]
    return 400


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "rate_limited",
    431: "headers_too_large",
    460: "checksum_mismatch",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


# What a person reads for werkzeug's own refusals (its descriptions are English only); the code
# stays English. A description the edge wrote itself (abort(…, description=…)) is kept.
_HTTP_MESSAGES = {
    400: N_("The request could not be understood."),
    401: N_("Sign in first."),
    403: N_("You do not have access to this."),
    404: N_("There is nothing at this address."),
    405: N_("This address does not take that method."),
    406: N_("This address cannot answer in the format asked for."),
    409: N_("That conflicts with the current state. Reload and try again."),
    410: N_("This is gone for good."),
    411: N_("Say how long the body is (Content-Length)."),
    413: N_("The request is too large."),
    414: N_("The address is too long."),
    415: N_("This kind of content is not accepted here."),
    416: N_("That range is outside the file."),
    429: N_("Too many requests. Wait a moment and try again."),
    431: N_("The request headers are too large."),
    501: N_("This is not supported."),
    503: N_("The service is unavailable right now. Try again in a moment."),
}


def request_id() -> str:
    rid = getattr(g, "request_id", None)
    if rid is None:
        rid = g.request_id = uuid.uuid4().hex[:16]
    return rid


def _wants_html() -> bool:
    if request.path.startswith(("/api/", "/media/", "/.well-known/", "/healthz", "/readyz")):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "text/html"
        and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]
    )


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if _wants_html():
        response = Response(
            render_template("error.html", status=status, code=code, message=message),
            status=status,
            mimetype="text/html",
        )
    else:
        body: dict[str, Any] = {"code": code, "message": message}
        if details:
            body["details"] = details
        response = jsonify({"error": body})
        response.status_code = status
    response.headers["X-Request-Id"] = request_id()
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _describe_validation(messages: Any) -> tuple[str, dict[str, Any]]:
    """Flatten webargs' {location: {field: [msg]}} into one readable sentence."""
    fields: dict[str, Any] = {}
    if isinstance(messages, dict):
        for location, errors in messages.items():
            if isinstance(errors, dict):
                fields.update(errors)
            else:
                fields[location] = errors
    fields = translate_errors(fields)
    parts = []
    for name, errs in fields.items():
        text = "; ".join(map(str, errs)) if isinstance(errs, list) else str(errs)
        parts.append(f"{name}: {text}")
    message = translate(N_("Invalid request.")) + " "
    message += " ".join(parts) if parts else translate(N_("Check the fields."))
    return message[:1000], {"fields": fields}


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        # A message the domain wrote in the reader's language stays; a marked English one is
        # looked up in the catalog here.
        message = translate(error.message)
        return error_response(status_of(error), error.code, message, details=error.details)

    @app.errorhandler(HttpError)
    def handle_http_only_error(error: HttpError):
        return error_response(
            error.status,
            error.code,
            translate(error.message),
            details=error.details,
            headers=error.headers,
        )

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        status = error.code or 500
        code = _HTTP_CODES.get(status, "error")
        message = error.description or error.name
        if error.description == type(error).description and status in _HTTP_MESSAGES:
            message = translate(_HTTP_MESSAGES[status])
        details = None
        data = getattr(error, "data", None)
        if status in (400, 422) and isinstance(data, dict) and "messages" in data:
            status, code = 400, "invalid_request"
            message, details = _describe_validation(data["messages"])
        headers: dict[str, str] = {}
        valid_methods = getattr(error, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        if status == 416 and getattr(error, "length", None) is not None:
            headers["Content-Range"] = f"bytes */{error.length}"  # type: ignore[attr-defined]
        if status == 429:
            limit = getattr(error, "limit", None)
            custom = getattr(limit, "error_message", None)
            message = translate(custom if isinstance(custom, str) else _HTTP_MESSAGES[429])
        if isinstance(error, CSRFError):
            # A refused CSRF check is not a malformed request: give clients a code to act on.
            code = "csrf_failed"
            message = translate(N_("The form has expired or did not come from this site."))
            message += " " + translate(N_("Reload the page and try again."))
        return error_response(status, code, message, details=details, headers=headers)

    @app.errorhandler(StorageUnavailable)
    def handle_storage_unavailable(error: StorageUnavailable):
        # An outage of the object store is temporary and says so: 503 with Retry-After, not
        # a 500 that reads like a bug.
        log.warning("object store unavailable (request %s): %s", request_id(), error)
        return error_response(
            503,
            "storage_unavailable",
            translate(N_("The media store cannot be reached right now. Try again in a moment.")),
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        log.error("unhandled error (request %s)", request_id(), exc_info=error)
        return error_response(
            500,
            "internal_error",
            translate(N_("Something went wrong on our side. Reference: %(reference)s."))
            % {"reference": request_id()},
        )
