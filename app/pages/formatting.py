"""How the pages write a time: one rule for the server and for ``static/js/kit.js``.

A time is whole seconds, counted down (the floor), after rounding to the millisecond so that
float noise (6.9999999) does not lose a second: 9.6 s is ``0:09``, 19.6 s is ``0:19``. The same
rule serves a position (a comment at 9.6 s) and a length (a 19.6 s recording), so the header,
the player and every comment list agree. ``clock()`` in kit.js is the same function.
"""

from __future__ import annotations

import math

UNKNOWN = "–"


def clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; an en dash when unknown (None, NaN, infinite)."""
    if seconds is None or not math.isfinite(seconds):
        return UNKNOWN
    total = max(0, round(seconds * 1000)) // 1000
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_HIDDEN_WORDS = {"cover": "covered area", "blur": "blurred area", "mute": "muted span"}
_CHANNEL_WORDS = {"all": "", "agent": " (your voice)", "customer": " (the customer's voice)"}


def redactions_text(redactions: list[dict] | None) -> str:
    """What a share hides, in words: "2 covered areas, 1 muted span (the customer's voice)"."""
    if not redactions:
        return "Nothing"
    counts: dict[str, int] = {}
    for item in redactions:
        label = _HIDDEN_WORDS[item["kind"]]
        if item["kind"] == "mute":
            label += _CHANNEL_WORDS[item.get("channel", "all")]
        counts[label] = counts.get(label, 0) + 1
    parts = []
    for label, count in counts.items():
        noun, _, rest = label.partition(" (")
        noun = noun if count == 1 else f"{noun}s"
        parts.append(f"{count} {noun}" + (f" ({rest}" if rest else ""))
    return ", ".join(parts)
