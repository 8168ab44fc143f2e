"""What one request may cost before the app reads it: a bounded body, bounded nesting.

Every request except the streamed uploads (which have their own limits: the policy's upload
size, parsed as a stream and sealed as it arrives) carries at most :data:`BODY_LIMIT`
bytes. A declared ``Content-Length`` above it is answered 413 before a byte of the body is
read; a chunked body is read up to the limit and no further, and answered 413 if it reaches it. A
JSON body is then checked for nesting deeper than :data:`MAX_JSON_DEPTH` before any parser
recurses into it (Python's would raise RecursionError: a 500), and answered 400.
"""

from __future__ import annotations

import re

from flask import Flask, request

from app.services.errors import InvalidRequest, PayloadTooLarge
from app.services.i18n import _, format_number

BODY_LIMIT = 64 * 1024
MAX_JSON_DEPTH = 32
# Endpoints that read their body as a stream, with limits of their own.
STREAMED = {"recordings.upload", "uploads.append"}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", data)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def init_app(app: Flask) -> None:
    @app.before_request
    def bound_the_body():
        if request.endpoint in STREAMED:
            return
        length = request.content_length
        if length is not None and length > BODY_LIMIT:
            raise PayloadTooLarge(
                _(
                    "The request body is %(length)s bytes; the limit is %(limit)s KiB.",
                    length=format_number(length),
                    limit=BODY_LIMIT // 1024,
                ),
                code="payload_too_large",
            )
        request.max_content_length = BODY_LIMIT
        # A chunked body is read up to the limit, no further: reaching it is a 413.
        chunked = length is None and request.headers.get("Transfer-Encoding")
        if chunked and len(request.get_data(cache=True)) >= BODY_LIMIT:
            raise PayloadTooLarge(
                _("The request body is larger than %(limit)s KiB.", limit=BODY_LIMIT // 1024),
                code="payload_too_large",
            )
        writes = request.method in ("POST", "PUT", "PATCH", "DELETE")
        if writes and request.is_json and json_depth(request.get_data(cache=True)) > MAX_JSON_DEPTH:
            raise InvalidRequest(
                _("The JSON body nests deeper than %(depth)s levels.", depth=MAX_JSON_DEPTH),
                code="invalid_json",
            )
