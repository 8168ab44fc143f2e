"""``/media/shares/{id}/…``: decrypted media, one HTTP Range per request.

Every request is authorised afresh (share ready and not ended, caller its owner or a grantee).
Only the chunks the range covers are fetched from the store and decrypted, a batch at a time,
and before each batch after the first the share's state is read again from the database: once
a revoke has committed, no further batch is decrypted or sent, in any web process, whatever
any process has cached. A chunk that fails authentication ends the response; it is never
served as data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import select

import crypto
from app.auth import current_user, db_session, require
from app.errors import AppError, NotFound
from app.metrics import MEDIA_BYTES
from app.models import MediaObject, Share, ShareStatus, utcnow
from app.runtime import Runtime, runtime
from app.services import shares, views

log = logging.getLogger(__name__)

blp = Blueprint(
    "media",
    __name__,
    url_prefix="/media",
    description="Decrypted media of a share, streamed with HTTP Range",
)

FIRST_BATCH_CHUNKS = 16  # 256 KiB: a quick first byte for the player
BATCH_CHUNKS = 128  # 2 MiB per fetch, decrypt and state check afterwards
KINDS = {
    "video": "rendition",
    "poster.jpg": "poster",
    "thumbnails.jpg": "thumbnails",
    "waveform.json": "waveform",
}


class IntegrityFailure(AppError):
    status = 502
    code = "integrity_check_failed"


class StoreRangeSource:
    """crypto.RangeSource over an object in the store (a ranged GET per read)."""

    def __init__(self, store, name: str, size: int) -> None:
        self._store = store
        self._name = name
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        return self._store.read_range(self._name, offset, length)


def _still_viewable(rt: Runtime, share_id: uuid.UUID) -> bool:
    with rt.db.session() as session:
        row = session.execute(
            select(Share.status, Share.expires_at).where(Share.id == share_id)
        ).first()
    return row is not None and row.status is ShareStatus.READY and row.expires_at > utcnow()


def _range_for(size: int, etag: str) -> tuple[int, int, bool]:
    """(start, stop, partial) from the Range and If-Range headers, via werkzeug's parsers."""
    byte_range = request.range
    if byte_range is None:
        return 0, size, False
    if_range = request.if_range
    # A date or a different entity tag in If-Range means "send the whole thing" (RFC 9110
    # §13.1.5): our objects carry strong entity tags only.
    if if_range.date is not None or (if_range.etag and if_range.etag != etag.strip('"')):
        return 0, size, False
    if len(byte_range.ranges) > 1:
        return 0, size, False
    bounds = byte_range.range_for_length(size)
    if bounds is None:
        raise AppError(
            "The requested range is outside the media.",
            code="range_not_satisfiable",
            status=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    return bounds[0], bounds[1], True


@blp.route("/shares/<string:share_id>/<string:kind>")
@require()
@blp.doc(
    parameters=[
        {
            "in": "header",
            "name": "Range",
            "schema": {"type": "string"},
            "required": False,
            "example": "bytes=0-65535",
        }
    ],
    responses={
        200: {"description": "The whole decrypted object"},
        206: {"description": "The requested byte range"},
        404: {"description": "No such share for you"},
        410: {"description": "Consent ended: revoked or expired"},
        416: {"description": "Range not satisfiable"},
    },
)
def media(share_id: str, kind: str):
    """The decrypted rendition (``video``), ``poster.jpg``, ``thumbnails.jpg`` or
    ``waveform.json`` of a share; the video honours one HTTP Range per request."""
    if kind not in KINDS:
        raise NotFound("media")
    rt, session, user = runtime(), db_session(), current_user()
    share = shares.get_for_viewer(session, user, share_id)
    shares.require_viewable(share)
    obj = session.scalar(
        select(MediaObject).where(MediaObject.share_id == share.id, MediaObject.kind == KINDS[kind])
    )
    if obj is None:
        raise NotFound("media")
    dek = shares.share_dek(session, rt, share)
    try:
        reader = crypto.RandomAccessReader(
            dek,
            StoreRangeSource(rt.store, obj.name, obj.stored_size),
            key_id=str(share.key_id),
            object_id=str(obj.id),
        )
    except crypto.DecryptionError:
        log.error("integrity check failed on the header of %s", obj.id)
        raise IntegrityFailure("The stored media failed its integrity check.") from None
    size = reader.size
    etag = f'"{obj.id}"'
    if request.if_none_match and request.if_none_match.contains(etag.strip('"')):
        return Response(status=304, headers={"ETag": etag})
    start, stop, partial = _range_for(size, etag)

    view = views.for_media_request(session, share, user, request.args.get("view"))
    views.record_range(session, view, start, stop)
    session.commit()
    view_id, sid = view.id, share.id

    # The first batch is read before the headers go out, so a damaged chunk there gives a
    # clean error response instead of a truncated 206.
    first_stop = min(stop, start + FIRST_BATCH_CHUNKS * 16384)
    try:
        first = reader.read(start, first_stop - start) if stop > start else b""
    except crypto.DecryptionError:
        log.error("integrity check failed in %s at %d", obj.id, start)
        raise IntegrityFailure("The stored media failed its integrity check.") from None
    batches = reader.iter_range(first_stop, stop, batch_chunks=BATCH_CHUNKS)

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            if first:
                sent += len(first)
                MEDIA_BYTES.inc(len(first))
                yield first
            for batch in _checked(rt, sid, batches):
                sent += len(batch)
                MEDIA_BYTES.inc(len(batch))
                yield batch
        except crypto.DecryptionError:
            log.error("integrity check failed in %s; response cut short", obj.id)
        finally:
            try:
                views.add_bytes(rt.db, view_id, sent)
            except Exception:
                log.warning("could not record bytes served", exc_info=True)

    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "no-store, private",
        "Content-Disposition": "inline",
        "Content-Length": str(stop - start),
        "X-Content-Type-Options": "nosniff",
    }
    if partial:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return Response(
        body(),
        status=206 if partial else 200,
        headers=headers,
        mimetype=obj.content_type,
        direct_passthrough=True,
    )


def _checked(rt: Runtime, share_id: uuid.UUID, batches: Iterator[bytes]) -> Iterator[bytes]:
    """Re-read the share's state before each batch; stop the moment consent has ended."""
    while True:
        if not _still_viewable(rt, share_id):
            log.info("share %s ended mid-stream; stopping", share_id)
            return
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch


blueprints = [blp]
