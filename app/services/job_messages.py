"""What the worker tells a person about a recording or share it could not process.

The worker has no reader, so it writes these in English (``recordings.probe_error``,
``shares.error``, a failed suggestion job); the pages and the API put them into the reader's
language where they are shown (:func:`in_reader_language`). Each is a template marked for the
catalog here, because the catalog is extracted from ``app/`` only.
"""

from __future__ import annotations

from app.services.i18n import N_, StoredMessages

# The file a message is about: the "part" value of a template.
PARTS = {"screen": N_("the screen file"), "audio": N_("the audio file")}

UNREADABLE = N_("The %(part)s file could not be read as audio or video.")
NO_STREAMS = N_("The %(part)s file has no audio or video in it.")
DAMAGED = N_("The %(part)s file is damaged: it cannot be read to its end.")
NO_LENGTH = N_("The %(part)s file has no playable length.")
TOO_LONG = N_("The %(part)s file lasts %(hours)s h; the limit is %(limit)s h.")
TOO_LARGE = N_("The %(part)s video is %(size)s; the largest accepted is %(limit)s.")
NO_PICTURE_SIZE = N_("The %(part)s video has no valid picture size.")
TOO_FAST = N_("The %(part)s video runs at %(fps)s frames per second; the limit is %(limit)s.")
TOO_MANY_PIXELS = N_(
    "The %(part)s video is too much to process: %(size)s at %(fps)s frames per second for "
    "%(seconds)s s is %(billions)s billion pixels; the limit is %(limit)s billion (about "
    "%(minutes)s minutes of 1920×1080 at 15 frames per second). Record a shorter part, or at a "
    "lower resolution or frame rate."
)
SCREEN_WITHOUT_VIDEO = N_("The screen file has no video in it.")
AUDIO_WITHOUT_SOUND = N_("The audio file has no sound in it.")
RECORDING_WITHOUT_LENGTH = N_("The recording has no playable length.")
RECORDING_WITHOUT_VIDEO = N_("The recording has no video.")
TRIM_TOO_SHORT = N_("The chosen part of the recording is shorter than a second.")
NOT_CONVERTIBLE = N_(
    "The recording could not be converted: the file is damaged or uses a format we cannot read."
)
NO_POSTER = N_("The recording could not be converted (no picture).")
NO_THUMBNAILS = N_("The recording could not be converted (no thumbnails).")
MEDIA_MISSING = N_("The recording's media is missing from storage; upload it again.")
MEDIA_CORRUPT = N_("The recording's stored media failed its integrity check; upload it again.")
SCREEN_UNREADABLE_FOR_SUGGESTIONS = N_("The screen file could not be read to suggest redactions.")
READ_TOO_SLOW = N_("Reading the file took too long; it may be damaged.")
TIME_LIMIT = N_("Processing took longer than the time limit.")
STORE_UNAVAILABLE = N_(
    "Storage or the database was unavailable for too long; share it again later."
)
UNEXPECTED = N_("Processing failed unexpectedly; please share it again.")
# Text recognition for suggestions (worker/ocr.py words these for the operator as well).
OCR_NOT_INSTALLED = N_(
    "Text recognition is not installed on this server (%(binary)s not found): install "
    "tesseract-ocr, tesseract-ocr-nor and tesseract-ocr-eng."
)
OCR_NOT_RUNNING = N_("Text recognition does not run on this server: %(error)s")
OCR_LANGUAGE_MISSING = N_(
    "Text recognition lacks the %(languages)s language data: install %(packages)s."
)
OCR_GONE = N_("Text recognition (tesseract) is not installed.")
OCR_TOO_SLOW = N_("Reading the screen for suggestions took too long.")

_STORED = StoredMessages(
    (
        value
        for name, value in sorted(globals().items())
        if name.isupper() and isinstance(value, str)
    ),
    value_words={"part": PARTS},
)


def say(template: str, **values: object) -> str:
    """The message in English, as the worker stores it."""
    return template % values if values else template


def in_reader_language(message: str | None) -> str | None:
    """A stored message in the current language (as it is if no template made it)."""
    return None if message is None else _STORED.translate(message)
