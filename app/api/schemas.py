"""Request and response schemas of the public API (they also generate the OpenAPI document)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class ErrorBody(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "human-readable text"})
    details = ma.fields.Dict(metadata={"description": "extra context, e.g. per-field errors"})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorBody, required=True)


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class MeSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    login = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    email_notifications = ma.fields.Boolean(
        metadata={"description": "whether the person wants e-mail notifications"}
    )
    team = ma.fields.String(allow_none=True)
    has_password = ma.fields.Boolean()
    language = ma.fields.String(
        allow_none=True, metadata={"description": "en or nb, the person's choice; null: none"}
    )
    csrf_token = ma.fields.String(
        metadata={"description": "with the session cookie only: the CSRF token for changes"}
    )


class PersonSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)


class RecordingSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True)
    title = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)
    deleted_at = ma.fields.AwareDateTime(allow_none=True)
    duration_s = ma.fields.Float(allow_none=True)
    size_bytes = ma.fields.Integer()
    has_video = ma.fields.Boolean(allow_none=True)
    audio_channels = ma.fields.Integer(allow_none=True)
    agent_channel = ma.fields.String()
    customer_informed = ma.fields.Boolean()
    probe_status = ma.fields.String()
    probe_error = ma.fields.String(allow_none=True)
    media_sha256 = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), allow_none=True
    )
    parts = ma.fields.List(ma.fields.String())
    share_ids = ma.fields.List(ma.fields.UUID())
    certificate = ma.fields.String(allow_none=True)


class RecordingListSchema(ma.Schema):
    recordings = ma.fields.List(ma.fields.Nested(RecordingSchema), required=True)


class RecordingListArgs(Strict):
    include_deleted = ma.fields.Boolean(load_default=False)


class RecordingUploadSchema(ma.Schema):
    """Documentation of the multipart upload; the body is parsed as a stream, not by this."""

    screen = ma.fields.Raw(
        metadata={
            "type": "string",
            "format": "binary",
            "description": "screen video (WebM, MP4, Matroska)",
        }
    )
    audio = ma.fields.Raw(
        metadata={
            "type": "string",
            "format": "binary",
            "description": "call audio (WAV, Ogg/WebM Opus, MP3, M4A)",
        }
    )
    title = ma.fields.String(validate=validate.Length(max=200))
    agent_channel = ma.fields.String(validate=validate.OneOf(["left", "right", "mono"]))
    customer_informed = ma.fields.Boolean()


class UploadIdsSchema(Strict):
    screen = ma.fields.UUID(metadata={"description": "a finished upload: the screen video"})
    audio = ma.fields.UUID(metadata={"description": "a finished upload: the call audio"})


class RecordingFromUploadsSchema(Strict):
    """A draft from finished resumable uploads (SPEC §16), instead of multipart files."""

    upload_ids = ma.fields.Nested(UploadIdsSchema, required=True)
    title = ma.fields.String(allow_none=True, validate=validate.Length(max=200))
    agent_channel = ma.fields.String(
        allow_none=True, validate=validate.OneOf(["left", "right", "mono"])
    )
    customer_informed = ma.fields.Boolean(load_default=False)


class UploadSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    offset = ma.fields.Integer(required=True, metadata={"description": "bytes stored so far"})
    length = ma.fields.Integer(allow_none=True, metadata={"description": "None until declared"})
    complete = ma.fields.Boolean(required=True)
    filename = ma.fields.String(allow_none=True)
    filetype = ma.fields.String(allow_none=True)
    container = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)


class UploadListSchema(ma.Schema):
    uploads = ma.fields.List(ma.fields.Nested(UploadSchema), required=True)


class TrimSchema(Strict):
    start_s = ma.fields.Float(required=True, validate=validate.Range(min=0, max=86400))
    end_s = ma.fields.Float(required=True, validate=validate.Range(min=0, max=86400))


class ShareCreateSchema(Strict):
    coach_ids = ma.fields.List(
        ma.fields.UUID(), required=True, validate=validate.Length(min=1, max=10)
    )
    purpose = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))
    expires_in_days = ma.fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=365)
    )
    trim = ma.fields.Nested(TrimSchema, allow_none=True)
    include_customer_audio = ma.fields.Boolean(load_default=False)
    note = ma.fields.String(allow_none=True, validate=validate.Length(max=2000))


class MediaLinksSchema(ma.Schema):
    video = ma.fields.String()
    poster = ma.fields.String()
    thumbnails = ma.fields.String()
    waveform = ma.fields.String()


class ShareSchema(ma.Schema):
    """A share. To a coach, a share that has ended is only ``{"id", "status": "ended"}``."""

    id = ma.fields.UUID(required=True)
    recording_id = ma.fields.UUID()
    status = ma.fields.String(
        required=True,
        metadata={
            "description": "processing, ready, failed, revoked or expired; to a coach, "
            "ended (without saying which)",
        },
    )
    progress = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    coach_ids = ma.fields.List(ma.fields.UUID())
    coaches = ma.fields.List(ma.fields.Nested(PersonSchema))
    employee = ma.fields.Nested(PersonSchema)
    purpose = ma.fields.String(
        allow_none=True, metadata={"description": "null once the share has ended (shredded)"}
    )
    title = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    expires_at = ma.fields.AwareDateTime()
    ended_at = ma.fields.AwareDateTime(allow_none=True)
    duration_s = ma.fields.Float(allow_none=True)
    trim = ma.fields.Nested(TrimSchema, allow_none=True)
    include_customer_audio = ma.fields.Boolean()
    media = ma.fields.Nested(MediaLinksSchema)
    receipt = ma.fields.String(
        allow_none=True,
        metadata={"description": "signed consent receipt (JWT), to its owner, while it lasts"},
    )
    certificate = ma.fields.String(allow_none=True)


class ShareListSchema(ma.Schema):
    shares = ma.fields.List(ma.fields.Nested(ShareSchema), required=True)


class RevocationSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True)
    revoked_at = ma.fields.AwareDateTime(required=True)
    key_destroyed = ma.fields.Boolean(required=True)
    certificate = ma.fields.String(required=True, allow_none=True)


class AccessEventSchema(ma.Schema):
    at = ma.fields.AwareDateTime(required=True)
    actor_id = ma.fields.UUID(allow_none=True, required=True)
    actor_name = ma.fields.String(allow_none=True)
    action = ma.fields.String(required=True)
    detail = ma.fields.Dict()


class ViewSessionSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    viewer_id = ma.fields.UUID(required=True)
    viewer_name = ma.fields.String()
    started_at = ma.fields.AwareDateTime()
    last_seen_at = ma.fields.AwareDateTime()
    seconds_watched = ma.fields.Float()
    bytes_served = ma.fields.Integer()
    ranges = ma.fields.List(ma.fields.List(ma.fields.Integer()))


class AccessLogSchema(ma.Schema):
    share_id = ma.fields.UUID(required=True)
    events = ma.fields.List(ma.fields.Nested(AccessEventSchema), required=True)
    views = ma.fields.List(ma.fields.Nested(ViewSessionSchema))


class CommentCreateSchema(Strict):
    at_s = ma.fields.Float(required=True, validate=validate.Range(min=0, max=86400))
    body = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class CommentSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    at_s = ma.fields.Float(required=True)
    body = ma.fields.String(required=True)
    author = ma.fields.Nested(PersonSchema)
    created_at = ma.fields.AwareDateTime()


class CommentListSchema(ma.Schema):
    comments = ma.fields.List(ma.fields.Nested(CommentSchema), required=True)


class ViewStartSchema(ma.Schema):
    id = ma.fields.UUID(required=True)


class HeartbeatSchema(Strict):
    position_s = ma.fields.Float(required=True, validate=validate.Range(min=0, max=86400))
    watched_s = ma.fields.Float(required=True, validate=validate.Range(min=0, max=120))


class CoachSchema(PersonSchema):
    login = ma.fields.String(required=True)
    team = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    new_account = ma.fields.Boolean(
        required=True, metadata={"description": "created in the last 14 days"}
    )
    name_shared = ma.fields.Boolean(
        required=True, metadata={"description": "another coach has the same name"}
    )


class CoachListSchema(ma.Schema):
    coaches = ma.fields.List(ma.fields.Nested(CoachSchema), required=True)


class PolicySchema(ma.Schema):
    version = ma.fields.Integer(required=True)
    max_share_days = ma.fields.Integer(required=True)
    draft_lifetime_hours = ma.fields.Integer(required=True)
    max_upload_bytes = ma.fields.Integer(required=True)
    consent_text = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime()
