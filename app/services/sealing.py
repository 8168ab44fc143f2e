"""Small values (titles, purposes, notes, comments, receipts, media hashes) sealed under their
recording's or share's key.

They use the same object format as media, with an object id naming the field, so a sealed
title cannot be passed off as a comment, nor one share's comment as another's. Destroying the
key (shredding) makes every one of them unreadable; the lifecycle also drops the columns.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import crypto


def seal_text(dek: bytes, key_id: uuid.UUID, field: str, owner: uuid.UUID, text: str) -> bytes:
    return b"".join(
        crypto.seal(dek, [text.encode()], key_id=str(key_id), object_id=f"{field}:{owner}")
    )


def open_text(
    dek: bytes, key_id: uuid.UUID, field: str, owner: uuid.UUID, sealed: bytes | None
) -> str | None:
    if sealed is None:
        return None
    plaintext = b"".join(
        crypto.unseal(dek, [sealed], key_id=str(key_id), object_id=f"{field}:{owner}")
    )
    return plaintext.decode()


def seal_json(dek: bytes, key_id: uuid.UUID, field: str, owner: uuid.UUID, value: Any) -> bytes:
    return seal_text(dek, key_id, field, owner, json.dumps(value, sort_keys=True))


def open_json(
    dek: bytes, key_id: uuid.UUID, field: str, owner: uuid.UUID, sealed: bytes | None
) -> Any:
    text = open_text(dek, key_id, field, owner, sealed)
    return None if text is None else json.loads(text)
