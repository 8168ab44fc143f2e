"""``/api/v1/uploads``: resumable uploads, tus 1.0 (core, creation, creation-defer-length,
termination, checksum, expiration) — SPEC §16.

The edge reads the tus headers and the request body; :mod:`app.services.uploads` seals and
stores. Authentication is the API's own (bearer token, or the session cookie with the CSRF
header for the pages); ``OPTIONS`` (discovery) answers anyone, as tus clients send it without
credentials, and tells only the protocol's settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime
from typing import BinaryIO

from flask import Response, jsonify, request, url_for
from werkzeug.exceptions import ClientDisconnected

from app.api.blueprint import Blueprint
from app.api.schemas import UploadListSchema, UploadSchema
from app.auth import current_user, db_session, require
from app.context import runtime
from app.errors import HttpError
from app.models import Role, Upload
from app.services import uploads
from app.services.errors import InvalidRequest, UnsupportedMedia
from app.services.i18n import _
from app.services.ingest import UploadAborted

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-defer-length,termination,checksum,expiration"
PATCH_TYPE = "application/offset+octet-stream"
READ_SIZE = 1 << 20
READ_PIECE = 64 * 1024

blp = Blueprint(
    "uploads",
    __name__,
    url_prefix="/api/v1/uploads",
    description=(
        "Resumable uploads with the tus 1.0 protocol (https://tus.io/protocols/resumable-upload):"
        " create with POST (Upload-Length or Upload-Defer-Length: 1, Upload-Metadata filename "
        "and filetype), send the bytes with PATCH (application/offset+octet-stream, "
        "Upload-Offset, optional Upload-Checksum: sha256 …), ask the offset with HEAD, cancel "
        "with DELETE. Only whole 16 KiB chunks are acknowledged until the last request: resume "
        "from the Upload-Offset answered. A finished upload becomes a draft with POST "
        '/api/v1/recordings {"upload_ids": {"screen": ID, "audio": ID}}.'
    ),
)

TUS_REQUEST_HEADERS = [
    {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"type": "string"}},
]


@blp.after_request
def tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if request.method == "OPTIONS" or response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
        response.headers["Tus-Extension"] = TUS_EXTENSIONS
        response.headers["Tus-Checksum-Algorithm"] = ",".join(uploads.CHECKSUM_ALGORITHMS)
        response.headers["Tus-Max-Size"] = str(uploads.limit_bytes(db_session(), runtime()))
    if request.method == "OPTIONS":
        response.status_code = 204
        response.set_data(b"")
    if response.status_code == 204:  # no body, so no type to announce
        response.headers.pop("Content-Type", None)
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_tus(*, optional: bool = False) -> None:
    version = request.headers.get("Tus-Resumable")
    if version is None and optional:
        return
    if version != TUS_VERSION:
        raise HttpError(
            412,
            "tus_version",
            "Send the header Tus-Resumable: 1.0.0 (the tus version this server speaks).",
            headers={"Tus-Version": TUS_VERSION},
        )


def _int_header(name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest(
            _("%(name)s must be a whole number of bytes.", name=name), code="invalid_header"
        )
    return int(raw)


def _tus_state(response: Response, upload: Upload) -> Response:
    response.headers["Upload-Offset"] = str(upload.offset)
    response.headers["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    return response


@blp.route("", methods=["POST"])
@require(Role.EMPLOYEE)
@blp.doc(
    parameters=[
        *TUS_REQUEST_HEADERS,
        {"name": "Upload-Length", "in": "header", "schema": {"type": "integer"}},
        {"name": "Upload-Defer-Length", "in": "header", "schema": {"type": "string"}},
        {"name": "Upload-Metadata", "in": "header", "schema": {"type": "string"}},
    ],
    responses={
        201: {"description": "Created; the upload's URL is in Location (its id the last part)"},
    },
)
@blp.alt_response(409, description="Too many unfinished uploads")
@blp.alt_response(412, description="Tus-Resumable missing or not 1.0.0")
@blp.alt_response(413, description="Upload-Length above the upload limit")
@blp.alt_response(415, description="filetype is not audio or video")
def create_upload():
    """Create an upload (tus creation): 201 with ``Location``."""
    _require_tus()
    length = _int_header("Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length")
    if (length is None) == (deferred is None) or (deferred is not None and deferred != "1"):
        raise InvalidRequest(
            _(
                "Send Upload-Length (the file's size in bytes), or Upload-Defer-Length: 1 when the "
                "size is not known yet — one of the two."
            ),
            code="invalid_header",
        )
    rt, session = runtime(), db_session()
    metadata = uploads.parse_metadata(request.headers.get("Upload-Metadata"))
    upload = uploads.create_upload(session, rt, current_user(), length=length, metadata=metadata)
    session.commit()
    response = jsonify(UploadSchema().dump(uploads.present(session, rt, upload)))
    response.status_code = 201
    response.headers["Location"] = url_for("uploads.get_upload", upload_id=str(upload.id))
    return _tus_state(response, upload)


@blp.route("", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.response(200, UploadListSchema)
def list_uploads():
    """My unfinished uploads (and finished ones not yet made into a recording)."""
    rt, session = runtime(), db_session()
    rows = uploads.list_open(session, current_user())
    return {"uploads": [uploads.present(session, rt, u) for u in rows]}


@blp.route("/<string:upload_id>", methods=["GET"])
@require(Role.EMPLOYEE)
@blp.doc(parameters=[{"name": "Tus-Resumable", "in": "header", "schema": {"type": "string"}}])
@blp.response(200, UploadSchema)
@blp.alt_response(404, description="No such upload of yours")
@blp.alt_response(410, description="The upload has become a recording")
def get_upload(upload_id: str):
    """The upload's state; as ``HEAD`` (tus), the same in ``Upload-Offset``,
    ``Upload-Length`` (or ``Upload-Defer-Length``) and ``Upload-Metadata``."""
    _require_tus(optional=True)
    rt, session = runtime(), db_session()
    upload = uploads.get_open(session, current_user(), upload_id)
    body = uploads.present(session, rt, upload)
    response = jsonify(UploadSchema().dump(body))
    if upload.length is None:
        response.headers["Upload-Defer-Length"] = "1"
    else:
        response.headers["Upload-Length"] = str(upload.length)
    metadata = uploads.encode_metadata({"filename": body["filename"], "filetype": upload.filetype})
    if metadata:
        response.headers["Upload-Metadata"] = metadata
    return _tus_state(response, upload)


def _body(stream: BinaryIO) -> Iterator[bytes]:
    """The PATCH body in blocks of about READ_SIZE, read READ_PIECE at a time: a read that
    breaks off (client gone, or silent past CR_CLIENT_TIMEOUT_S) loses only the piece it was
    reading, and what came before it is still stored."""
    pending: list[bytes] = []
    size = 0
    while True:
        try:
            block = stream.read(READ_PIECE)
        except (ClientDisconnected, OSError):
            if pending:
                yield b"".join(pending)
            raise UploadAborted(_("The request broke off before its end.")) from None
        if not block:
            break
        pending.append(block)
        size += len(block)
        if size >= READ_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


@blp.route("/<string:upload_id>", methods=["PATCH"])
@require(Role.EMPLOYEE)
@blp.doc(
    parameters=[
        *TUS_REQUEST_HEADERS,
        {"name": "Upload-Offset", "in": "header", "required": True, "schema": {"type": "integer"}},
        {"name": "Upload-Length", "in": "header", "schema": {"type": "integer"}},
        {"name": "Upload-Checksum", "in": "header", "schema": {"type": "string"}},
    ],
    requestBody={
        "required": True,
        "content": {PATCH_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    },
    responses={204: {"description": "Stored; Upload-Offset is the new offset"}},
)
@blp.alt_response(404, description="No such upload of yours")
@blp.alt_response(409, description="Upload-Offset is not the upload's offset, or it is busy")
@blp.alt_response(410, description="The upload has become a recording")
@blp.alt_response(413, description="Past the declared length or the upload limit")
@blp.alt_response(415, description="Not application/offset+octet-stream, or not media")
@blp.alt_response(460, description="Upload-Checksum does not match")
def append(upload_id: str):
    """Send bytes from ``Upload-Offset`` on (tus core). The answer's ``Upload-Offset`` counts
    only what is stored: whole 16 KiB chunks, and the rest once the last byte has come."""
    _require_tus()
    if request.mimetype != PATCH_TYPE:
        raise UnsupportedMedia(
            _("Send the bytes of a PATCH as %(type)s.", type=PATCH_TYPE),
            code="expected_offset_octet_stream",
        )
    offset = _int_header("Upload-Offset")
    if offset is None:
        raise InvalidRequest(
            _("Send Upload-Offset: where these bytes start."), code="invalid_header"
        )
    checksum = uploads.parse_checksum(request.headers.get("Upload-Checksum"))
    rt, user = runtime(), current_user()
    db_session().rollback()  # hold no transaction while the body streams in
    upload = uploads.append(
        rt,
        user,
        upload_id,
        offset=offset,
        body=_body(request.stream),
        body_length=request.content_length,
        upload_length=_int_header("Upload-Length"),
        checksum=checksum,
    )
    return _tus_state(Response(status=204), upload)


@blp.route("/<string:upload_id>", methods=["DELETE"])
@require(Role.EMPLOYEE)
@blp.doc(parameters=TUS_REQUEST_HEADERS, responses={204: {"description": "Deleted"}})
@blp.alt_response(404, description="No such upload of yours")
@blp.alt_response(409, description="A request is writing to it right now")
def terminate(upload_id: str):
    """Cancel an upload (tus termination): its pieces are deleted and its key shredded."""
    _require_tus()
    rt, user = runtime(), current_user()
    db_session().rollback()
    uploads.terminate(rt, user, upload_id)
    return Response(status=204)


blueprints = [blp]
