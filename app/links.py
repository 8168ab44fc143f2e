"""URLs the web edge hands out (the domain knows no URLs)."""

from __future__ import annotations

import uuid

from flask import url_for

MEDIA_KINDS = (
    ("video", "video"),
    ("poster", "poster.jpg"),
    ("thumbnails", "thumbnails.jpg"),
    ("waveform", "waveform.json"),
)


def share_media_links(share_id: uuid.UUID) -> dict[str, str]:
    """Where a playable share's media are served (the API's ``media`` and the player's)."""
    return {
        name: url_for("media.media", share_id=str(share_id), kind=kind)
        for name, kind in MEDIA_KINDS
    }
