"""Demo data for a newcomer's first run."""

from __future__ import annotations


def ensure_sample_recording(rt, owner_login: str) -> None:
    """Filled in once the media pipeline exists."""
    return None
