"""Write docs/RELIABILITY.md from the figures the proof runs recorded (`make proof`)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "tests" / "artifacts" / "proof" / "results.jsonl"
OUTPUT = ROOT / "docs" / "RELIABILITY.md"


def _format(value, unit: str) -> str:
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def main() -> int:
    if not RESULTS.exists():
        print(f"no results at {RESULTS}: run `make proof` first", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        latest[(row["test"], row["figure"])] = row
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    lines = [
        "# Reliability: what we measured, and what it supports",
        "",
        "This file is written by `scripts/reliability_report.py` from the runs of `make proof`"
        " (fault injection, scale-out, load, hostile clients and privacy scans on the real"
        " stack: PostgreSQL, Redis or RabbitMQ, real Celery workers, ffmpeg and an S3 server)."
        " Rerun `make proof` to regenerate it.",
        "",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{commit}`,"
        f" {platform.system()} {platform.machine()}, Python {platform.python_version()}.",
        "",
        "| test | figure | measured | target | result | guarantee it supports |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(latest.values(), key=lambda r: (r["test"], r["figure"])):
        lines.append(
            f"| `{row['test']}` | {row['figure']} | {_format(row['value'], row['unit'])} | "
            f"{row['target'] or '—'} | {'pass' if row['passed'] else '**MISS**'} | "
            f"{row['guarantee']} |"
        )
    failed = [r for r in latest.values() if not r["passed"]]
    lines += ["", f"{len(latest) - len(failed)} of {len(latest)} figures met their target."]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(latest)} figures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
