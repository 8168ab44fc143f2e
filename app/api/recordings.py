"""``/api/v1/recordings``: upload, list, read and delete one's own recordings."""

from __future__ import annotations

from flask import request
from marshmallow import ValidationError

from app.api.blueprint import Blueprint
from app.api.multipart import ingest_upload
from app.api.schemas import (
    RecordingFromUploadsSchema,
    RecordingListArgs,
    RecordingListSchema,
    RecordingSchema,
    RecordingUploadSchema,
    SuggestionsSchema,
)
from app.auth import current_user, db_session, require
from app.context import runtime
from app.models import Role
from app.services import ingest, policy, recordings, suggestions
from app.services.errors import InvalidRequest
from app.services.i18n import _
from app.validation_messages import translate_errors

blp = Blueprint(
    "recordings",
    __name__,
    url_prefix="/api/v1/recordings",
    description="An employee's own recordings (private drafts)",
)


@blp.route("", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "multipart/form-data": {"schema": RecordingUploadSchema},
            "application/json": {"schema": RecordingFromUploadsSchema},
        },
    }
)
@blp.response(201, RecordingSchema)
@blp.alt_response(404, description="An upload id that is not one of yours")
@blp.alt_response(409, description="An upload that is unfinished or already used")
@blp.alt_response(413, description="Larger than the upload limit")
@blp.alt_response(415, description="Not multipart, or a file that is not audio or video")
def upload():
    """Upload a recording: ``screen`` and/or ``audio``, streamed and encrypted as it arrives —
    or, as JSON, make it from finished resumable uploads (``upload_ids``, SPEC §16)."""
    rt = runtime()
    session = db_session()
    if request.mimetype == "application/json":
        return _from_uploads(rt, session)
    limit = min(policy.current_policy(session).max_upload_bytes, rt.settings.max_upload_bytes)
    session.rollback()  # release the read transaction while the upload streams in
    result = ingest_upload(
        request.stream,
        request.headers.get("Content-Type"),
        request.content_length,
        store=rt.store,
        max_bytes=limit,
    )
    try:
        recording = recordings.create_recording(session, rt, current_user(), result)
        session.commit()
    except BaseException:
        session.rollback()
        ingest.discard(rt.store, result)
        raise
    return recordings.present(session, rt, recording), 201


def _from_uploads(rt, session):
    body = _load_json(RecordingFromUploadsSchema())
    ids = {field: str(value) for field, value in body["upload_ids"].items()}
    fields = {
        "title": body.get("title") or "",
        "agent_channel": body.get("agent_channel") or "",
        "customer_informed": "true" if body.get("customer_informed") else "false",
    }
    result = None
    try:
        recording, result = recordings.create_from_uploads(session, rt, current_user(), ids, fields)
        session.commit()
    except BaseException:
        session.rollback()
        if result is not None:
            ingest.discard(rt.store, result)
        raise
    return recordings.present(session, rt, recording), 201


def _load_json(schema):
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidRequest(
            _('Send a JSON object: {"upload_ids": {"screen": ID, "audio": ID}, ...}.'),
            code="invalid_request",
        )
    try:
        return schema.load(data)
    except ValidationError as error:
        message = "; ".join(
            f"{name}: {errors}"
            for name, errors in sorted(translate_errors(error.normalized_messages()).items())
        )
        raise InvalidRequest(
            f"{_('Invalid request.')} {message}"[:1000], code="invalid_request"
        ) from None


@blp.route("", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.arguments(RecordingListArgs, location="query")
@blp.response(200, RecordingListSchema)
def list_recordings(args):
    """My recordings (drafts; ``include_deleted`` adds deleted ones with their certificates)."""
    rt, session = runtime(), db_session()
    rows = recordings.list_own(session, current_user(), include_deleted=args["include_deleted"])
    return {"recordings": [recordings.present(session, rt, r) for r in rows]}


@blp.route("/<string:recording_id>", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, RecordingSchema)
def get_recording(recording_id: str):
    """One of my recordings."""
    rt, session = runtime(), db_session()
    return recordings.present(
        session, rt, recordings.get_own(session, current_user(), recording_id)
    )


@blp.route("/<string:recording_id>", methods=["DELETE"])
@require(Role.EMPLOYEE)
@blp.response(200, RecordingSchema)
def delete_recording(recording_id: str):
    """Shred the recording and revoke all of its shares; answers with its certificate."""
    rt, session = runtime(), db_session()
    recording = recordings.delete_recording(session, rt, current_user(), recording_id)
    return recordings.present(session, rt, recording)


@blp.route("/<string:recording_id>/redaction-suggestions", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.response(202, SuggestionsSchema)
@blp.alt_response(404, description="No such recording of yours")
@blp.alt_response(422, description="A recording without video, or one that cannot be read")
def request_suggestions(recording_id: str):
    """Ask the worker to read my draft's screen and propose cover boxes over personal data
    (SPEC §12). While a job is pending, asking again starts no second one."""
    rt, session, user = runtime(), db_session(), current_user()
    recording = suggestions.request(session, rt, user, recording_id)
    session.commit()
    return suggestions.answer(session, rt, recording), 202


@blp.route("/<string:recording_id>/redaction-suggestions", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, SuggestionsSchema)
@blp.alt_response(404, description="No such recording of yours, or none asked for")
def get_suggestions(recording_id: str):
    """The suggestions' state; when ``ready``, the proposed boxes (never the text under them)."""
    rt, session = runtime(), db_session()
    return suggestions.present(session, rt, current_user(), recording_id)
