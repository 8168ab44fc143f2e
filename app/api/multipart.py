"""Reading a multipart upload off the request, without ever spooling a file to disk.

Werkzeug's form parser would write large files to plaintext temporary files. Here the body is
read with werkzeug's sans-IO ``MultipartDecoder``, one event at a time, and each file part is
handed to the domain's :func:`app.services.ingest.store_part` as an iterator of blocks: the
only plaintext is the block in hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from app.services import ingest
from app.services.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from app.services.i18n import _
from app.services.ingest import IngestResult, UploadAborted
from app.storage import ObjectStore

READ_SIZE = 1 << 20
# Framing (boundaries, part headers, text fields) on top of the media itself.
FRAMING_ALLOWANCE = 64 * 1024


class _BodyReader:
    """Drives the multipart decoder from the request stream, one event at a time."""

    def __init__(self, stream: BinaryIO, boundary: bytes, limit: int) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary, max_parts=16)
        self._limit = limit
        self.received = 0

    def next_event(self):
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError:
                raise InvalidRequest(
                    _("The multipart body is malformed or was cut short."), code="malformed_upload"
                ) from None
            if not isinstance(event, NeedData):
                return event
            self._decoder.receive_data(self._read_block())

    def _read_block(self) -> bytes | None:
        try:
            block = self._stream.read(READ_SIZE)
        except (ClientDisconnected, OSError):
            raise UploadAborted(_("The upload broke off before it was complete.")) from None
        if not block:
            return None
        self.received += len(block)
        if self.received > self._limit:
            raise _too_large(self._limit - FRAMING_ALLOWANCE)
        return block

    def part_data(self) -> Iterator[bytes]:
        """The current part's bytes, until its closing boundary."""
        while True:
            event = self.next_event()
            if not isinstance(event, Data):
                raise InvalidRequest(_("The multipart body is malformed."), code="malformed_upload")
            if event.data:
                yield event.data
            if not event.more_data:
                return


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        _("The upload is larger than the limit of %(limit)s MiB.", limit=max_bytes // (1 << 20)),
        code="upload_too_large",
    )


def _boundary(content_type: str | None) -> bytes:
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise UnsupportedMedia(
            _("Send multipart/form-data with a 'screen' and/or an 'audio' file."),
            code="expected_multipart",
        )
    if len(boundary) > 200:
        raise InvalidRequest(_("The multipart boundary is too long."), code="malformed_upload")
    return boundary.encode("latin-1")


def ingest_upload(
    stream: BinaryIO,
    content_type: str | None,
    content_length: int | None,
    *,
    store: ObjectStore,
    max_bytes: int,
    on_bytes: Callable[[int], None] | None = None,
) -> IngestResult:
    """Stream a multipart upload into the store, encrypted under a fresh recording key."""
    boundary = _boundary(content_type)
    limit = max_bytes + FRAMING_ALLOWANCE
    if content_length is not None and content_length > limit:
        raise _too_large(max_bytes)
    result = ingest.new_upload()
    body = _BodyReader(stream, boundary, limit)
    try:
        _read_parts(body, result, store, on_bytes)
    except BaseException:
        ingest.discard(store, result)
        raise
    if not result.parts:
        raise InvalidRequest(
            _("Attach at least one file: 'screen' (video) or 'audio'."), code="no_media"
        )
    return result


def _read_parts(
    body: _BodyReader,
    result: IngestResult,
    store: ObjectStore,
    on_bytes: Callable[[int], None] | None,
) -> None:
    while not isinstance(event := body.next_event(), Epilogue):
        if isinstance(event, File):
            if event.name not in ingest.FILE_FIELDS:
                raise InvalidRequest(
                    _(
                        "Unexpected file field %(name)r; send 'screen' and/or 'audio'.",
                        name=event.name,
                    ),
                    code="unknown_field",
                )
            ingest.store_part(event.name, body.part_data(), result, store, on_bytes)
        elif isinstance(event, Field):
            ingest.set_field(result, event.name, _field_value(body))


def _field_value(body: _BodyReader) -> bytes:
    value = b""
    for chunk in body.part_data():
        value += chunk
        if len(value) > ingest.MAX_FIELD_BYTES:
            break  # set_field names the field and refuses it
    return value
