"""Export my data: one ZIP with my receipts, certificates, access logs, comments and media.

Open formats only (JSON, JWT text, the media as uploaded, MP4 renditions). The archive is
streamed: media is decrypted block by block straight into the ZIP stream, never to disk.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, cast

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from app.models import MediaObject, Recording, Share, User
from app.runtime import Runtime
from app.services import audit, feedback, keys, recordings, shares, viewing

EXTENSIONS = {
    "matroska": "webm",
    "mp4": "mp4",
    "wav": "wav",
    "ogg": "ogg",
    "mp3": "mp3",
    "aac": "aac",
}
README = """\
Your consent-replay data
========================

me.json                          your account
recordings/<id>/recording.json   each recording: title, length, checksums, deletion certificate
recordings/<id>/<part>.<ext>     the media you uploaded, as you uploaded it (if not deleted)
shares/<id>/share.json           each share: coaches, purpose, dates, status
shares/<id>/receipt.jwt          the signed consent receipt, while the share lasts (verify
                                 with jwks.json; it is shredded with the share)
shares/<id>/certificate.jwt      the signed deletion certificate, when the share ended
shares/<id>/access-log.json      every access: who watched, when, for how long
shares/<id>/comments.json        the coaching comments (while the share is active)
shares/<id>/rendition.mp4        what the coach sees (while the share is active)
feedback/<id>.json               coaching feedback you received: the form, ratings, comments,
                                 linked moments, strengths, next step, summary, your reply
jwks.json                        the public keys that verify receipts and certificates

Verify a receipt or certificate with: consent-replay receipts verify <token> --jwks jwks.json
"""


class _Sink:
    """A write-only, non-seekable file for ZipFile; the generator drains it as it fills."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _json(value: Any) -> bytes:
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        if isinstance(obj, uuid.UUID):
            return str(obj)
        raise TypeError(type(obj))

    return json.dumps(value, indent=2, default=default, ensure_ascii=False).encode()


def _claims(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    # Unverified view for reading; the .jwt file next to it is what proves anything.
    return jwt.decode(token, options={"verify_signature": False})


def export_archive(rt: Runtime, owner_id: uuid.UUID) -> Iterator[bytes]:
    viewing.flush(rt.db, rt.views)  # the access logs include what this process just served
    sink = _Sink()
    with (
        zipfile.ZipFile(
            cast(IO[bytes], sink), mode="w", compression=zipfile.ZIP_DEFLATED
        ) as archive,
        rt.db.session() as session,
    ):
        owner = session.get_one(User, owner_id)
        archive.writestr("README.txt", README)
        archive.writestr(
            "me.json",
            _json(
                {"id": owner.id, "name": owner.name, "login": owner.login, "role": owner.role.value}
            ),
        )
        archive.writestr("jwks.json", _json(rt.keyring.jwks()))
        yield sink.drain()

        for recording in recordings.list_own(session, owner, include_deleted=True):
            base = f"recordings/{recording.id}"
            archive.writestr(
                f"{base}/recording.json",
                _json(
                    {
                        **recordings.present(session, rt, recording),
                        "certificate_claims": _claims(recording.certificate),
                    }
                ),
            )
            yield sink.drain()
            yield from _media(rt, session, archive, sink, recording)

        for share in session.scalars(select(Share).where(Share.owner_id == owner.id)):
            base = f"shares/{share.id}"
            archive.writestr(f"{base}/share.json", _json(shares.present(session, rt, share, owner)))
            receipt = shares.receipt_of(session, rt, share)
            if receipt:  # kept while the share lives; shredded with it
                archive.writestr(f"{base}/receipt.jwt", receipt)
                archive.writestr(f"{base}/receipt.json", _json(_claims(receipt)))
            if share.certificate:
                archive.writestr(f"{base}/certificate.jwt", share.certificate)
                archive.writestr(f"{base}/certificate.json", _json(_claims(share.certificate)))
            archive.writestr(f"{base}/access-log.json", _json(shares.access_log(session, share)))
            if share.status.active:
                archive.writestr(
                    f"{base}/comments.json", _json(shares.list_comments(session, rt, share))
                )
            yield sink.drain()
            if shares.is_viewable(share):
                yield from _rendition(rt, session, archive, sink, share)
        for row in feedback.list_for(session, owner):
            # A folder of the archive (not of the object store, which holds no feedback).
            folder = "feedback"
            archive.writestr(f"{folder}/{row.id}.json", _json(feedback.present(session, rt, row)))
        audit.append(session, "data.exported", actor_id=owner.id)
    yield sink.drain()


def _copy(
    rt: Runtime,
    archive: zipfile.ZipFile,
    sink: _Sink,
    path: str,
    dek: bytes,
    key_id: uuid.UUID,
    obj: MediaObject,
) -> Iterator[bytes]:
    with archive.open(path, mode="w", force_zip64=True) as target:
        for block in crypto.unseal(
            dek, rt.store.iter_object(obj.name), key_id=str(key_id), object_id=str(obj.id)
        ):
            target.write(block)
            yield sink.drain()
    yield sink.drain()


def _media(
    rt: Runtime, session: Session, archive: zipfile.ZipFile, sink: _Sink, recording: Recording
) -> Iterator[bytes]:
    if recording.title_sealed is None and recording.status.value == "deleted":
        return
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, recording.key_id)
    except keys.KeyDestroyed:
        return
    for obj in recording.objects:
        ext = EXTENSIONS.get(obj.container or "", "bin")
        key_id = obj.key_id or recording.key_id
        try:
            obj_dek = dek if key_id == recording.key_id else _load(rt, session, key_id)
        except keys.KeyDestroyed:
            continue
        yield from _copy(
            rt,
            archive,
            sink,
            f"recordings/{recording.id}/{obj.kind}.{ext}",
            obj_dek,
            key_id,
            obj,
        )


def _load(rt: Runtime, session: Session, key_id: uuid.UUID) -> bytes:
    return keys.load_data_key(session, rt.kek, rt.key_cache, key_id)


def _rendition(
    rt: Runtime, session: Session, archive: zipfile.ZipFile, sink: _Sink, share: Share
) -> Iterator[bytes]:
    obj = session.scalar(
        select(MediaObject).where(MediaObject.share_id == share.id, MediaObject.kind == "rendition")
    )
    if obj is None:
        return
    try:
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, share.key_id)
    except keys.KeyDestroyed:
        return
    yield from _copy(rt, archive, sink, f"shares/{share.id}/rendition.mp4", dek, share.key_id, obj)
