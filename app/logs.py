"""Logging for every entry point: one handler on the root logger, quiet library loggers."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_consent_replay", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
        handler._consent_replay = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Library loggers that would otherwise print request URLs with signed queries at DEBUG.
    for noisy in ("urllib3", "botocore", "minio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
