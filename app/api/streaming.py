"""``/media/…``: decrypted media, one HTTP Range per request (SPEC §5).

Every request is authorised afresh (share ready and not ended, caller its owner or a grantee),
then :mod:`app.services.playback` decrypts only the chunks the range covers, asking before each
batch and each write whether the share has ended (the process's set of ended shares, fed by
NOTIFY or an in-process mark and a bounded poll: no database query per batch): once a revoke
has committed and answered, no further write is made.
This module speaks HTTP: Range, If-Range, ETag and the response headers.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from collections.abc import Callable, Iterator

from flask import Response, request
from sqlalchemy import select
from werkzeug.http import is_byte_range_valid

from app.api.blueprint import Blueprint
from app.api.schemas import ErrorSchema
from app.auth import current_user, db_session, require
from app.context import runtime
from app.errors import HttpError
from app.metrics import MEDIA_BYTES
from app.models import MediaObject, Recording, RecordingStatus, Role
from app.runtime import Runtime
from app.services import keys, playback, recordings, revocations, shares, viewing
from app.services.errors import NotFound

log = logging.getLogger(__name__)
# The send buffer of a media response's socket (the kernel doubles it): a few writes' worth.
MEDIA_SEND_BUFFER = 64 * 1024

MEDIA_PREFIX = "/media"
blp = Blueprint(
    "media",
    __name__,
    url_prefix=MEDIA_PREFIX,
    description="Decrypted media of a share, streamed with HTTP Range",
)


def is_media_path(path: str) -> bool:
    """Whether a request path is a media stream's (served by the media pool, when apart)."""
    return path.startswith(MEDIA_PREFIX + "/")


def _range_for(size: int, etag: str) -> tuple[int, int, bool]:
    """(start, stop, partial) from the Range and If-Range headers, via werkzeug's parsers."""
    byte_range = request.range
    # A range unit other than bytes is ignored (RFC 9110 §14.2), as is a malformed header.
    if byte_range is None or byte_range.units != "bytes":
        return 0, size, False
    if_range = request.if_range
    # A date or a different entity tag in If-Range means "send the whole thing" (RFC 9110
    # §13.1.5): our objects carry strong entity tags only, and If-Range compares strongly, so
    # a weak tag never matches (werkzeug's parser drops the W/ prefix: look at the header).
    weak = request.headers.get("If-Range", "").lstrip().startswith("W/")
    if if_range.date is not None or weak or (if_range.etag and if_range.etag != etag.strip('"')):
        return 0, size, False
    if len(byte_range.ranges) > 1:
        return 0, size, False
    start, stop = byte_range.ranges[0]
    if start < 0:
        # A suffix range: the last -start bytes, or the whole object when it is shorter
        # (RFC 9110 §14.1.2; werkzeug's range_for_length answers None there, i.e. 416).
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if not is_byte_range_valid(start, stop, size):
        raise HttpError(
            416,
            "range_not_satisfiable",
            "The requested range is outside the media.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, stop, True


# The OpenAPI description of a media response: the bytes, by kind, and errors in the one shape.
_RANGED_CONTENT = {
    "video/mp4": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
}
# The waveform is always sent whole: a Range on it is ignored.
_MEDIA_CONTENT = {
    **_RANGED_CONTENT,
    "application/json": {"schema": {"type": "object", "description": "waveform peaks"}},
}
_ERROR_CONTENT = {"application/json": {"schema": ErrorSchema}}


@blp.route("/shares/<string:share_id>/<string:kind>")
@require(Role.EMPLOYEE, Role.COACH)
@blp.doc(
    parameters=[
        {
            "in": "path",
            "name": "kind",
            "required": True,
            "schema": {"type": "string", "enum": list(playback.SHARE_KINDS)},
        },
        {
            "in": "header",
            "name": "Range",
            "schema": {"type": "string"},
            "required": False,
            "example": "bytes=0-65535",
        },
        {
            "in": "header",
            "name": "If-Range",
            "schema": {"type": "string"},
            "required": False,
            "description": "the ETag of an earlier response: the range only if it still holds",
        },
    ],
    responses={
        200: {"description": "The whole decrypted object", "content": _MEDIA_CONTENT},
        206: {"description": "The requested byte range", "content": _RANGED_CONTENT},
        401: {"description": "Not signed in", "content": _ERROR_CONTENT},
        404: {"description": "No such share for you", "content": _ERROR_CONTENT},
        410: {"description": "Consent ended: revoked or expired", "content": _ERROR_CONTENT},
        416: {"description": "Range not satisfiable", "content": _ERROR_CONTENT},
        422: {"description": "The share is not ready yet", "content": _ERROR_CONTENT},
        502: {
            "description": "The stored media failed its integrity check",
            "content": _ERROR_CONTENT,
        },
        503: {"description": "The media store is unreachable", "content": _ERROR_CONTENT},
    },
)
def media(share_id: str, kind: str):
    """The decrypted rendition (``video``), ``poster.jpg``, ``thumbnails.jpg`` or
    ``waveform.json`` of a share; each but the waveform honours one HTTP Range per request."""
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    shares.require_viewable(share)
    obj = playback.share_object(session, share, kind)
    dek = shares.share_dek(session, rt, share)
    view = viewing.for_media_request(session, share, user, request.args.get("view"))
    # The access is on record before the first byte (SPEC §2.6); what is served is tallied
    # in memory and flushed by the process within seconds (app.services.viewing).
    session.commit()
    view_id = view.id

    def record(start: int, stop: int) -> None:
        rt.views.add_range(view_id, start, stop)

    guard = revocations.Guard(rt.ended, share.id, share.expires_at)

    def done(sent: int) -> None:
        guard.close()
        rt.views.add_bytes(view_id, sent)

    _small_send_buffer()
    response = stream_object(
        rt,
        obj,
        dek,
        share.key_id,
        still_allowed=guard,
        may_write=guard,
        on_range=record,
        on_done=done,
    )
    response.call_on_close(guard.close)
    return response


def _small_send_buffer() -> None:
    """Keep what the kernel holds for a slow reader small: what is in the socket's buffer when
    a revoke commits still reaches the client, so it is bounded (Linux doubles the value)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MEDIA_SEND_BUFFER)


def stream_object(
    rt: Runtime,
    obj: MediaObject,
    dek: bytes,
    key_id: uuid.UUID,
    *,
    still_allowed: Callable[[], bool],
    may_write: Callable[[], bool] | None = None,
    on_range: Callable[[int, int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
    content_type: str | None = None,
) -> Response:
    """Serve one stored object decrypted, honouring one Range, re-checking access per batch.

    A JSON object (the waveform) ignores Range (RFC 9110 allows it) and is sent whole: a slice
    of a JSON document is not JSON, and such objects are small.
    """
    content_type = content_type or obj.content_type
    ranges = content_type != "application/json"
    stream = playback.MediaStream(rt, obj, dek, key_id, still_allowed, may_write)
    etag = stream.etag
    if request.if_none_match and request.if_none_match.contains(etag.strip('"')):
        stream.close()
        return Response(status=304, headers={"ETag": etag})
    start, stop, partial = _range_for(stream.size, etag) if ranges else (0, stream.size, False)
    if on_range is not None:
        on_range(start, stop)
    body = _counted(stream.body(start, stop, on_done))
    headers = {
        "Accept-Ranges": "bytes" if ranges else "none",
        "ETag": etag,
        "Cache-Control": "no-store, private",
        "Content-Disposition": "inline",
        "Content-Length": str(stop - start),
        "X-Content-Type-Options": "nosniff",
    }
    if partial:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stream.size}"
    response = Response(
        body,
        status=206 if partial else 200,
        headers=headers,
        mimetype=content_type,
        direct_passthrough=True,
    )
    # Also when the body is never iterated (HEAD, a client gone before the first byte).
    response.call_on_close(stream.close)
    return response


def _counted(body: Iterator[bytes]) -> Iterator[bytes]:
    for block in body:
        MEDIA_BYTES.inc(len(block))
        yield block


def _recording_is_draft(rt: Runtime, recording_id: uuid.UUID) -> bool:
    with rt.db.session() as session:
        status = session.scalar(select(Recording.status).where(Recording.id == recording_id))
    return status is RecordingStatus.DRAFT


@blp.route("/recordings/<string:recording_id>/<string:part>")
@require(Role.EMPLOYEE)
@blp.doc(
    responses={
        200: {"description": "The uploaded file, decrypted"},
        206: {"description": "The requested byte range"},
        404: {"description": "No such recording of yours"},
    },
)
def recording_media(recording_id: str, part: str):
    """My own upload (``screen`` or ``audio``), decrypted, for the preview and trim player."""
    if part not in ("screen", "audio"):
        raise NotFound("media")
    rt, session, user = runtime(), db_session(), current_user()
    recording = recordings.get_own(session, user, recording_id)
    if recording.status is not RecordingStatus.DRAFT:
        raise NotFound("recording")
    obj = next((o for o in recording.objects if o.kind == part), None)
    if obj is None:
        raise NotFound("media")
    key_id = recordings.object_key_id(recording, obj)
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, key_id)
    except keys.KeyDestroyed:
        raise NotFound("recording") from None
    rid = recording.id
    content_type = playback.recording_content_type(obj)
    return stream_object(
        rt,
        obj,
        dek,
        key_id,
        still_allowed=lambda: _recording_is_draft(rt, rid),
        content_type=content_type,
    )


blueprints = [blp]
