"""worker.media on real ffprobe/ffmpeg: hostile inputs, limits, and the run's own safety.

No database, broker or store here: these call the media layer directly on generated files,
so each property is pinned to the one function that must hold it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.conftest import ROOT, wait_for
from tests.worker import corpus
from worker import media

LIMITS = media.Limits(
    max_duration_s=4 * 3600, max_width=7680, max_height=4320, max_fps=120, timeout_s=120
)


class FifoWatch:
    """A named pipe standing in for a secret file: records whether anything opened it.

    A writer's non-blocking open of a FIFO succeeds only while some process has it open for
    reading, so polling that open from a thread sees any reader, however briefly it stays.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.001)
                continue
            self.opened += 1
            os.close(fd)  # the reader sees end of file at once
            time.sleep(0.01)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.05)
        self._stop.set()
        self._thread.join(5)


def ffprobe_json(path: Path, *args: str) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def plan_for(tmp_path: Path, screen: Path | None, audio: Path | None = None, **choices):
    screen_probe = media.probe(screen, "matroska", "screen") if screen else None
    audio_probe = media.probe(audio, "wav", "audio") if audio else None
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    return media.plan_rendition(
        screen=screen,
        screen_probe=screen_probe,
        audio=audio,
        audio_probe=audio_probe,
        agent_channel=choices.get("agent_channel", "left"),
        include_customer=choices.get("include_customer", False),
        trim_start_s=choices.get("trim_start_s"),
        trim_end_s=choices.get("trim_end_s"),
        out_dir=out,
    )


# --- local files named by the input must never be read -----------------------------------------


@pytest.mark.parametrize(
    ("make", "demuxer_args"),
    [
        (corpus.hls_playlist, ["-f", "hls"]),
        (corpus.concat_playlist, ["-f", "concat", "-safe", "0"]),
    ],
    ids=["hls", "concat"],
)
def test_playlists_never_open_the_files_they_name(tmp_path, make, demuxer_args):
    secret = tmp_path / "segment.ts"  # an extension the HLS demuxer would accept
    playlist = make(tmp_path, str(secret))
    with FifoWatch(secret) as watch:
        # Control: with the demuxer the playlist was written for, ffprobe does open the file.
        subprocess.run(
            [
                *("ffprobe", "-v", "quiet", *demuxer_args),
                *("-protocol_whitelist", "file", "-i", str(playlist)),
            ],
            capture_output=True,
            timeout=30,
        )
        wait_for(lambda: watch.opened, 5, "the control run to open the named file")
        control_opens = watch.opened

        # The worker forces the container it sniffed and whitelists demuxers and protocols.
        for container in ("mp4", "matroska", "wav", "ogg", "mp3", "aac"):
            with pytest.raises(media.MediaRejected, match="could not be read"):
                media.probe(playlist, container, "screen")
            with pytest.raises(media.MediaRejected):
                media.measure_duration(playlist, container, "screen")
    assert watch.opened == control_opens, "a forced demuxer followed the playlist"


def test_playlists_naming_etc_passwd_are_refused(tmp_path):
    for playlist in (corpus.hls_playlist(tmp_path), corpus.concat_playlist(tmp_path)):
        assert b"/etc/passwd" in playlist.read_bytes()
        for container in ("mp4", "matroska"):
            with pytest.raises(media.MediaRejected, match="screen file could not be read"):
                media.probe(playlist, container, "screen")


def test_mp4_external_data_reference_is_never_followed(tmp_path):
    secret = tmp_path / "secret.mov"
    crafted = corpus.external_reference_mp4(tmp_path, str(secret))
    with FifoWatch(secret) as watch:
        # Control: the crafted alias is real: with drefs enabled, ffprobe opens the target.
        subprocess.run(
            [
                *("ffprobe", "-v", "quiet", "-f", "mov"),
                *("-enable_drefs", "1", "-use_absolute_path", "1", "-i", str(crafted)),
            ],
            capture_output=True,
            timeout=30,
        )
        wait_for(lambda: watch.opened, 5, "the control run to open the referenced file")
        control_opens = watch.opened

        probe = media.probe(crafted, "mp4", "screen")  # the header itself is readable
        plan = media.plan_rendition(
            screen=crafted,
            screen_probe=probe,
            audio=None,
            audio_probe=None,
            agent_channel="left",
            include_customer=False,
            trim_start_s=None,
            trim_end_s=None,
            out_dir=tmp_path,
        )
        # ...but the samples it points at are never fetched, so the conversion fails cleanly.
        with pytest.raises(media.MediaRejected, match="could not be converted"):
            media.run_ffmpeg(
                media.build_command(plan), total_s=plan.duration_s, timeout_s=60, on_progress=print
            )
    assert watch.opened == control_opens


def test_every_input_is_forced_and_whitelisted(tmp_path, samples):
    plan = plan_for(tmp_path, samples.screen_webm, samples.call_wav)
    argv = media.build_command(plan)
    files = [
        i
        for i, arg in enumerate(argv)
        if arg == "-i" and not argv[i + 1].startswith(("color", "anull"))
    ]
    assert len(files) == 2
    for index in files:
        # the options that apply to an input are the ones since the previous -i
        start = max((i for i in files if i < index), default=0)
        options = argv[start:index]
        assert options[options.index("-f") + 1] in {"matroska", "wav"}
        assert options[options.index("-protocol_whitelist") + 1] == "file"
        assert options[options.index("-format_whitelist") + 1] == media.DEMUXER_WHITELIST
    assert not any(p in " ".join(argv) for p in ("http", "tcp:", "-safe", "enable_drefs"))


# --- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [corpus.huge_picture_raw, corpus.huge_picture_vp8])
def test_declared_picture_size_is_refused_naming_it(tmp_path, make):
    path = make(tmp_path)
    probe = media.probe(path, "matroska", "screen")
    with pytest.raises(media.MediaRejected, match="30000×30000; the largest accepted is 7680×4320"):
        media.check_limits(probe, "screen", LIMITS)


def test_ten_hour_audio_is_refused_by_the_duration_limit(tmp_path):
    probe = media.probe(corpus.ten_hour_wav(tmp_path), "wav", "audio")
    assert probe.duration_s == pytest.approx(36000)
    with pytest.raises(media.MediaRejected, match=r"audio file lasts 10\.0 h; the limit is 4\.0 h"):
        media.check_limits(probe, "audio", LIMITS)


def test_a_within_limits_file_passes(samples):
    probe = media.probe(samples.screen_webm, "matroska", "screen")
    media.check_limits(probe, "screen", LIMITS)
    assert (probe.width, probe.height, probe.fps) == (640, 360, 30)


def test_mediarecorder_webm_gets_its_length_and_rate_measured(tmp_path):
    path = corpus.mediarecorder_webm(tmp_path, seconds=4)
    raw = ffprobe_json(path, "-show_format", "-show_streams")
    # The fixture is what a browser writes: no length, and a frame rate only as a time base.
    assert "duration" not in raw["format"]
    video = next(s for s in raw["streams"] if s["codec_type"] == "video")
    assert video["avg_frame_rate"] == "0/0" and video["r_frame_rate"] == "1000/1"

    probe = media.probe(path, "matroska", "screen")
    assert probe.duration_s == pytest.approx(4.0, abs=0.25)
    assert probe.fps == pytest.approx(25, abs=1.5)  # 100 frames in 4 s, not the 1 kHz time base
    media.check_limits(probe, "screen", LIMITS)


def test_files_without_media_are_refused(tmp_path):
    for path, container in (
        (corpus.zero_bytes(tmp_path), "matroska"),
        (corpus.random_bytes(tmp_path), "matroska"),
        (corpus.noise_after_magic(tmp_path), "matroska"),
        (corpus.truncated_mp4(tmp_path), "mp4"),
    ):
        with pytest.raises(media.MediaRejected, match="could not be read as audio or video"):
            media.probe(path, container, "screen")


def test_audio_only_file_as_screen_has_no_video(tmp_path):
    path = corpus.audio_only(tmp_path)
    probe = media.probe(path, "wav", "screen")
    assert not probe.has_video and probe.has_audio
    with pytest.raises(media.MediaRejected, match="screen file has no video"):
        media.plan_rendition(
            screen=path,
            screen_probe=probe,
            audio=None,
            audio_probe=None,
            agent_channel="left",
            include_customer=False,
            trim_start_s=None,
            trim_end_s=None,
            out_dir=tmp_path,
        )


# --- the rendition run -------------------------------------------------------------------------


def sprite_tiles_with_picture(path: Path) -> list[bool]:
    """Which 160×90 tiles of the thumbnail sprite hold a picture (the rest are black pad)."""
    info = ffprobe_json(path, "-show_streams")["streams"][0]
    width, height = info["width"], info["height"]
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    image = np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
    tiles = []
    for row in range(height // media.THUMB_H):
        for col in range(width // media.THUMB_W):
            tile = image[
                row * media.THUMB_H : (row + 1) * media.THUMB_H,
                col * media.THUMB_W : (col + 1) * media.THUMB_W,
            ]
            tiles.append(float(tile.mean()) > 20)
    return tiles


@pytest.mark.parametrize("seconds", [0.6, 2.1])  # no thumbnail / one too few, before
def test_short_media_gets_poster_and_a_full_thumbnail_sprite(tmp_path, seconds):
    screen = tmp_path / "short.webm"
    corpus.ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s=640x360:r=30:d={seconds}"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"),
        str(screen),
    )
    plan = plan_for(tmp_path, screen)
    media.run_ffmpeg(
        media.build_command(plan), total_s=plan.duration_s, timeout_s=60, on_progress=lambda f: None
    )
    media.make_sprite(plan)
    for key in ("rendition", "poster", "thumbnails"):
        assert plan.outputs[key].stat().st_size > 0, key
    assert plan.thumb_count == math.ceil(seconds / plan.thumb_interval_s)
    tiles = sprite_tiles_with_picture(plan.outputs["thumbnails"])
    assert len(tiles) == media.THUMB_COLUMNS * plan.thumb_rows
    # exactly the announced number of thumbnails, in order, the rest left black
    assert tiles == [True] * plan.thumb_count + [False] * (len(tiles) - plan.thumb_count)


def test_a_file_that_floods_stderr_does_not_wedge_the_run(tmp_path):
    """Decode errors on every frame: far more log than a pipe holds."""
    chatty = corpus.chatty_corrupt_h264(tmp_path, seconds=40)
    flood = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(chatty), "-f", "null", "-"],
        capture_output=True,
        timeout=120,
    ).stderr
    assert len(flood) > 128 * 1024  # the fixture does flood
    plan = plan_for(tmp_path, chatty)
    done: list[object] = []

    def convert() -> None:
        try:
            media.run_ffmpeg(
                media.build_command(plan),
                total_s=plan.duration_s,
                timeout_s=90,
                on_progress=lambda f: None,
            )
            done.append("ok")
        except media.MediaRejected as exc:
            done.append(exc)

    thread = threading.Thread(target=convert, daemon=True)
    thread.start()
    thread.join(100)
    if thread.is_alive():
        _kill_ffmpeg_using(tmp_path)
        pytest.fail("run_ffmpeg hung on a file that floods stderr (and ignored its time limit)")
    assert done == ["ok"], done  # concealed errors still make a rendition


def test_time_limit_holds_when_ffmpeg_prints_nothing(tmp_path):
    stuck = tmp_path / "never-written.fifo"
    os.mkfifo(stuck)  # opening it for reading blocks until a writer comes: none will
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-progress", "pipe:1", "-f", "wav", "-i"]
    argv += [str(stuck), "-f", "null", "-"]
    raised: list[BaseException] = []

    def run() -> None:
        try:
            media.run_ffmpeg(argv, total_s=10, timeout_s=1.5, on_progress=lambda f: None)
        except BaseException as exc:
            raised.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        _kill_ffmpeg_using(tmp_path)
        pytest.fail("run_ffmpeg waited past its time limit for an ffmpeg that printed nothing")
    assert len(raised) == 1 and isinstance(raised[0], media.MediaTimeout), raised
    assert time.monotonic() - started < 10
    assert not _ffmpeg_using(tmp_path)


def test_progress_callback_can_stop_the_run(tmp_path, samples, monkeypatch):
    plan = plan_for(tmp_path, samples.screen_webm, samples.call_wav)
    # Called every 10 ms while ffmpeg runs, so even a fast machine's short run is caught.
    monkeypatch.setattr(media, "PROGRESS_EVERY_S", 0.01)

    class Stop(Exception):
        pass

    def stop(fraction: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        media.run_ffmpeg(
            media.build_command(plan), total_s=plan.duration_s, timeout_s=60, on_progress=stop
        )
    wait_for(lambda: not _ffmpeg_using(tmp_path), 10, "ffmpeg to be killed")


def test_ffmpeg_dies_with_a_killed_worker(tmp_path):
    """A worker killed by the hard time limit or the OOM killer must not leave ffmpeg running."""
    script = (
        "import sys\n"
        "from worker import media\n"
        "argv = ['ffmpeg', '-nostdin', '-v', 'error', '-progress', 'pipe:1', '-stats_period',\n"
        "        '0.2', '-f', 'lavfi', '-re', '-i', 'testsrc2=s=320x240:r=15:d=300', '-f',\n"
        f"        'null', '{tmp_path}/sink']\n"
        "media.run_ffmpeg(argv, total_s=300, timeout_s=300,\n"
        "                 on_progress=lambda f: print('progress', f, flush=True))\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().startswith("progress")
        children = [p for p in psutil.Process(parent.pid).children() if p.name() == "ffmpeg"]
        assert len(children) == 1
        ffmpeg_process = children[0]
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, _alive = psutil.wait_procs([ffmpeg_process], timeout=10)
        assert gone, "ffmpeg outlived the process that ran it"
    finally:
        parent.kill()
        _kill_ffmpeg_using(tmp_path)


def test_waveform_peaks_per_channel(tmp_path):
    rate, seconds = media.WAVEFORM_RATE, 4
    t = np.arange(rate * seconds) / rate
    left = 0.5 * np.sin(2 * np.pi * 50 * t)
    right = 0.25 * np.sin(2 * np.pi * 50 * t)
    right[: len(t) // 2] = 0  # silent first half
    pcm = np.stack([left, right], axis=1)
    path = tmp_path / "w.pcm"
    path.write_bytes((pcm * 32767).astype("<i2").tobytes())
    wave = media.waveform_peaks(path, 2, seconds)
    assert wave["channels"] == 2 and wave["buckets"] == seconds * 20
    peaks = np.array(wave["peaks"])
    assert peaks.shape == (2, seconds * 20)
    assert np.allclose(peaks[0], 0.5, atol=0.02)
    half = peaks.shape[1] // 2
    assert np.all(peaks[1, :half] == 0)
    assert np.allclose(peaks[1, half:], 0.25, atol=0.02)


# --- helpers -----------------------------------------------------------------------------------


def _ffmpeg_using(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] in {"ffmpeg", "ffprobe"} and str(folder) in cmdline:
            found.append(process)
    return found


def _kill_ffmpeg_using(folder: Path) -> None:
    for process in _ffmpeg_using(folder):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def test_progress_is_reported_during_the_transcode_not_only_at_the_end(tmp_path):
    """The callback runs while ffmpeg works (it renews the job's lease and notices a revoke),
    and the progress it gets rises before the end."""
    screen = tmp_path / "long.webm"
    corpus.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=40"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M"),
        str(screen),
    )
    plan = plan_for(tmp_path, screen)
    seen: list[float] = []
    media.run_ffmpeg(
        media.build_command(plan), total_s=plan.duration_s, timeout_s=300, on_progress=seen.append
    )
    assert len(seen) >= 2, seen
    assert any(0.05 < value < 0.95 for value in seen), seen


def test_the_ffmpeg_and_ffprobe_named_are_the_ones_run(tmp_path, samples):
    """CR_FFMPEG / CR_FFPROBE reach the media layer as parameters (Settings.ffmpeg/ffprobe)."""
    calls = tmp_path / "calls.log"
    wrappers = {}
    for name in ("ffmpeg", "ffprobe"):
        wrapper = tmp_path / f"site-{name}"
        wrapper.write_text(f'#!/bin/sh\necho {name} >> "{calls}"\nexec {shutil.which(name)} "$@"\n')
        wrapper.chmod(0o755)
        wrappers[name] = str(wrapper)
    probe = media.probe(samples.screen_webm, "matroska", "screen", ffprobe_bin=wrappers["ffprobe"])
    assert calls.read_text().split() == ["ffprobe"]
    assert media.measure_duration(
        samples.screen_webm, "matroska", "screen", ffmpeg_bin=wrappers["ffmpeg"]
    ) == pytest.approx(probe.duration_s, abs=0.1)
    out = tmp_path / "out"
    out.mkdir()
    plan = media.plan_rendition(
        screen=samples.screen_webm,
        screen_probe=probe,
        audio=None,
        audio_probe=None,
        agent_channel="left",
        include_customer=False,
        trim_start_s=0,
        trim_end_s=1.5,
        out_dir=out,
        ffmpeg_bin=wrappers["ffmpeg"],
        ffprobe_bin=wrappers["ffprobe"],
    )
    argv = media.build_command(plan)
    assert argv[0] == wrappers["ffmpeg"]
    media.run_ffmpeg(argv, total_s=plan.duration_s, timeout_s=60, on_progress=lambda f: None)
    media.make_sprite(plan)
    assert calls.read_text().split() == ["ffprobe", "ffmpeg", "ffmpeg", "ffmpeg"]
    # and a plan made without naming them runs the ones on PATH, as before
    assert media.build_command(plan_for(tmp_path / "default", samples.screen_webm))[0] == "ffmpeg"


# --- total pixels (issue 12, finding 7) ---------------------------------------------------------


def test_total_pixels_are_bounded_where_no_single_limit_is(tmp_path):
    """60 s of 7680×4320 at 120 fps is within the size, frame-rate and length limits, and
    costs minutes of a worker: the default total (CR_MAX_TOTAL_PIXELS, 200G) refuses it."""
    from app.config import load_settings

    default = load_settings({"CR_INSTANCE_DIR": str(tmp_path)})
    limits = media.Limits(
        max_duration_s=4 * 3600,
        max_width=7680,
        max_height=4320,
        max_fps=120,
        timeout_s=120,
        max_total_pixels=default.max_total_pixels,
    )
    huge = media.Probe(
        container="matroska", duration_s=60, width=7680, height=4320, fps=120, video_streams=1
    )
    with pytest.raises(media.MediaRejected) as refused:
        media.check_limits(huge, "screen", limits)
    message = str(refused.value)
    assert "7680×4320 at 120 frames per second for 60 s" in message and "limit" in message
    # An hour of a full-HD screen at the recorder's 15 fps is fine.
    hour = media.Probe(
        container="matroska", duration_s=3600, width=1920, height=1080, fps=15, video_streams=1
    )
    media.check_limits(hour, "screen", limits)


def test_total_pixels_of_a_real_file_are_checked_at_probe(tmp_path):
    path = tmp_path / "fast.mkv"
    corpus.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=640x360:r=120:d=2"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"),
        str(path),
    )
    probe = media.probe(path, "matroska", "screen")
    total = 640 * 360 * 120 * 2
    below = dataclasses.replace(LIMITS, max_total_pixels=total * 0.9)
    with pytest.raises(media.MediaRejected, match="too much to process"):
        media.check_limits(probe, "screen", below)
    media.check_limits(probe, "screen", dataclasses.replace(LIMITS, max_total_pixels=total * 1.2))


def test_the_job_and_the_probe_use_the_setting(rt):
    from worker import pipeline

    assert pipeline._limits(rt).max_total_pixels == rt.settings.max_total_pixels == 200 * 10**9
