"""Redactions an employee chooses before sharing (SPEC §12): validation and timeline mapping.

Pure functions: no Flask, no database, no ffmpeg. The share API calls
:func:`validate_redactions` on the raw ``redactions`` JSON value and stores what it returns (the
redactions *as applied*, for the share's answer and the receipt); the share job maps them into
the rendition's timeline with :func:`to_output_timeline` (``worker.media.plan_rendition`` does
that itself when given them).

A normalised item is one of::

    {"kind": "cover" | "blur", "box": {"x", "y", "w", "h"}, "start_s", "end_s"}
    {"kind": "mute", "start_s", "end_s", "channel": "all" | "agent" | "customer"}

with every field present (an omitted span is filled in as the whole recording, an omitted
channel as ``all``) and times in the recording's own timeline, before trim. A cover or blur item
may also carry ``reason`` (one of :data:`REASONS`), as a suggestion the employee accepted does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from app.services.i18n import N_, _, translate

MAX_REDACTIONS = 200
BOX_KINDS = ("cover", "blur")
KINDS = (*BOX_KINDS, "mute")
CHANNELS = ("all", "agent", "customer")
# What a suggestion names as its cause (SPEC §12); the matched text itself is never kept.
REASONS = ("national_id", "card_number", "account_number", "email", "phone")
# A player's idea of the length can differ from ffprobe's by a frame or an audio packet: an end
# this little past the end is taken as the end (and stored as it).
END_TOLERANCE_S = 0.25
# Box fractions that a client computed from pixels may overshoot 1 by a rounding error.
_FRACTION_EPSILON = 1e-9

_BOX_FIELDS = ("x", "y", "w", "h")
_COMMON_FIELDS = {"kind", "start_s", "end_s"}
_FIELDS = {
    "cover": _COMMON_FIELDS | {"box", "reason"},
    "blur": _COMMON_FIELDS | {"box", "reason"},
    "mute": _COMMON_FIELDS | {"channel"},
}


class RedactionInvalid(ValueError):
    """One redaction (or the list) is not acceptable.

    ``index`` is the item's position in the list (None: the list itself), ``field`` the field's
    path inside the item (``"box.w"``; None: the item or list as a whole). The message names
    both, in words an employee's client can show.
    """

    def __init__(self, index: int | None, field: str | None, problem: str) -> None:
        self.index = index
        self.field = field
        self.problem = problem
        where = "redactions" if index is None else f"redactions[{index}]"
        if field:
            where += f".{field}"
        super().__init__(f"{where}: {problem}")

    @property
    def details(self) -> dict[str, Any]:
        """For an error body's ``details``: ``{"index": ..., "field": ...}``."""
        return {"index": self.index, "field": self.field}


def validate_redactions(
    value: object,
    *,
    duration_s: float,
    has_video: bool,
    audio_channels: int,
    agent_channel: str | None = None,
) -> list[dict[str, Any]]:
    """Check the raw ``redactions`` JSON value against the recording; return it normalised.

    ``duration_s``, ``has_video`` and ``audio_channels`` are the recording's facts (its
    ``Recording`` row); ``agent_channel`` (``left``/``right``/``mono``), when given, refuses
    agent/customer mutes on a recording whose speakers share one channel. ``None`` (the field
    left out) means no redactions. Raises :class:`RedactionInvalid` on the first bad item.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise RedactionInvalid(
            None, None, _("must be a list, not %(type)s", type=_json_type(value))
        )
    if len(value) > MAX_REDACTIONS:
        raise RedactionInvalid(
            None,
            None,
            _(
                "at most %(most)s redactions are allowed; %(sent)s were sent",
                most=MAX_REDACTIONS,
                sent=len(value),
            ),
        )
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"the recording's duration must be a positive number, not {duration_s!r}")
    return [
        _item(
            index,
            item,
            duration_s=float(duration_s),
            has_video=has_video,
            audio_channels=audio_channels or 0,
            agent_channel=agent_channel,
        )
        for index, item in enumerate(value)
    ]


def _item(
    index: int,
    item: object,
    *,
    duration_s: float,
    has_video: bool,
    audio_channels: int,
    agent_channel: str | None,
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise RedactionInvalid(
            index, None, _("must be an object, not %(type)s", type=_json_type(item))
        )
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise RedactionInvalid(index, "kind", _("must be one of %(kinds)s", kinds=", ".join(KINDS)))
    for key in item:
        if key not in _FIELDS[kind]:
            allowed = ", ".join(sorted(_FIELDS[kind]))
            raise RedactionInvalid(
                index,
                str(key),
                _(
                    "is not a field of a %(kind)s redaction (its fields: %(allowed)s)",
                    kind=kind,
                    allowed=allowed,
                ),
            )
    if kind in BOX_KINDS and not has_video:
        raise RedactionInvalid(
            index,
            "kind",
            _("the recording has no video, so there is no picture to cover or blur"),
        )
    if kind == "mute" and audio_channels < 1:
        raise RedactionInvalid(
            index, "kind", _("the recording has no audio, so there is nothing to mute")
        )

    start_s, end_s = _span(index, item, duration_s)
    out: dict[str, Any] = {"kind": kind}
    if kind in BOX_KINDS:
        out["box"] = _box(index, item.get("box"))
    out["start_s"], out["end_s"] = start_s, end_s
    if kind == "mute":
        out["channel"] = _channel(index, item, audio_channels, agent_channel)
    if "reason" in item:
        reason = item["reason"]
        if not isinstance(reason, str) or reason not in REASONS:
            raise RedactionInvalid(
                index, "reason", _("must be one of %(reasons)s", reasons=", ".join(REASONS))
            )
        out["reason"] = reason
    return out


def _box(index: int, box: object) -> dict[str, float]:
    if box is None:
        raise RedactionInvalid(
            index, "box", _("is required: {x, y, w, h} in fractions of the frame")
        )
    if not isinstance(box, dict):
        raise RedactionInvalid(
            index, "box", _("must be an object {x, y, w, h}, not %(type)s", type=_json_type(box))
        )
    for key in box:
        if key not in _BOX_FIELDS:
            raise RedactionInvalid(index, f"box.{key}", _("is not a box field (x, y, w, h)"))
    values = {}
    for key in _BOX_FIELDS:
        if key not in box:
            raise RedactionInvalid(index, f"box.{key}", _("is required"))
        number = _number(box[key])
        if number is None or not 0 <= number <= 1:
            raise RedactionInvalid(
                index, f"box.{key}", _("must be a number from 0 to 1 (a fraction of the frame)")
            )
        values[key] = number
    for size, origin, word in (
        ("w", "x", N_("the box must have a width above 0")),
        ("h", "y", N_("the box must have a height above 0")),
    ):
        if values[size] <= 0:
            raise RedactionInvalid(index, f"box.{size}", translate(word))
        if values[origin] + values[size] > 1 + _FRACTION_EPSILON:
            raise RedactionInvalid(
                index,
                f"box.{size}",
                _(
                    "the box reaches outside the frame (%(origin)s + %(size)s is above 1)",
                    origin=origin,
                    size=size,
                ),
            )
    return values


def _span(index: int, item: dict[str, Any], duration_s: float) -> tuple[float, float]:
    times = {}
    for key, default in (("start_s", 0.0), ("end_s", duration_s)):
        if key not in item or item[key] is None:
            times[key] = default
            continue
        number = _number(item[key])
        if number is None:
            raise RedactionInvalid(index, key, _("must be a number of seconds"))
        if number < 0:
            raise RedactionInvalid(index, key, _("must not be negative"))
        if number > duration_s + END_TOLERANCE_S:
            raise RedactionInvalid(
                index,
                key,
                _(
                    "is after the end of the recording (%(end)s s; times are in the "
                    "recording's own timeline, before trim)",
                    end=f"{duration_s:.3f}",
                ),
            )
        times[key] = min(number, duration_s)
    start_s, end_s = times["start_s"], times["end_s"]
    if start_s >= duration_s:
        raise RedactionInvalid(
            index,
            "start_s",
            _("is at or after the end of the recording (%(end)s s)", end=f"{duration_s:.3f}"),
        )
    if end_s <= start_s:
        raise RedactionInvalid(index, "end_s", _("must be after start_s"))
    return start_s, end_s


def _channel(
    index: int, item: dict[str, Any], audio_channels: int, agent_channel: str | None
) -> str:
    channel = item.get("channel", "all")
    if channel is None:
        channel = "all"
    if not isinstance(channel, str) or channel not in CHANNELS:
        raise RedactionInvalid(
            index, "channel", _("must be one of %(channels)s", channels=", ".join(CHANNELS))
        )
    if channel != "all" and (audio_channels < 2 or agent_channel == "mono"):
        raise RedactionInvalid(
            index,
            "channel",
            _(
                "the agent and the customer share one audio channel in this recording, so "
                "only 'all' can be muted"
            ),
        )
    return channel


def _number(value: object) -> float | None:
    # JSON true/false arrive as bool, which Python counts as int: not a number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def to_output_timeline(
    redactions: Iterable[Mapping[str, Any]],
    trim_start_s: float | None,
    trim_end_s: float | None,
) -> list[dict[str, Any]]:
    """Map validated redactions from the recording's timeline into the trimmed rendition's.

    A span is clipped to the trim and shifted so that the trim's start is 0; an item wholly
    outside the trim is dropped (it hides nothing that is shared). Items are copied, with their
    other fields kept. ``None`` trims mean the recording's start and end.
    """
    start = max(trim_start_s or 0.0, 0.0)
    end = math.inf if trim_end_s is None else trim_end_s
    mapped = []
    for item in redactions:
        item_start = max(float(item["start_s"]), start)
        item_end = min(float(item["end_s"]), end)
        if item_end <= item_start:
            continue
        copy = dict(item)
        if "box" in copy:
            copy["box"] = dict(copy["box"])
        copy["start_s"] = item_start - start
        copy["end_s"] = item_end - start
        mapped.append(copy)
    return mapped
