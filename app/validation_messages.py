"""The request validator's messages (marshmallow's, through webargs) in the reader's language.

marshmallow formats its messages in English before the web edge sees them ("Length must be
between 1 and 10."). Each message it can give for this API's fields is listed here once, marked
for the catalog, as a pattern: a message that matches one is answered in the current language
with the same values; anything else is passed on as it is.
"""

from __future__ import annotations

from typing import Any

from app.services.i18n import N_, StoredMessages

TEMPLATES = (
    N_("Missing data for required field."),
    N_("Unknown field."),
    N_("Field may not be null."),
    N_("Invalid input type."),
    N_("Invalid type."),
    N_("Invalid value."),
    N_("Invalid input."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid string."),
    N_("Not a valid boolean."),
    N_("Not a valid UUID."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("Not a valid date."),
    N_("Not a valid datetime."),
    N_("Not a valid utf-8 string."),
    N_("Number too large."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("String does not match expected pattern."),
    N_("Length must be between %(min)s and %(max)s."),
    N_("Length must be %(equal)s."),
    N_("Shorter than minimum length %(min)s."),
    N_("Longer than maximum length %(max)s."),
    N_("Must be one of: %(choices)s."),
    N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than %(min)s and less than %(max)s."),
    N_("Must be greater than or equal to %(min)s and less than %(max)s."),
    N_("Must be greater than %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than or equal to %(min)s."),
    N_("Must be greater than %(min)s."),
    N_("Must be less than or equal to %(max)s."),
    N_("Must be less than %(max)s."),
)
_MESSAGES = StoredMessages(TEMPLATES)


def translate_validation(message: str) -> str:
    """``message`` in the current language if it is one of the validator's; else as it is."""
    return _MESSAGES.translate(message)


def translate_errors(errors: Any) -> Any:
    """The validator's messages, nested as it gives them ({field: [message]}), translated."""
    if isinstance(errors, str):
        return translate_validation(errors)
    if isinstance(errors, list):
        return [translate_errors(error) for error in errors]
    if isinstance(errors, dict):
        return {key: translate_errors(error) for key, error in errors.items()}
    return errors
