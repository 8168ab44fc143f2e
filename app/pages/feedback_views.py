"""What the feedback pages show beyond the API's answer: rating labels, linked moments as
links into the player, and the progress chart drawn on the server as a small SVG (no script,
no chart library; a table beside it says the same for screen readers)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from app.pages.formatting import clock
from app.services import forms

CHART_WIDTH, CHART_HEIGHT = 320, 140
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 92, 14, 12, 22


def label_of(scale: Any, value: Any) -> str:
    labels = forms.labels_of(scale)
    if scale == forms.YES_NO:
        return labels[1] if value else labels[0]
    index = int(value) - int(scale["min"])
    return labels[index] if 0 <= index < len(labels) else str(value)


def moment_link(share_id: Any, at_s: float) -> str:
    return f"{url_for('coach_pages.playback', share_id=share_id)}#t={at_s:g}"


def decorate(item: dict[str, Any]) -> dict[str, Any]:
    """Each rating with its criterion, the label of its value, and its moments."""
    criteria = {c["id"]: c for c in item["form"]["criteria"]}
    rows = []
    for rating in item["ratings"]:
        criterion = criteria[rating["criterion_id"]]
        rows.append(
            {
                **rating,
                "title": criterion["title"],
                "description": criterion.get("description", ""),
                "label": label_of(criterion["scale"], rating["value"]),
                "labels": forms.labels_of(criterion["scale"]),
                "moments": [
                    {
                        "at_s": at,
                        "clock": clock(at),
                        "href": moment_link(item["share_id"], at)
                        if item["share_playable"]
                        else None,
                    }
                    for at in rating.get("at_s", [])
                ],
            }
        )
    return {**item, "rows": rows}


def _level(scale: Any, value: Any) -> tuple[float, int, int]:
    if scale == forms.YES_NO:
        return (1.0 if value else 0.0), 0, 1
    return float(value), int(scale["min"]), int(scale["max"])


def chart(series: dict[str, Any]) -> dict[str, Any]:
    """Coordinates of one criterion's line: oldest left, newest right; the scale's first and
    last labels on the left edge."""
    points = series["points"]
    inner_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    low, high = _level(series["scale"], points[0]["value"] if points else 0)[1:]
    step = inner_w / max(1, len(points) - 1)
    dots = []
    for index, point in enumerate(points):
        level = _level(series["scale"], point["value"])[0]
        x = PAD_LEFT + (index * step if len(points) > 1 else inner_w / 2)
        y = PAD_TOP + inner_h * (1 - (level - low) / (high - low))
        dots.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "label": label_of(series["scale"], point["value"]),
                "at": point["at"],
            }
        )
    labels = forms.labels_of(series["scale"])
    # A guide line for each step of the scale, with its label (a long scale: every other one).
    every = 1 if len(labels) <= 6 else 2
    levels = [
        {"y": round(PAD_TOP + inner_h * (1 - index / (len(labels) - 1)), 1), "label": label}
        for index, label in enumerate(labels)
        if index % every == 0 or index == len(labels) - 1
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "dots": dots,
        "line": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "left": PAD_LEFT,
        "right": CHART_WIDTH - PAD_RIGHT,
        "levels": levels,
    }
