"""Synthetic media made with ffmpeg's lavfi sources, cached for the test session."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

AGENT_HZ = 440
CUSTOMER_HZ = 1000


@dataclass(frozen=True)
class Samples:
    screen_webm: Path  # VP8 640x360 at 30 fps, 12 s, no audio
    call_wav: Path  # stereo: agent on the left (440 Hz), customer on the right (1000 Hz)
    mono_wav: Path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_samples(folder: Path, seconds: int = 12) -> Samples:
    folder.mkdir(parents=True, exist_ok=True)
    screen = folder / "screen.webm"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s=640x360:r=30:d={seconds}",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "600k",
        str(screen),
    )
    call = folder / "call.wav"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=f={AGENT_HZ}:d={seconds}:sample_rate=16000",
        "-f",
        "lavfi",
        "-i",
        f"sine=f={CUSTOMER_HZ}:d={seconds}:sample_rate=16000",
        "-filter_complex",
        "[0][1]amerge=inputs=2",
        "-ac",
        "2",
        str(call),
    )
    mono = folder / "mono.wav"
    ffmpeg("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={seconds}:sample_rate=16000", str(mono))
    return Samples(screen, call, mono)
