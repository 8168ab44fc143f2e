"""What the domain refuses, as plain exceptions: a machine code and a sentence for a person.

The domain knows nothing of HTTP. Each class names a kind of refusal; the web edge
(``app.errors``) maps the kinds to statuses, the CLI prints the message, a task logs it.
"""

from __future__ import annotations

from typing import Any

from app.services.i18n import N_


class DomainError(Exception):
    """A refusal with a machine ``code`` (stable, English) and a human ``message``."""

    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidRequest(DomainError):
    """The request itself is malformed or a value is out of bounds."""

    code = "invalid_request"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


# Marked for the catalog; the web edge shows them in the reader's language.
_NOT_FOUND = {
    "recording": N_("No such recording."),
    "share": N_("No such share."),
    "upload": N_("No such upload."),
    "view": N_("No such view."),
    "media": N_("No such media."),
    "token": N_("No such token."),
    "user": N_("No such user."),
    "feedback": N_("No such feedback."),
    "feedback form": N_("No such feedback form."),
    "suggestions": N_("No suggestions for this recording yet: ask for them with POST first."),
    "resource": N_("No such resource."),
}


class NotFound(DomainError):
    """Also what a foreign id gets: someone else's record is indistinguishable from none."""

    code = "not_found"

    def __init__(self, what: str = "resource") -> None:
        super().__init__(_NOT_FOUND.get(what) or f"No such {what}.")


class Conflict(DomainError):
    code = "conflict"


class Gone(DomainError):
    """The thing existed and has ended for good (a revoked or expired share)."""

    code = "gone"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class UnsupportedMedia(DomainError):
    code = "unsupported_media_type"


class ChecksumMismatch(DomainError):
    """The bytes received do not have the checksum the client sent with them (tus: 460)."""

    code = "checksum_mismatch"


class Unprocessable(DomainError):
    """Well-formed, but a choice the current state does not allow."""

    code = "unprocessable"


class RateLimited(DomainError):
    code = "rate_limited"


class ServiceUnavailable(DomainError):
    code = "unavailable"
