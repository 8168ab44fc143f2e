"""Redaction suggestions (SPEC §12): the employee asks, a worker job reads the draft's screen.

The state lives on the recording (``suggestions_status``: pending, ready or failed; the boxes
sealed under the recording's key, so deleting the draft shreds them). Only the recording's
owner may ask or read. Asking while a job is pending starts no second one; asking again after
it finished reads the screen again. Suggestions are only proposals: a box hides something only
when the employee sends it in a share's ``redactions``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app import jobs
from app.db import after_commit
from app.models import MediaObject, Recording, RecordingStatus, User
from app.runtime import Runtime
from app.services import job_messages, keys, lifecycle, recordings
from app.services.errors import NotFound, Unprocessable
from app.services.i18n import _
from app.services.sealing import open_json, seal_json

FIELD = "suggestions"


def request(session: Session, rt: Runtime, owner: User, recording_id: uuid.UUID | str) -> Recording:
    """Start the suggestion job for one of the owner's drafts (none if one is pending)."""
    recording = recordings.get_own(session, owner, recording_id, lock=True)
    if recording.status is not RecordingStatus.DRAFT:
        raise NotFound("recording")
    if recording.probe_status == "failed":
        raise Unprocessable(
            _(
                "This recording cannot be read: %(reason)s",
                reason=job_messages.in_reader_language(recording.probe_error)
                or _("it is not playable."),
            ),
            code="recording_unusable",
        )
    if not any(o.kind == "screen" for o in recording.objects) or recording.has_video is False:
        raise Unprocessable(
            _("This recording has no video, so there is no screen to read for suggestions."),
            code="no_video",
        )
    if lifecycle.suggestions_requested(session, recording):
        rid = str(recording.id)
        after_commit(session, lambda: rt.jobs.send(jobs.SUGGEST_REDACTIONS, rid))
    return recording


def present(
    session: Session, rt: Runtime, owner: User, recording_id: uuid.UUID | str
) -> dict[str, Any]:
    """``{"status", "suggestions", "error"}`` of one of the owner's drafts."""
    recording = recordings.get_own(session, owner, recording_id)
    if recording.status is not RecordingStatus.DRAFT:
        raise NotFound("recording")
    if recording.suggestions_status is None:
        raise NotFound("suggestions")
    return answer(session, rt, recording)


def answer(session: Session, rt: Runtime, recording: Recording) -> dict[str, Any]:
    suggestions: list[dict[str, Any]] = []
    if recording.suggestions_status == "ready" and recording.suggestions_sealed is not None:
        suggestions = list(
            open_json(
                _dek(session, rt, recording),
                recording.key_id,
                FIELD,
                recording.id,
                recording.suggestions_sealed,
            )
        )
    return {
        "status": recording.suggestions_status,
        "suggestions": suggestions,
        "error": job_messages.in_reader_language(recording.suggestions_error),
    }


def seal(
    session: Session, rt: Runtime, recording: Recording, suggestions: list[dict[str, Any]]
) -> bytes:
    """The job's boxes sealed under the recording's key (the worker stores them)."""
    return seal_json(
        _dek(session, rt, recording), recording.key_id, FIELD, recording.id, suggestions
    )


def _dek(session: Session, rt: Runtime, recording: Recording) -> bytes:
    try:
        return keys.load_data_key(session, rt.kek, rt.key_cache, recording.key_id)
    except keys.KeyDestroyed:
        raise NotFound("recording") from None


def screen_object(recording: Recording) -> MediaObject | None:
    return next((o for o in recording.objects if o.kind == "screen"), None)
