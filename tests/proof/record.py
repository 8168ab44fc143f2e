"""Figures measured by the proof runs, collected for docs/RELIABILITY.md.

Each proof test calls :func:`record` with the figure it measured, the target it is held to,
and the guarantee it supports. ``scripts/reliability_report.py`` turns the collected figures
into the document.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

RESULTS = Path(
    os.environ.get(
        "CR_PROOF_RESULTS",
        Path(__file__).resolve().parents[1] / "artifacts" / "proof" / "results.jsonl",
    )
)


def record(
    test: str,
    figure: str,
    value: float | int | str,
    *,
    unit: str = "",
    target: str = "",
    passed: bool,
    guarantee: str,
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(
            json.dumps(
                {
                    "test": test,
                    "figure": figure,
                    "value": value,
                    "unit": unit,
                    "target": target,
                    "passed": bool(passed),
                    "guarantee": guarantee,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n"
        )
