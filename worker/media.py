"""ffprobe and ffmpeg on untrusted input (SPEC §7).

Every ffmpeg or ffprobe run here: reads only local files (``-protocol_whitelist file``), uses
only the demuxers SPEC §7 names (``-format_whitelist``, and the container we sniffed forced
with ``-f``), never reads stdin, runs without a shell, under an address-space limit and a wall
clock limit, and is killed if the job stops. A file that fails any check raises
:class:`MediaRejected` with a message an employee can act on.

The share's rendition, poster, thumbnails and waveform come from one run
(:func:`plan_rendition`, :func:`build_command`, :func:`run_ffmpeg`, :func:`make_sprite`). The
employee's redactions (SPEC §12) are applied in that run, to the one video and the one audio
chain before they are split into those outputs: covers are an opaque fill, blurs a mosaic of a
few coarse blocks, mutes digital silence on the chosen channels; nothing unredacted is written.
The ffmpeg and ffprobe run are parameters (``ffmpeg_bin``/``ffprobe_bin``: the share job passes
``Settings.ffmpeg``/``Settings.ffprobe``), "ffmpeg" and "ffprobe" on PATH when not given.
"""

from __future__ import annotations

import array
import collections
import contextlib
import ctypes
import ctypes.util
import json
import logging
import math
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg  # ffmpeg-python: builds the filter graph and the command line

from app.services import job_messages as M
from app.services.job_messages import say
from app.services.redaction import BOX_KINDS, to_output_timeline

log = logging.getLogger(__name__)

# The binaries run when a caller names none (the share job passes ``Settings.ffmpeg`` and
# ``Settings.ffprobe``, from CR_FFMPEG and CR_FFPROBE): looked up on PATH.
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# Demuxer names as ffmpeg lists them; the whitelist matches any name in a comma list.
DEMUXER_WHITELIST = "matroska,webm,mov,mp4,m4a,wav,ogg,mp3,aac"
FORCED_DEMUXER = {
    "matroska": "matroska",
    "mp4": "mov",
    "wav": "wav",
    "ogg": "ogg",
    "mp3": "mp3",
    "aac": "aac",
}
ADDRESS_SPACE_LIMIT = 6 * 1024**3
MAX_STREAMS = 8
PROBE_TIMEOUT_S = 60

OUT_MAX_WIDTH, OUT_MAX_HEIGHT, OUT_MAX_FPS = 1280, 720, 15
# A decoder refuses frames larger than this, whatever the container claims (decompression bombs).
OUT_MAX_PIXELS_IN = 7680 * 4320
KEYFRAME_INTERVAL_S = 2
THUMB_W, THUMB_H, THUMB_COLUMNS, THUMB_MAX = 160, 90, 10, 100
WAVEFORM_RATE = 4000  # above most of a voice's energy, and well above a 1 kHz test tone
PROGRESS_EVERY_S = 1.0
WAVEFORM_MAX_BUCKETS = 2000


class MediaRejected(Exception):
    """The input cannot be used; the message says why in plain words. Never retried."""


class MediaTimeout(MediaRejected):
    pass


@dataclass(frozen=True)
class Limits:
    max_duration_s: float
    max_width: int
    max_height: int
    max_fps: float
    timeout_s: float
    # width × height × frame rate × seconds: the work decoding the video takes, which no single
    # limit above bounds (60 s of 7680×4320 at 120 fps is within each of them).
    max_total_pixels: float = float("inf")


@dataclass
class Probe:
    container: str
    duration_s: float | None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_channels: int = 0
    video_streams: int = 0
    audio_streams: int = 0
    # A picture size the file's headers declare but the decoder refused as impossible (ffmpeg
    # then reports no size at all): kept so the limit check can name it.
    declared_width: int | None = None
    declared_height: int | None = None

    @property
    def has_video(self) -> bool:
        return self.video_streams > 0

    @property
    def has_audio(self) -> bool:
        return self.audio_streams > 0


def _input_options(container: str) -> dict[str, object]:
    return {
        "f": FORCED_DEMUXER[container],
        "protocol_whitelist": "file",
        "format_whitelist": DEMUXER_WHITELIST,
        "max_streams": MAX_STREAMS,
    }


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    # The address-space limit is set before exec, so not one allocation escapes it.
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    # ffmpeg runs in its own session (so a kill reaches its whole group) and ignores SIGPIPE:
    # without this it would outlive a worker killed by the hard time limit or the OOM killer,
    # and go on decoding plaintext into a scratch directory nobody owns any more.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _spawn(argv: list[str]) -> subprocess.Popen:
    """Start ffmpeg/ffprobe: no stdin, no shell, own session, memory-capped, dies with us."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_child_setup,  # setrlimit and prctl only: no locks, no Python state
    )


def _run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    process = _spawn(argv)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise MediaTimeout(say(M.READ_TOO_SLOW)) from None
    except BaseException:
        _kill(process)
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _fraction(text: str | None) -> float | None:
    if not text or text in {"0/0", "N/A"}:
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def probe(
    path: Path,
    container: str,
    part: str,
    *,
    ffprobe_bin: str = FFPROBE,
    ffmpeg_bin: str = FFMPEG,
) -> Probe:
    """ffprobe one local file; MediaRejected if it is not readable media.

    ``ffmpeg_bin`` measures a file that declares no length or frame rate.
    """
    command = [ffprobe_bin, "-v", "error", "-hide_banner"]
    for option, value in _input_options(container).items():
        command += [f"-{option}", str(value)]
    command += ["-show_format", "-show_streams", "-of", "json", "-i", str(path)]
    result = _run(command, PROBE_TIMEOUT_S)
    if result.returncode != 0:
        log.info("ffprobe refused %s input: %s", part, result.stderr.decode(errors="replace")[:300])
        raise MediaRejected(say(M.UNREADABLE, part=part))
    try:
        info = json.loads(result.stdout or b"{}")
    except json.JSONDecodeError:
        raise MediaRejected(say(M.UNREADABLE, part=part)) from None
    streams = info.get("streams") or []
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    result_probe = Probe(
        container=container,
        duration_s=_float((info.get("format") or {}).get("duration")),
        video_streams=len(videos),
        audio_streams=len(audios),
    )
    if videos:
        video = videos[0]
        result_probe.width = int(video.get("width") or 0) or None
        result_probe.height = int(video.get("height") or 0) or None
        # avg_frame_rate is the real rate. r_frame_rate is only the finest rate the timestamps
        # can be expressed in: for variable-rate WebM from MediaRecorder (no DefaultDuration)
        # it is the 1 kHz time base, so it is not used; the rate is measured instead.
        result_probe.fps = _fraction(video.get("avg_frame_rate"))
        declared = _INVALID_PICTURE.search(result.stderr.decode(errors="replace"))
        if declared:
            result_probe.declared_width = int(declared.group(1))
            result_probe.declared_height = int(declared.group(2))
    if audios:
        result_probe.audio_channels = int(audios[0].get("channels") or 0)
    if not videos and not audios:
        raise MediaRejected(say(M.NO_STREAMS, part=part))
    if result_probe.duration_s is None or (videos and result_probe.fps is None):
        duration, frames = measure_stream(path, container, part, ffmpeg_bin=ffmpeg_bin)
        if result_probe.duration_s is None:
            result_probe.duration_s = duration
        if videos and result_probe.fps is None and frames > 0:
            result_probe.fps = frames / max(result_probe.duration_s, 0.001)
    return result_probe


# libavutil's check of a picture size it cannot allocate (ffmpeg then reports no size at all).
_INVALID_PICTURE = re.compile(r"Picture size (\d+)x(\d+) is invalid")


def measure_stream(
    path: Path, container: str, part: str, *, ffmpeg_bin: str = FFMPEG
) -> tuple[float, int]:
    """Read the whole file once without decoding: its length and its number of video frames.

    WebM from MediaRecorder declares neither a duration nor a frame rate.
    """
    args = (
        ffmpeg.input(str(path), **_input_options(container))
        .output("-", f="null", c="copy", map="0")
        .global_args("-nostdin", "-v", "error", "-progress", "pipe:1")
        .compile(cmd=ffmpeg_bin)
    )
    result = _run(args, PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise MediaRejected(say(M.DAMAGED, part=part))
    out_time, frames = 0.0, 0
    for line in result.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        value = value.strip()
        if key == "out_time_us" and value.lstrip("-").isdigit():
            out_time = max(out_time, int(value) / 1e6)
        elif key == "frame" and value.isdigit():
            frames = max(frames, int(value))
    if out_time <= 0:
        raise MediaRejected(say(M.NO_LENGTH, part=part))
    return out_time, frames


def measure_duration(path: Path, container: str, part: str, *, ffmpeg_bin: str = FFMPEG) -> float:
    """The length of a file that does not declare one (see :func:`measure_stream`)."""
    return measure_stream(path, container, part, ffmpeg_bin=ffmpeg_bin)[0]


def check_limits(p: Probe, part: str, limits: Limits) -> None:
    if p.duration_s is not None and p.duration_s > limits.max_duration_s:
        raise MediaRejected(
            say(
                M.TOO_LONG,
                part=part,
                hours=f"{p.duration_s / 3600:.1f}",
                limit=f"{limits.max_duration_s / 3600:.1f}",
            )
        )
    for width, height in ((p.width, p.height), (p.declared_width, p.declared_height)):
        if width and height and (width > limits.max_width or height > limits.max_height):
            raise MediaRejected(
                say(
                    M.TOO_LARGE,
                    part=part,
                    size=f"{width}×{height}",
                    limit=f"{limits.max_width}×{limits.max_height}",
                )
            )
    if p.has_video and (not p.width or not p.height):
        raise MediaRejected(say(M.NO_PICTURE_SIZE, part=part))
    if p.fps and p.fps > limits.max_fps:
        raise MediaRejected(
            say(M.TOO_FAST, part=part, fps=f"{p.fps:.0f}", limit=f"{limits.max_fps:.0f}")
        )
    _check_total_pixels(p, part, limits)


def _check_total_pixels(p: Probe, part: str, limits: Limits) -> None:
    if not (p.width and p.height and p.fps and p.duration_s):
        return
    total = p.width * p.height * p.fps * p.duration_s
    if total > limits.max_total_pixels:
        per_hour_1080p15 = 1920 * 1080 * 15 * 3600
        raise MediaRejected(
            say(
                M.TOO_MANY_PIXELS,
                part=part,
                size=f"{p.width}×{p.height}",
                fps=f"{p.fps:.0f}",
                seconds=f"{p.duration_s:.0f}",
                billions=f"{total / 1e9:,.0f}",
                limit=f"{limits.max_total_pixels / 1e9:,.0f}",
                minutes=f"{limits.max_total_pixels / per_hour_1080p15 * 60:.0f}",
            )
        )


@dataclass
class RenditionPlan:
    """What one ffmpeg run must make; produced by :func:`plan_rendition`.

    ``redactions`` are validated items (``app.services.redaction``) with their spans already in
    the rendition's own timeline: 0 is the trim's start (ffmpeg's ``-ss`` on an input starts its
    timestamps at 0).
    """

    screen: Path | None
    screen_probe: Probe | None
    audio: Path | None
    audio_probe: Probe | None
    agent_channel: str
    include_customer: bool
    trim_start_s: float
    trim_end_s: float
    out_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    thumb_interval_s: float = 2.0
    thumb_count: int = 0
    thumb_rows: int = 1
    audio_out_channels: int = 1
    fps: float = OUT_MAX_FPS
    redactions: list[dict] = field(default_factory=list)
    ffmpeg_bin: str = FFMPEG
    ffprobe_bin: str = FFPROBE

    @property
    def duration_s(self) -> float:
        return self.trim_end_s - self.trim_start_s


def plan_rendition(
    *,
    screen: Path | None,
    screen_probe: Probe | None,
    audio: Path | None,
    audio_probe: Probe | None,
    agent_channel: str,
    include_customer: bool,
    trim_start_s: float | None,
    trim_end_s: float | None,
    out_dir: Path,
    redactions: Sequence[Mapping] = (),
    ffmpeg_bin: str = FFMPEG,
    ffprobe_bin: str = FFPROBE,
) -> RenditionPlan:
    """Plan the run. ``redactions``: the share's validated redactions, in the recording's own
    timeline (as ``validate_redactions`` returned them); they are mapped into the trimmed
    rendition's timeline here, with the trim this plan actually uses."""
    if screen_probe is not None and not screen_probe.has_video:
        raise MediaRejected(say(M.SCREEN_WITHOUT_VIDEO))
    if audio_probe is not None and not audio_probe.has_audio:
        raise MediaRejected(say(M.AUDIO_WITHOUT_SOUND))
    durations = [p.duration_s for p in (screen_probe, audio_probe) if p and p.duration_s]
    if not durations:
        raise MediaRejected(say(M.RECORDING_WITHOUT_LENGTH))
    length = max(durations)
    start = max(trim_start_s or 0.0, 0.0)
    end = min(trim_end_s if trim_end_s is not None else length, length)
    if end - start < 0.5:
        raise MediaRejected(say(M.TRIM_TOO_SHORT))
    if screen is None and any(item["kind"] in BOX_KINDS for item in redactions):
        # validate_redactions refuses these; a plan that still has one is a caller's bug.
        raise ValueError("a cover or blur redaction on a recording without video")
    plan = RenditionPlan(
        screen=screen,
        screen_probe=screen_probe,
        audio=audio,
        audio_probe=audio_probe,
        agent_channel=agent_channel,
        include_customer=include_customer,
        trim_start_s=start,
        trim_end_s=end,
        out_dir=out_dir,
        redactions=to_output_timeline(redactions, start, end),
        ffmpeg_bin=ffmpeg_bin,
        ffprobe_bin=ffprobe_bin,
    )
    source_fps = screen_probe.fps if screen_probe and screen_probe.fps else OUT_MAX_FPS
    plan.fps = min(source_fps, OUT_MAX_FPS) if screen_probe else 2.0
    plan.thumb_interval_s = max(2.0, math.ceil(plan.duration_s / THUMB_MAX))
    plan.thumb_count = max(1, min(THUMB_MAX, math.ceil(plan.duration_s / plan.thumb_interval_s)))
    plan.thumb_rows = math.ceil(plan.thumb_count / THUMB_COLUMNS)
    plan.outputs = {
        "rendition": out_dir / "rendition.mp4",
        "poster": out_dir / "poster.jpg",
        "thumbnails": out_dir / "thumbnails.jpg",
        "thumb_frames": out_dir / "thumbs",
        "waveform_pcm": out_dir / "waveform.pcm",
    }
    plan.outputs["thumb_frames"].mkdir(mode=0o700, exist_ok=True)
    return plan


def _audio_source(plan: RenditionPlan):
    """The stream that holds the call audio: the audio file, else the screen's own track."""
    if plan.audio is not None:
        return "audio"
    if plan.screen_probe is not None and plan.screen_probe.has_audio:
        return "screen"
    return None


def build_command(plan: RenditionPlan) -> list[str]:
    """The single ffmpeg run: rendition, poster, thumbnail sprite and waveform samples.

    Redactions are applied to the one video and the one audio chain before they are split,
    so every output (rendition, poster, thumbnails, waveform) is made from the redacted result.
    """
    inputs = _inputs(plan)
    video = _video_chain(plan, inputs)
    audio = _audio_chain(plan, inputs)
    return (
        ffmpeg.merge_outputs(*_outputs(plan, video, audio))
        .global_args(
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-progress",
            "pipe:1",
            "-stats_period",
            "0.5",
            "-threads",
            "0",
        )
        .overwrite_output()
        .compile(cmd=plan.ffmpeg_bin)
    )


def _inputs(plan: RenditionPlan) -> dict[str, ffmpeg.nodes.FilterableStream]:
    """The input files, each trimmed on input: their timestamps then start at 0."""
    trim = {"ss": f"{plan.trim_start_s:.3f}", "to": f"{plan.trim_end_s:.3f}"}
    inputs = {}
    if plan.screen is not None:
        inputs["screen"] = ffmpeg.input(
            str(plan.screen),
            **_input_options(plan.screen_probe.container),
            **trim,
            max_pixels=OUT_MAX_PIXELS_IN,
        )
    if plan.audio is not None:
        inputs["audio"] = ffmpeg.input(
            str(plan.audio), **_input_options(plan.audio_probe.container), **trim
        )
    return inputs


def _video_chain(plan: RenditionPlan, inputs: dict):
    """The screen (or a plain card for an audio-only recording), scaled, with its boxes."""
    if "screen" in inputs:
        video = inputs["screen"].video
    else:
        video = ffmpeg.input(
            f"color=c=0x1d2430:s=640x360:r={plan.fps:g}:d={plan.duration_s:.3f}", f="lavfi"
        ).video
    video = (
        video.filter("fps", fps=f"{plan.fps:g}")
        .filter(
            "scale",
            w=f"min({OUT_MAX_WIDTH},iw)",
            h=f"min({OUT_MAX_HEIGHT},ih)",
            force_original_aspect_ratio="decrease",
            force_divisible_by=2,
        )
        .filter("format", "yuv420p")
    )
    return _redact_video(video, plan.redactions, plan.fps, plan.duration_s)


# A blur is a mosaic: the box is averaged down to blocks of at least this many pixels, and to
# at most this many blocks along its longer side, then each block's brightness is cut to
# MOSAIC_LEVELS steps. A block is then at least as tall as a line of screen text, and holds
# several characters' worth of averaged ink in a few bits: no glyph shape is left to read, and
# little is left for a search over candidate texts to match.
MOSAIC_MIN_BLOCK_PX = 32
MOSAIC_MAX_BLOCKS = 6
MOSAIC_LEVELS = 8
COVER_COLOR = "black"


def _redact_video(video, redactions: Sequence[Mapping], fps: float, duration_s: float):
    """Blurs first, covers after: where they overlap, the opaque fill wins."""
    items = [r for r in redactions if r["kind"] == "blur"]
    items += [r for r in redactions if r["kind"] == "cover"]
    for item in items:
        edges = _box_edges(item["box"])
        enable = _enable_video(item, fps, duration_s)
        if item["kind"] == "cover":
            video = video.filter(
                "drawbox",
                x=edges["x"].format(w="iw"),
                y=edges["y"].format(h="ih"),
                w=edges["w"].format(w="iw"),
                h=edges["h"].format(h="ih"),
                color=COVER_COLOR,
                t="fill",
                **enable,
            )
        else:
            video = _mosaic(video, edges, enable)
    return video


def _box_edges(box: Mapping) -> dict[str, str]:
    """ffmpeg expressions for a box's pixels, with ``{w}``/``{h}`` for the frame's size.

    Rounded outwards, to even pixels (a 4:2:0 chroma sample spans two), so the covered area is
    never smaller than the box asked for.
    """
    left = math.floor(float(box["x"]) * 1e6) / 1e6
    top = math.floor(float(box["y"]) * 1e6) / 1e6
    right = min(1.0, math.ceil((float(box["x"]) + float(box["w"])) * 1e6) / 1e6)
    bottom = min(1.0, math.ceil((float(box["y"]) + float(box["h"])) * 1e6) / 1e6)
    x0 = f"floor({{w}}*{left:.6f}/2)*2"
    y0 = f"floor({{h}}*{top:.6f}/2)*2"
    x1 = f"min({{w}},ceil({{w}}*{right:.6f}/2)*2)"
    y1 = f"min({{h}},ceil({{h}}*{bottom:.6f}/2)*2)"
    return {"x": x0, "y": y0, "w": f"{x1}-{x0}", "h": f"{y1}-{y0}"}


def _enable_video(item: Mapping, fps: float, duration_s: float) -> dict[str, str]:
    """``enable=`` for a box's span; none when it spans the whole rendition.

    A frame stamped ``t`` is on screen until ``t + 1/fps``: every frame on screen at any moment
    of the span is redacted, so the span starts one frame early.
    """
    start, end = float(item["start_s"]), float(item["end_s"])
    if start <= 0 and end >= duration_s:
        return {}
    start = max(0.0, start - 1 / fps)
    return {"enable": f"between(t,{start:.4f},{end:.4f})"}


def _mosaic(video, edges: dict[str, str], enable: dict[str, str]):
    """Crop the box, average it down to a few blocks, scale it back up blocky, lay it over."""
    split = video.split()
    main, box = split[0], split[1]
    block = f"max({MOSAIC_MIN_BLOCK_PX},max(iw,ih)/{MOSAIC_MAX_BLOCKS})"
    step = 256 // MOSAIC_LEVELS
    tiny = (
        box.filter(
            "crop",
            x=edges["x"].format(w="iw"),
            y=edges["y"].format(h="ih"),
            w=edges["w"].format(w="iw"),
            h=edges["h"].format(h="ih"),
        )
        .filter(
            "scale",
            w=f"max(1,round(iw/{block}))",
            h=f"max(1,round(ih/{block}))",
            flags="area",
        )
        # Full-resolution chroma: each block is one colour, its edges where the luma's are.
        .filter("format", "yuv444p")
        .filter("lutyuv", y=f"floor(val/{step})*{step}+{step // 2}")
    )
    # scale2ref: back up to the box's own pixel size, computed from the full frame it passes on.
    scaled = ffmpeg.filter_multi_output(
        [tiny, main],
        "scale2ref",
        w=edges["w"].format(w="iw"),
        h=edges["h"].format(h="ih"),
        flags="neighbor",
    )
    blocks, main = scaled[0], scaled[1]
    return ffmpeg.filter(
        [main, blocks],
        "overlay",
        x=edges["x"].format(w="W"),
        y=edges["y"].format(h="H"),
        **enable,
    )


def _audio_chain(plan: RenditionPlan, inputs: dict):
    """The agent's channel, the customer's only when the employee chose so; then the mutes.

    Sets ``plan.audio_out_channels``.
    """
    source = _audio_source(plan)
    if source is None:
        audio = ffmpeg.input(f"anullsrc=r=48000:cl=mono:d={plan.duration_s:.3f}", f="lavfi").audio
        plan.audio_out_channels = 1
        return audio.filter("aresample", 48000)
    probe_ = plan.audio_probe if source == "audio" else plan.screen_probe
    audio = inputs[source].audio
    stereo = probe_.audio_channels >= 2
    both = {"agent", "customer"}
    if stereo and plan.agent_channel in ("left", "right") and not plan.include_customer:
        agent = "0" if plan.agent_channel == "left" else "1"
        audio = audio.filter("channelmap", map=f"{agent}-0", channel_layout="mono")
        speakers = [{"agent"}]
    elif stereo and plan.include_customer:
        audio = audio.filter("aformat", channel_layouts="stereo")
        if plan.agent_channel == "left":
            speakers = [{"agent"}, {"customer"}]
        elif plan.agent_channel == "right":
            speakers = [{"customer"}, {"agent"}]
        else:
            speakers = [both, both]
    else:
        audio = audio.filter("aformat", channel_layouts="mono")
        speakers = [both]
    plan.audio_out_channels = len(speakers)
    audio = audio.filter("aresample", 48000)
    return _mute(audio, [r for r in plan.redactions if r["kind"] == "mute"], speakers)


# Audio frames are at most this long (a WAV packet of 4096 samples at 8 kHz is 0.5 s): the
# per-frame enable= switches the muting filter on early enough, and it then mutes per sample.
_AUDIO_FRAME_MAX_S = 1.0


def _mute(audio, mutes: Sequence[Mapping], speakers: list[set[str]]):
    """Digital silence (samples multiplied by 0) on the chosen channels over each span.

    ``speakers[i]`` is who is heard on output channel ``i``: a mute of the agent or the customer
    silences every channel they are on (on a mixed channel, that is everyone).
    """
    if not mutes:
        return audio
    exprs = []
    for index, heard in enumerate(speakers):
        spans = [
            f"between(t,{float(m['start_s']):.4f},{float(m['end_s']):.4f})"
            for m in mutes
            if m.get("channel", "all") == "all" or m["channel"] in heard
        ]
        exprs.append(f"val({index})*not({'+'.join(spans)})" if spans else f"val({index})")
    enable = "+".join(
        f"between(t,{max(0.0, float(m['start_s']) - _AUDIO_FRAME_MAX_S):.4f},"
        f"{float(m['end_s']):.4f})"
        for m in mutes
    )
    return audio.filter("aeval", exprs="|".join(exprs), c="same", enable=enable)


def _outputs(plan: RenditionPlan, video, audio) -> list:
    """Split the redacted video and audio into the rendition, poster, thumbnails, waveform."""
    split = video.split()
    main_video, poster_video, thumb_video = split[0], split[1], split[2]
    split_audio = audio.asplit()
    main_audio, wave_audio = split_audio[0], split_audio[1]

    poster_at = min(plan.duration_s * 0.1, 5.0)
    poster = (
        poster_video.filter("trim", start=f"{poster_at:.3f}")
        .filter("setpts", "PTS-STARTPTS")
        .filter("scale", w=640, h=-2)
    )
    thumbs = (
        # round=up: a frame for every started interval, so ceil(duration / interval) frames
        # (the default rounding gives none at all for media shorter than half an interval).
        thumb_video.filter("fps", fps=f"1/{plan.thumb_interval_s:g}", round="up")
        .filter("scale", w=THUMB_W, h=THUMB_H, force_original_aspect_ratio="decrease")
        .filter("pad", w=THUMB_W, h=THUMB_H, x="(ow-iw)/2", y="(oh-ih)/2", color="black")
    )
    # Single frames now, the sprite after (make_sprite): a tile filter emits nothing until its
    # grid is full, and ffmpeg reports no progress until every output has begun.
    gop = max(1, int(plan.fps * KEYFRAME_INTERVAL_S))
    return [
        ffmpeg.output(
            main_video,
            main_audio,
            str(plan.outputs["rendition"]),
            vcodec="libx264",
            preset="veryfast",
            crf=26,
            g=gop,
            keyint_min=gop,
            sc_threshold=0,
            force_key_frames=f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S})",
            pix_fmt="yuv420p",
            profile="high",
            acodec="aac",
            audio_bitrate="96k",
            movflags="+faststart",
            f="mp4",
            map_metadata=-1,
            map_chapters=-1,
        ),
        ffmpeg.output(poster, str(plan.outputs["poster"]), vframes=1, q=3, f="image2", update=1),
        ffmpeg.output(
            thumbs,
            str(plan.outputs["thumb_frames"] / "%04d.jpg"),
            vframes=THUMB_MAX,
            q=5,
            f="image2",
        ),
        ffmpeg.output(
            wave_audio,
            str(plan.outputs["waveform_pcm"]),
            f="s16le",
            acodec="pcm_s16le",
            ar=WAVEFORM_RATE,
        ),
    ]


def run_ffmpeg(
    argv: list[str], *, total_s: float, timeout_s: float, on_progress: Callable[[float], None]
) -> None:
    """Run ffmpeg, reporting progress 0..1; kill it on timeout or when ``on_progress`` raises."""
    process = _spawn(argv)
    assert process.stdout is not None and process.stderr is not None
    # stderr is drained on its own thread: a damaged file can make ffmpeg log far more than a
    # pipe holds, and an undrained stderr would block it (and this loop) past any time limit.
    stderr_tail: collections.deque[bytes] = collections.deque(maxlen=64)
    drain = threading.Thread(
        target=lambda: stderr_tail.extend(iter(lambda: process.stderr.read(512), b"")),
        name="ffmpeg-stderr",
        daemon=True,
    )
    drain.start()
    # The time limit holds even when ffmpeg stalls without printing progress.
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _kill(process)

    watchdog = threading.Timer(timeout_s, expire)
    watchdog.daemon = True
    watchdog.start()
    latest = [0.0]

    def read_progress() -> None:
        for raw in process.stdout:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                latest[0] = min(max(int(value) / 1e6 / max(total_s, 0.001), 0.0), 1.0)

    reader = threading.Thread(target=read_progress, name="ffmpeg-progress", daemon=True)
    reader.start()
    try:
        # The callback runs every second whether or not ffmpeg prints: it renews the job's
        # lease and notices a revoke, and whatever it raises stops ffmpeg at once.
        while True:
            try:
                process.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                on_progress(latest[0])
        reader.join(timeout=10)
    finally:
        watchdog.cancel()
        _kill(process)
        drain.join(timeout=10)
        reader.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    if timed_out.is_set():
        raise MediaTimeout(say(M.TIME_LIMIT))
    if process.returncode != 0:
        log.info(
            "ffmpeg failed (%s): %s",
            process.returncode,
            b"".join(stderr_tail).decode(errors="replace")[-500:],
        )
        raise MediaRejected(say(M.NOT_CONVERTIBLE))


def make_sprite(plan: RenditionPlan, timeout_s: float = 120) -> None:
    """Tile the single thumbnails of the main run into one sprite image for the player."""
    frames = sorted(plan.outputs["thumb_frames"].glob("*.jpg"))
    if not frames:
        raise MediaRejected(say(M.NO_POSTER))
    plan.thumb_count = len(frames)
    plan.thumb_rows = math.ceil(len(frames) / THUMB_COLUMNS)
    # Our own JPEGs from the run above, read back with the image demuxer.
    argv = (
        ffmpeg.input(
            str(plan.outputs["thumb_frames"] / "%04d.jpg"),
            f="image2",
            framerate=1,
            protocol_whitelist="file",
        )
        .filter("tile", layout=f"{THUMB_COLUMNS}x{plan.thumb_rows}")
        .output(str(plan.outputs["thumbnails"]), vframes=1, q=5, f="image2", update=1)
        .global_args("-nostdin", "-hide_banner", "-v", "error")
        .overwrite_output()
        .compile(cmd=plan.ffmpeg_bin)
    )
    result = _run(argv, timeout_s)
    if result.returncode != 0 or not plan.outputs["thumbnails"].is_file():
        raise MediaRejected(say(M.NO_THUMBNAILS))


def waveform_peaks(pcm_path: Path, channels: int, duration_s: float) -> dict:
    """Per-channel peak amplitudes (0..1) in evenly spaced buckets, for the player.

    Plain ``array`` arithmetic, one bucket in memory at a time: numpy would add ~20 MiB to
    every worker process for a few thousand maxima.
    """
    frame_bytes = 2 * channels
    total_frames = pcm_path.stat().st_size // frame_bytes
    buckets = max(1, min(WAVEFORM_MAX_BUCKETS, int(duration_s * 20) or 1, total_frames or 1))
    per_bucket = max(1, math.ceil(total_frames / buckets)) if total_frames else 1
    peaks = [[0.0] * buckets for _ in range(channels)]
    with open(pcm_path, "rb") as handle:
        for bucket in range(buckets):
            raw = handle.read(per_bucket * frame_bytes)
            raw = raw[: len(raw) - len(raw) % frame_bytes]
            if not raw:
                break
            samples = array.array("h", raw)  # s16le
            if sys.byteorder == "big":
                samples.byteswap()
            for channel in range(channels):
                column = samples[channel::channels]
                peaks[channel][bucket] = max(max(column), -min(column)) / 32768.0
    return {
        "version": 1,
        "channels": channels,
        "buckets": buckets,
        "seconds_per_bucket": round(duration_s / buckets, 4),
        "duration_s": round(duration_s, 3),
        "peaks": [[round(v, 3) for v in row] for row in peaks],
    }
