"""How the pages write a time: one rule for the server and for ``static/js/kit.js``.

A time is whole seconds, counted down (the floor), after rounding to the millisecond so that
float noise (6.9999999) does not lose a second: 9.6 s is ``0:09``, 19.6 s is ``0:19``. The same
rule serves a position (a comment at 9.6 s) and a length (a 19.6 s recording), so the header,
the player and every comment list agree. ``clock()`` in kit.js is the same function.
"""

from __future__ import annotations

import math

from app.services.i18n import N_, _, ngettext, translate

UNKNOWN = "–"


def clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; an en dash when unknown (None, NaN, infinite)."""
    if seconds is None or not math.isfinite(seconds):
        return UNKNOWN
    total = max(0, round(seconds * 1000)) // 1000
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_CHANNEL_WORDS = {
    "agent": N_("your voice"),
    "customer": N_("the customer's voice"),
}


def _hidden(kind: str, count: int) -> str:
    if kind == "cover":
        return ngettext("%(num)s covered area", "%(num)s covered areas", count)
    if kind == "blur":
        return ngettext("%(num)s blurred area", "%(num)s blurred areas", count)
    return ngettext("%(num)s muted span", "%(num)s muted spans", count)


def redactions_text(redactions: list[dict] | None) -> str:
    """What a share hides, in words: "2 covered areas, 1 muted span (the customer's voice)"."""
    if not redactions:
        return _("Nothing")
    counts: dict[tuple[str, str], int] = {}
    for item in redactions:
        channel = item.get("channel", "all") if item["kind"] == "mute" else "all"
        counts[(item["kind"], channel)] = counts.get((item["kind"], channel), 0) + 1
    parts = []
    for (kind, channel), count in counts.items():
        words = _hidden(kind, count)
        if channel in _CHANNEL_WORDS:
            words += f" ({translate(_CHANNEL_WORDS[channel])})"
        parts.append(words)
    return ", ".join(parts)
