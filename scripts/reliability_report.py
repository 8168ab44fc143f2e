"""Write docs/RELIABILITY.md from the figures the proof runs recorded (`make proof`).

Inputs, both written by the run under tests/artifacts/proof/:

- ``results.jsonl``: one line per figure (tests/proof/record.py): test, figure, value, unit,
  target, passed, guarantee;
- ``run.json``: how long the run took and each proof test's outcome (tests/proof/conftest.py).

The document lists every figure under its test group, then the guarantees with how many of
their figures met the target, then the tests that did not pass (failed, or known bugs).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(
    os.environ.get("CR_PROOF_RESULTS", ROOT / "tests" / "artifacts" / "proof" / "results.jsonl")
)
RUN = RESULTS.parent / "run.json"
OUTPUT = ROOT / "docs" / "RELIABILITY.md"

GROUPS = {
    "faults": "Faults on the real stack",
    "scale_out": "Scale-out",
    "load": "Load",
    "hostile": "Hostile clients",
    "privacy": "Privacy invariants",
}
# The short guarantee labels the tests record, and what each stands for (SPEC sections).
GUARANTEES = {
    "§2.3 §11 nothing in the clear underneath": "No plaintext media at rest (§2.3): the"
    " object store, a database dump, the broker and the logs hold no canary, no plaintext,"
    " no data key and no key-encryption key (§11: a thief of the store or a dump reads"
    " nothing).",
    "§2.3 scratch plaintext removed": "Plaintext exists only in a worker's scratch directory"
    " while it works, and is removed also when the job fails or the worker dies (§2.3).",
    "§2.4 no byte after the revoke": "After the revoke response, no request gets another byte"
    " of plaintext, even mid-stream (§2.4, §11).",
    "§2.4 withdrawal immediate and final": "Withdrawal is immediate and final: the key and the"
    " objects are gone, also when the share was still being made (§2.4, §8).",
    "§2.5 running it is not watching it": "Admins and representatives cannot reach content,"
    " by cookie or token; representatives see no employee names (§2.5, §3).",
    "§4 every job ends ready or failed": "Every accepted share ends ready, or failed with a"
    " reason; nothing stays in processing through worker, store, database or broker faults"
    " (§4).",
    "§5 correct and available under load": "Under concurrent uploads, streams and revokes,"
    " every answer is correct and none fails (§5).",
    "§5 errors are JSON, never 5xx": "Hostile input gets a fitting 4xx in the JSON error"
    " shape, never a 5xx or a stack trace (§5).",
    "§5 progress 0–100 while made": "A share's progress moves while it is made (§5).",
    "§5 responses match the OpenAPI document": "Every response, for every role, matches"
    " /api/openapi.json and is never a 5xx (§5).",
    "§6 §8 forgeries refused, never misread": "Forged receipts and altered ciphertext are"
    " refused with the one error type, and never yield wrong claims or wrong plaintext"
    " (§6, §8).",
    "§7 customer channel dropped": "The customer's channel is dropped unless the employee"
    " chose it and the customer was informed (§7).",
    "§10 workers scale out, each job once": "Workers scale out on the broker; each job runs"
    " once (§10).",
    "§11 a malicious upload is contained": "An oversized, mistyped or trickled upload is"
    " refused or contained and leaves nothing behind (§11).",
}
MODULES = {
    "faults": "tests/proof/test_faults.py",
    "scale_out": "tests/proof/test_scale_out.py",
    "load": "tests/proof/test_load.py",
    "hostile": "tests/proof/test_hostile.py",
    "privacy": "tests/proof/test_privacy.py",
}


def _format(value, unit: str) -> str:
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, int) and abs(value) >= 10000:
        text = f"{value:,}"
    else:
        text = str(value)
    return _cell(f"{text} {unit}".strip())


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _section(label: str) -> tuple:
    """Sort "§2.3 …" before "§10 …"."""
    number = label.split()[0].lstrip("§")
    return tuple(int(p) if p.isdigit() else 0 for p in number.split(".")), label


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (result.stdout.strip() or "unknown") + (" (with local changes)" if dirty else "")


def main() -> int:
    if not RESULTS.exists():
        print(f"no results at {RESULTS}: run `make proof` first", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:  # a figure recorded twice (a rerun) keeps its latest value
        latest[(row["test"], row["figure"])] = row
    run = json.loads(RUN.read_text()) if RUN.exists() else {}
    outcomes = run.get("tests", {})

    lines = [
        "# Reliability: what we measured, and what it supports",
        "",
        "Written by `scripts/reliability_report.py` from the last `make proof` run: faults,"
        " scale-out, load, hostile clients and privacy scans on the real stack (PostgreSQL,"
        " Redis or RabbitMQ, real Celery workers and ffmpeg, gunicorn, moto's S3 server), all"
        " on loopback. Rerun `make proof` to regenerate it; each figure names the test that"
        " measured it, the target it is held to, and the guarantee (SPEC section) it supports.",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{_commit()}`,"
        f" {platform.system()} {platform.machine()}, {run.get('cpus', '?')} CPUs,"
        f" Python {platform.python_version()}"
        + (f"; the run took {run['seconds'] / 60:.1f} min." if "seconds" in run else "."),
        "",
    ]
    if outcomes:
        counts: dict[str, int] = defaultdict(int)
        for entry in outcomes.values():
            counts[entry["outcome"]] += 1
        lines += [
            "Tests in tests/proof: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + ".",
            "",
        ]
    met = sum(1 for r in latest.values() if r["passed"])
    lines += [f"**{met} of {len(latest)} figures met their target.**", ""]

    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in latest.values():
        by_group[row["test"].split("::", 1)[0]].append(row)
    for group in [*GROUPS, *sorted(set(by_group) - set(GROUPS))]:
        if group not in by_group:
            continue
        title = GROUPS.get(group, group)
        lines += [
            f"## {title}",
            "",
            f"`{MODULES.get(group, group)}`",
            "",
            "| test | figure | measured | target | result | guarantee it supports |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in by_group[group]:  # in the order the tests recorded them
            lines.append(
                f"| `{row['test'].split('::', 1)[-1]}` | {_cell(row['figure'])} | "
                f"{_format(row['value'], row['unit'])} | {_cell(row['target'] or '—')} | "
                f"{'pass' if row['passed'] else '**MISS**'} | {_cell(row['guarantee'])} |"
            )
        lines.append("")

    guarantees: dict[str, list[dict]] = defaultdict(list)
    for row in latest.values():
        guarantees[row["guarantee"]].append(row)
    lines += [
        "## By guarantee",
        "",
        "| guarantee | what it means | figures | met |",
        "| --- | --- | --- | --- |",
    ]
    for guarantee, items in sorted(guarantees.items(), key=lambda g: _section(g[0])):
        ok = sum(1 for r in items if r["passed"])
        lines.append(
            f"| {_cell(guarantee)} | {_cell(GUARANTEES.get(guarantee, ''))} | {len(items)} |"
            f" {ok}{'' if ok == len(items) else ' **MISS**'} |"
        )
    lines.append("")

    not_passed = {k: v for k, v in outcomes.items() if v["outcome"] != "passed"}
    missed = [r for r in latest.values() if not r["passed"]]
    if not_passed or missed:
        lines += ["## Not passed", ""]
        for nodeid, entry in sorted(not_passed.items()):
            reason = f": {entry['reason']}" if entry.get("reason") else ""
            lines.append(f"- `{nodeid}` — {entry['outcome']}{_cell(reason)}")
        for row in missed:
            lines.append(
                f"- MISS `{row['test']}`: {_cell(row['figure'])} = "
                f"{_format(row['value'], row['unit'])} (target {_cell(row['target'])})"
            )
        lines.append("")

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("\n".join(lines))
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(latest)} figures, {met} met)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
