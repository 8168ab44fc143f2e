"""URLs the web edge hands out (the domain knows no URLs)."""

from __future__ import annotations

import uuid
from urllib.parse import unquote, urlsplit

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


_MAX_NEXT = 2000


def _suspicious(text: str) -> bool:
    # Printable ASCII only: no control or whitespace characters (a browser drops a tab or a
    # newline, so "/\t/evil" becomes "//evil"), no backslash (read as "/"), nothing non-ASCII
    # (fullwidth solidi and other look-alikes that some layer may fold into "/").
    return any(not ("!" <= ch <= "~") or ch == "\\" for ch in text)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (``/…``, not ``//…``), else None.

    Checked as written and after percent-decoding (repeatedly, so "%2509" counts as a tab
    too): no scheme, no host, no backslash, no control, whitespace or non-ASCII character.
    An open redirect would make the sign-in page a phishing aid (finding 6 of issue 12).
    """
    if not target or len(target) > _MAX_NEXT:
        return None
    layers = [target]
    for _ in range(4):
        decoded = unquote(layers[-1])
        if decoded == layers[-1]:
            break
        layers.append(decoded)
    else:
        return None  # encoded again and again: nobody's real path
    for text in layers:
        if _suspicious(text) or not text.startswith("/") or text.startswith("//"):
            return None
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return None
    return target
