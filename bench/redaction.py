"""Redaction figures (SPEC §12, issue 14): the cost of redactions and of suggestions.

Run: .venv/bin/python bench/redaction.py [--minutes 10] [--suggest-minutes 10] [--only ...]

No stack: both figures call the worker's media and OCR code directly on plaintext files made
here, in a temporary folder removed at the end.

1. Rendition with redactions: the share job's one ffmpeg run (``worker.media.build_command``,
   then the sprite) for a screen recording like bench/pipeline.py's (1080p30 VP8 WebM, a
   10-second testsrc2 clip looped) with stereo call audio, with 10 boxes (5 covers, 5 blurs,
   some over the whole recording, some over spans) and 3 mute spans (agent, customer, all),
   divided by the same run without redactions. The plain run goes before and after the
   redacted one: on a shared machine their mean is the fairer reference. Target <= 1.15.
2. Suggestions: ``worker.ocr.suggest_redactions`` on a synthetic contact-centre screen
   (1280x720, 30 fps VP8: a customer card with a national identity number, a card number, an
   account number, a phone number and an e-mail address that changes every 20 s, notes that
   grow every 5 s, a call timer that ticks every second), divided by the recording's length.
   Target <= 0.25.

It prints the CPU count and the load average before and after each figure: on a machine
shared with other work, a figure taken under load is slower than the code.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker import media, ocr  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ffmpeg, tesseract) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


# --- figure 1 ------------------------------------------------------------------------------------

BOXES = [
    ("cover", (0.02, 0.02, 0.20, 0.08), None),
    ("cover", (0.70, 0.05, 0.25, 0.06), (30, 200)),
    ("cover", (0.10, 0.60, 0.30, 0.05), (120, 480)),
    ("cover", (0.40, 0.40, 0.10, 0.10), (0, 60)),
    ("cover", (0.55, 0.85, 0.40, 0.10), (300, 600)),
    ("blur", (0.05, 0.20, 0.35, 0.10), None),
    ("blur", (0.50, 0.20, 0.40, 0.25), (10, 300)),
    ("blur", (0.20, 0.75, 0.15, 0.15), (200, 260)),
    ("blur", (0.60, 0.55, 0.30, 0.08), (400, 590)),
    ("blur", (0.00, 0.90, 1.00, 0.10), None),
]
MUTES = [("agent", (20, 50)), ("customer", (100, 160)), ("all", (300, 330))]


def redactions(seconds: float) -> list[dict]:
    scale = seconds / 600  # the spans above are for 10 minutes
    items = []
    for kind, (x, y, w, h), span in BOXES:
        item = {"kind": kind, "box": {"x": x, "y": y, "w": w, "h": h}}
        if span:
            item["start_s"], item["end_s"] = span[0] * scale, span[1] * scale
        items.append(item)
    for channel, (start, end) in MUTES:
        items.append(
            {"kind": "mute", "channel": channel, "start_s": start * scale, "end_s": end * scale}
        )
    return items


def figure_rendition(tmp: Path, minutes: float) -> tuple[tuple[float, float], ...]:
    """(wall, CPU) seconds of the plain run, the redacted run and the plain run again."""
    from app.services.redaction import validate_redactions

    seconds = int(minutes * 60)
    clip, screen, call = tmp / "clip.webm", tmp / "screen.webm", tmp / "call.wav"
    log(f"encoding a {minutes:g}-minute 1080p30 screen recording and stereo call audio")
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30:d=10"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "3M"),
        str(clip),
    )
    ffmpeg("-stream_loop", "-1", "-i", str(clip), "-t", str(seconds), "-c", "copy", str(screen))
    ffmpeg(
        *("-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=16000"),
        *("-f", "lavfi", "-i", f"sine=f=1000:d={seconds}:sample_rate=16000"),
        *("-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2", str(call)),
    )
    screen_probe = media.probe(screen, "matroska", "screen")
    audio_probe = media.probe(call, "wav", "audio")
    items = validate_redactions(
        redactions(screen_probe.duration_s),
        duration_s=screen_probe.duration_s,
        has_video=True,
        audio_channels=audio_probe.audio_channels,
        agent_channel="left",
    )

    def run(name: str, chosen: list[dict]) -> tuple[float, float]:
        out = tmp / f"out-{name}-{time.monotonic_ns()}"
        out.mkdir()
        plan = media.plan_rendition(
            screen=screen,
            screen_probe=screen_probe,
            audio=call,
            audio_probe=audio_probe,
            agent_channel="left",
            include_customer=True,
            trim_start_s=None,
            trim_end_s=None,
            out_dir=out,
            redactions=chosen,
        )
        log(f"{name}: {len(plan.redactions)} redactions, {load()}")
        cpu = cpu_seconds()
        started = time.monotonic()
        media.run_ffmpeg(
            media.build_command(plan),
            total_s=plan.duration_s,
            timeout_s=3 * 3600,
            on_progress=lambda fraction: None,
        )
        media.make_sprite(plan)
        elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
        log(f"{name}: {elapsed:.1f} s wall, {cpu:.1f} s CPU, {load()}")
        shutil.rmtree(out)
        return elapsed, cpu

    before = run("plain", [])
    redacted = run("redacted", items)
    after = run("plain", [])
    for path in (clip, screen, call):
        path.unlink()
    return before, redacted, after


# --- figure 2 ------------------------------------------------------------------------------------


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    control = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if control == 11 else None if control == 10 else control


def national_id(birth: str, individual: int) -> str:
    """A fødselsnummer for ``birth`` (DDMMYY): the first individual number from the one
    given that has both control digits."""
    while True:
        base = f"{birth}{individual:03d}"
        k1 = _mod11(base, (3, 7, 6, 1, 8, 9, 4, 5, 2))
        if k1 is not None:
            k2 = _mod11(f"{base}{k1}", (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
            if k2 is not None:
                return f"{base}{k1}{k2}"
        individual += 1


def account(base: str) -> str:
    while _mod11(base, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)) is None:
        base = str(int(base) + 1)
    return base + str(_mod11(base, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)))


def luhn(prefix: str) -> str:
    """``prefix`` with its Luhn check digit appended."""
    total = 0
    for position, char in enumerate(reversed(prefix)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return prefix + str((10 - total % 10) % 10)


def spaced(digits: str, groups: tuple[int, ...]) -> str:
    out, at = [], 0
    for size in groups:
        out.append(digits[at : at + size])
        at += size
    return " ".join(out)


CUSTOMERS = [
    ("Ola Nordmann", "150387", "471628593041778", "15031234567", "913 45 678", "ola.nordmann"),
    ("Kari Hansen", "020791", "555544443333222", "12040056789", "41 22 33 44", "kari.hansen"),
    ("Per Olsen", "311265", "492935128674021", "60110312345", "977 12 345", "per.olsen"),
]
NOTES = [
    "Kunden ringer om siste faktura",
    "Mener beløpet er for høyt",
    "Forklart prisendring fra mars",
    "Kunden ønsker nedbetalingsplan",
    "Sjekket betalingshistorikk",
    "Ingen purringer siste år",
    "Tilbudt tre avdrag",
    "Kunden takker ja",
    "Sendt bekreftelse på e-post",
    "Avtalt oppfølging neste uke",
    "Saken settes til venter",
    "Samtalen avsluttes",
]


def crm_screen(tmp: Path, minutes: float) -> Path:
    """A contact-centre screen: 60 s of it, encoded once and looped to ``minutes``."""
    segment, screen = tmp / "crm-segment.webm", tmp / "crm.webm"

    def text(value: str, x: int, y: int, size: int = 22, color: str = "0x1a1a1a", when=""):
        value = value.replace("%", "\\%")
        enable = f":enable='{when}'" if when else ""
        return (
            f"drawtext=fontfile={FONT}:text='{value}':x={x}:y={y}:fontsize={size}"
            f":fontcolor={color}{enable}"
        )

    draw = [
        "drawbox=x=0:y=0:w=iw:h=56:color=0x1f3a5f:t=fill",
        text("Kundesenter  Sak 2291", 24, 16, 24, "white"),
        text("Samtaletid %{eif\\:t\\:d} s", 1000, 16, 24, "white"),
        "drawbox=x=20:y=80:w=600:h=400:color=0x8090a0:t=2",
        "drawbox=x=660:y=80:w=600:h=600:color=0x8090a0:t=2",
        text("Notater", 680, 96, 24),
    ]
    labels = ["Navn", "Fødselsnummer", "Kort", "Konto", "Telefon", "E-post"]
    for index, (name, birth, card, acct, phone, mail) in enumerate(CUSTOMERS):
        when = f"between(t,{index * 20},{index * 20 + 19.99})"
        values = [
            name,
            spaced(national_id(birth, 100 + index * 37), (6, 5)),
            spaced(luhn(card[:15]), (4, 4, 4, 4)),
            spaced(account(acct[:10]), (4, 2, 5)),
            phone,
            f"{mail}@example.no",
        ]
        for row, (label, value) in enumerate(zip(labels, values, strict=True)):
            y = 110 + row * 56
            draw.append(text(label, 40, y, 20, "0x505a66"))
            draw.append(text(value, 240, y, 22, when=when))
    for index, note in enumerate(NOTES):
        draw.append(text(note, 680, 140 + index * 40, 20, when=f"gte(t,{index * 5})"))
    log("encoding a 60 s contact-centre screen (1280x720, 30 fps)")
    ffmpeg(
        *("-f", "lavfi", "-i", "color=c=0xf4f6f8:s=1280x720:r=30:d=60"),
        *("-vf", ",".join(draw)),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"),
        str(segment),
    )
    seconds = int(minutes * 60)
    ffmpeg("-stream_loop", "-1", "-i", str(segment), "-t", str(seconds), "-c", "copy", str(screen))
    segment.unlink()
    return screen


def figure_suggestions(tmp: Path, minutes: float) -> tuple[float, float, float, list[dict]]:
    """Wall and CPU seconds of the suggestions, the screen's length, and what was found."""
    screen = crm_screen(tmp, minutes)
    probe = media.probe(screen, "matroska", "screen")
    scratch = tmp / "scratch"
    scratch.mkdir()
    log(f"suggestions on {probe.duration_s:.0f} s of screen, {load()}")
    cpu = cpu_seconds()
    started = time.monotonic()
    found = ocr.suggest_redactions(screen, "matroska", scratch, duration_s=probe.duration_s)
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
    log(f"suggestions: {elapsed:.1f} s wall, {cpu:.1f} s CPU, {len(found)} found, {load()}")
    assert not any(scratch.iterdir()), "the scratch folder was left with files"
    screen.unlink()
    return elapsed, cpu, probe.duration_s, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="rendition length")
    parser.add_argument("--suggest-minutes", type=float, default=10, help="screen length")
    parser.add_argument("--only", choices=["rendition", "suggestions"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["rendition", "suggestions"])
    ocr.check_tesseract()
    tmp = Path(tempfile.mkdtemp(prefix="cr-bench-redaction-", dir="/var/tmp"))
    rows = []
    failures = 0
    try:
        print(f"CPUs: {os.cpu_count()}; {load()}", flush=True)
        if "rendition" in only:
            before, redacted, after = figure_rendition(tmp, args.minutes)
            plain = (before[0] + after[0]) / 2
            ratio = redacted[0] / plain
            cpu_ratio = redacted[1] / ((before[1] + after[1]) / 2)
            failures += ratio > 1.15
            rows.append(
                f"1. rendition, {args.minutes:g} min 1080p30 + stereo call, 10 boxes + 3 mutes: "
                f"{redacted[0]:.1f} s / plain {plain:.1f} s (before {before[0]:.1f}, after "
                f"{after[0]:.1f}) = {ratio:.3f}  target <= 1.15  "
                f"{'PASS' if ratio <= 1.15 else 'MISS'}  (CPU time ratio {cpu_ratio:.3f})"
            )
        if "suggestions" in only:
            elapsed, cpu, length, found = figure_suggestions(tmp, args.suggest_minutes)
            ratio = elapsed / length
            failures += ratio > 0.25
            reasons = sorted({item["reason"] for item in found})
            rows.append(
                f"2. suggestions, {length:.0f} s of 720p30 screen: {elapsed:.1f} s / {length:.0f} s"
                f" = {ratio:.3f}  target <= 0.25  {'PASS' if ratio <= 0.25 else 'MISS'}"
                f"  (CPU {cpu:.1f} s = {cpu / length:.3f} of the length; {len(found)} "
                f"suggestions: {', '.join(reasons)})"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"CPUs: {os.cpu_count()}; {load()} at the end")
    for row in rows:
        print(row)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
