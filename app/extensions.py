"""Flask extensions, made unbound here and bound to an app by the factory (``init_app``)."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

limiter = Limiter(key_func=get_remote_address, default_limits=[])


class HeaderFirstCSRF(CSRFProtect):
    """Takes the token from a header first, and never parses a multipart body to find one:
    reading ``request.form`` would consume an upload's stream before the ingest reads it, and
    spool its files to disk in plaintext."""

    def _get_csrf_token(self):
        for header_name in current_app.config["WTF_CSRF_HEADERS"]:
            token = request.headers.get(header_name)
            if token:
                return token
        if request.mimetype == "multipart/form-data":
            return None
        return super()._get_csrf_token()


csrf = HeaderFirstCSRF()
