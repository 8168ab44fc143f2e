"""Redaction suggestions (SPEC §12): OCR over a draft's screen, cover boxes over personal data.

Entry point: :func:`suggest_redactions`. ffmpeg samples the screen (every scene change, and a
frame a second otherwise) and streams the frames in grey to this process; tesseract (Debian's
``tesseract-ocr``, run through pytesseract, with the ``nor`` and ``eng`` data) reads the text;
``app.services.pii`` decides which words are personal data. A suggestion is a cover box with
the span it was on screen and a reason: never the text, which is not stored, logged or
returned.

A screen mostly stands still, so only what changed since the last sampled frame is read again:
the changed area, grown to the blank space around its lines of text (so whole words and
numbers are re-read), while the words read earlier everywhere else stay as they were. The
crops of a few sampled frames go to tesseract in one run. Crops and tesseract's output are
written only to a folder of their own under the caller's scratch directory, removed at the end
whatever happens.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import logging
import math
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytesseract

from app.services import job_messages as M
from app.services.job_messages import say
from app.services.pii import find_personal_data
from app.services.redaction import MAX_REDACTIONS
from worker import media

log = logging.getLogger(__name__)

TESSERACT = "tesseract"
LANGUAGES = ("nor", "eng")
# Sampling: a frame at every scene change (at most one per SCENE_MIN_GAP_S), and otherwise one
# every SAMPLE_EVERY_S while nothing changes enough to be a scene change.
SAMPLE_EVERY_S = 1.0
SCENE_THRESHOLD = 0.3
SCENE_MIN_GAP_S = 0.2
# Frames are read at most this large (a 4K screen is read at half size: its text stays legible).
OCR_MAX_WIDTH, OCR_MAX_HEIGHT = 1920, 1080
# tesseract processes side by side (each single-threaded)
OCR_PROCESSES = max(1, min(2, os.cpu_count() or 1))
FRAMES_PER_RUN = 60  # sampled frames with changes whose crops are read in one go...
# ...or fewer, once their crops hold this many pixels (two batches are held at a time: one
# being read, the next being sampled; together no more than 30 full frames, as before).
BATCH_MAX_PIXELS = 15 * OCR_MAX_WIDTH * OCR_MAX_HEIGHT
PAGE_SEGMENTATION = 11  # sparse text: a screen's labels, fields and panels, in any layout
# A pixel changed when its grey level moved this much (compression noise moves it less)...
CHANGE_LEVEL = 40
# ...and a 16×16 cell changed when this many of its pixels did.
CHANGE_PIXELS = 3
CELL = 16
# Ink: an edge this strong. Words are apart by less than WORD_GAP_PX of blank (at 1280 wide),
# so a crop grown to that much blank around it holds whole words and whole spaced numbers.
INK_LEVEL = 40
WORD_GAP_PX = 24
# Straight runs of ink longer than this are rules and panel borders, not text.
RULE_PX = 64
# A crop larger than this share of the frame: the whole frame is read instead.
FULL_FRAME_SHARE = 0.5
MATCH_IOU = 0.5  # the same box in consecutive samples


class OcrUnavailable(Exception):
    """Text recognition cannot run here: tesseract or its Norwegian/English data is missing.

    The message says what to install; the caller marks the suggestions ``failed`` with it
    (sharing works without suggestions).
    """


@dataclass
class _Word:
    x0: int
    y0: int
    x1: int
    y1: int
    text: str


@dataclass
class _Track:
    reason: str
    box: tuple[int, int, int, int]
    start_s: float
    seen: bool = True


@contextlib.contextmanager
def _tesseract(tesseract_bin: str) -> Iterator[None]:
    """pytesseract takes its binary from a module global: set it for one call, then put the
    previous one back, so that one job's setting is not left for everything after it."""
    previous = pytesseract.pytesseract.tesseract_cmd
    pytesseract.pytesseract.tesseract_cmd = tesseract_bin
    try:
        yield
    finally:
        pytesseract.pytesseract.tesseract_cmd = previous


def check_tesseract(tesseract_bin: str = TESSERACT) -> None:
    """Raise :class:`OcrUnavailable` unless tesseract runs and has the nor and eng data."""
    try:
        with _tesseract(tesseract_bin):
            languages = set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, FileNotFoundError, PermissionError):
        raise OcrUnavailable(
            f"Text recognition is not installed on this server ({tesseract_bin!r} not found): "
            "install tesseract-ocr, tesseract-ocr-nor and tesseract-ocr-eng."
        ) from None
    except (pytesseract.TesseractError, OSError) as exc:
        raise OcrUnavailable(f"Text recognition does not run on this server: {exc}") from None
    missing = [lang for lang in LANGUAGES if lang not in languages]
    if missing:
        packages = ", ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise OcrUnavailable(
            f"Text recognition lacks the {'+'.join(missing)} language data: install {packages}."
        )


def suggest_redactions(
    video: Path,
    container: str,
    scratch: Path,
    *,
    duration_s: float | None = None,
    ffmpeg_bin: str = media.FFMPEG,
    ffprobe_bin: str = media.FFPROBE,
    tesseract_bin: str = TESSERACT,
    timeout_s: float = 3600,
    on_progress: Callable[[float], None] | None = None,
    processes: int = OCR_PROCESSES,
) -> list[dict]:
    """Cover boxes over personal data on a local screen recording, with when they show.

    ``video`` is the draft's screen file (plaintext, in ``scratch``), ``container`` the one its
    upload was sniffed as (``matroska``, ``mp4``, ...): it is forced, as for the rendition.
    Returns at most 200 ``{"kind": "cover", "box": {x, y, w, h}, "start_s", "end_s",
    "reason"}`` in the recording's own timeline, ordered by time: a valid ``redactions`` list
    for the share, once the employee accepts them.

    Raises :class:`OcrUnavailable` (no tesseract or language data), ``media.MediaRejected``
    (not a readable video; ``media.MediaTimeout`` past ``timeout_s``). ``on_progress`` gets a
    fraction 0..1 now and then; whatever it raises stops the work. ``processes``: how many
    single-threaded tesseracts may run at once (two on a machine with two cores or more).
    """
    deadline = time.monotonic() + timeout_s
    check_tesseract(tesseract_bin)
    probe = media.probe(video, container, "screen", ffprobe_bin=ffprobe_bin, ffmpeg_bin=ffmpeg_bin)
    if not probe.has_video or not probe.width or not probe.height:
        raise media.MediaRejected(say(M.SCREEN_WITHOUT_VIDEO))
    length = duration_s or probe.duration_s or 0.0
    width, height = _ocr_size(probe.width, probe.height)
    work = scratch / f"ocr-{uuid.uuid4().hex}"
    work.mkdir(mode=0o700)
    try:
        reader = _Reader(work, tesseract_bin, deadline, processes)
        with contextlib.closing(
            _sample_frames(video, container, width, height, ffmpeg_bin, deadline)
        ) as frames:
            tracks = _read_and_track(frames, reader, length, on_progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _suggestions(tracks, width, height)[:MAX_REDACTIONS]


def _ocr_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, OCR_MAX_WIDTH / width, OCR_MAX_HEIGHT / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# --- sampling ----------------------------------------------------------------------------------

_PTS_TIME = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+)")


def _sample_frames(
    video: Path, container: str, width: int, height: int, ffmpeg_bin: str, deadline: float
):
    """Yield ``(t, grey frame)`` for each sampled frame, streamed from one ffmpeg run."""
    process = media._spawn(_sampling_argv(video, container, width, height, ffmpeg_bin))
    assert process.stdout is not None and process.stderr is not None
    times: queue.Queue[float | None] = queue.Queue()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    drain = threading.Thread(
        target=_read_times, args=(process, times, tail), name="ocr-ffmpeg-stderr", daemon=True
    )
    drain.start()
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), media._kill, (process,))
    watchdog.daemon = True
    watchdog.start()
    size = width * height
    stray = False  # a frame without its time (or the other way round): the run is unusable
    try:
        while len(raw := process.stdout.read(size)) == size:
            t = _next_time(times, deadline)
            if t is None:
                stray = True
                break
            yield max(0.0, t), np.frombuffer(raw, np.uint8).reshape(height, width)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        watchdog.cancel()
        media._kill(process)
        drain.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    if time.monotonic() >= deadline:
        raise media.MediaTimeout("Reading the screen for suggestions took too long.")
    if stray or process.returncode not in (0, None):
        log.info("ffmpeg failed sampling frames (%s): %s", process.returncode, list(tail)[-3:])
        raise media.MediaRejected(say(M.SCREEN_UNREADABLE_FOR_SUGGESTIONS))


def _sampling_argv(video: Path, container: str, width: int, height: int, ffmpeg_bin: str):
    """ffmpeg: the sampled frames in grey on stdout, each one's time from showinfo on stderr."""
    select = (
        f"isnan(prev_selected_t)+gte(t-prev_selected_t,{SAMPLE_EVERY_S:g})"
        f"+gt(scene,{SCENE_THRESHOLD:g})*gte(t-prev_selected_t,{SCENE_MIN_GAP_S:g})"
    )
    argv = [ffmpeg_bin, "-nostdin", "-hide_banner", "-nostats", "-v", "info"]
    for option, value in media._input_options(container).items():
        argv += [f"-{option}", str(value)]
    argv += ["-max_pixels", str(media.OUT_MAX_PIXELS_IN), "-i", str(video)]
    argv += ["-map", "0:v:0", "-an", "-sn", "-dn"]
    argv += ["-vf", f"select='{select}',scale={width}:{height},format=gray,showinfo"]
    argv += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    return argv


def _read_times(process, times: queue.Queue, tail: collections.deque) -> None:
    """The frames' times from showinfo's lines; other error lines kept (file errors only)."""
    for raw in process.stderr:
        line = raw.decode(errors="replace")
        match = _PTS_TIME.search(line)
        if match and "showinfo" in line:
            times.put(float(match.group(1)))
        elif "rror" in line:
            tail.append(line.strip()[:200])
    times.put(None)


def _next_time(times: queue.Queue, deadline: float) -> float | None:
    try:
        return times.get(timeout=max(1.0, deadline - time.monotonic()))
    except queue.Empty:
        return None


# --- what changed ------------------------------------------------------------------------------


def ink_map(frame: np.ndarray) -> np.ndarray:
    """Where a frame has edges (text, icons), less long straight rules and borders."""
    grey = frame.astype(np.int16)
    ink = np.zeros(frame.shape, bool)
    ink[:, 1:] |= np.abs(np.diff(grey, axis=1)) > INK_LEVEL
    ink[1:, :] |= np.abs(np.diff(grey, axis=0)) > INK_LEVEL
    return ink & ~_long_runs(ink) & ~_long_runs(ink.T).T


def _long_runs(ink: np.ndarray) -> np.ndarray:
    """Pixels in a vertical run of ink at least RULE_PX long (boolean shifts, doubling)."""
    n = ink.shape[0]
    if n < RULE_PX:
        return np.zeros_like(ink)
    full, length = ink, 1  # full[i]: ink all along rows i .. i + length - 1
    while length < RULE_PX:
        step = min(length, RULE_PX - length)
        full = full[:-step] & full[step:]
        length += step
    covered = np.zeros_like(ink)  # covered[j]: some full window holds row j
    covered[: len(full)] = full
    length = 1
    while length < RULE_PX:
        step = min(length, RULE_PX - length)
        shifted = covered.copy()
        shifted[step:] |= covered[:-step]
        covered = shifted
        length += step
    return covered


# Around a changed area, the ink is looked at within this margin (grown when a box reaches it).
_WINDOW_PX = 192


def changed_regions(
    previous: np.ndarray | None, current: np.ndarray
) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` to read again: what changed, grown to blank space around.

    None previous (the first frame): the whole frame.
    """
    height, width = current.shape
    full = [(0, 0, width, height)]
    if previous is None:
        return full
    moved = np.abs(current.astype(np.int16) - previous.astype(np.int16)) > CHANGE_LEVEL
    rows, cols = math.ceil(height / CELL), math.ceil(width / CELL)
    padded = np.zeros((rows * CELL, cols * CELL), bool)
    padded[:height, :width] = moved
    cells = padded.reshape(rows, CELL, cols, CELL).sum(axis=(1, 3)) >= CHANGE_PIXELS
    if not cells.any():
        return []
    gap = max(8, round(WORD_GAP_PX * width / 1280))
    boxes = []
    for r0, c0, r1, c1 in _components(cells):
        box = (c0 * CELL, r0 * CELL, min(width, (c1 + 1) * CELL), min(height, (r1 + 1) * CELL))
        margin = _WINDOW_PX
        while True:
            window = (
                max(0, box[0] - margin),
                max(0, box[1] - margin),
                min(width, box[2] + margin),
                min(height, box[3] + margin),
            )
            wx0, wy0, wx1, wy1 = window
            ink = ink_map(previous[wy0:wy1, wx0:wx1]) | ink_map(current[wy0:wy1, wx0:wx1])
            local = _grow((box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0), ink, gap)
            grown = (local[0] + wx0, local[1] + wy0, local[2] + wx0, local[3] + wy0)
            # the growth looks ``gap`` columns and one row past a box (plus its margin): a box
            # that near the window's edge may have had more to take beyond it
            across, down = gap + 4, 4
            touches = (
                (wx0 > 0 and grown[0] < wx0 + across)
                or (wy0 > 0 and grown[1] < wy0 + down)
                or (wx1 < width and grown[2] > wx1 - across)
                or (wy1 < height and grown[3] > wy1 - down)
            )
            if not touches:
                break
            margin *= 2
        boxes.append(grown)
    boxes = _merge(boxes)
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) > FULL_FRAME_SHARE * width * height:
        return full
    return boxes


def _components(cells: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (r0, c0, r1, c1) of the 8-connected groups of changed cells."""
    seen = np.zeros_like(cells)
    rows, cols = cells.shape
    found = []
    for r, c in zip(*np.nonzero(cells), strict=True):
        if seen[r, c]:
            continue
        seen[r, c] = True
        stack, r0, c0, r1, c1 = [(r, c)], r, c, r, c
        while stack:
            y, x = stack.pop()
            r0, c0, r1, c1 = min(r0, y), min(c0, x), max(r1, y), max(c1, x)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < rows and 0 <= nx < cols and cells[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        found.append((int(r0), int(c0), int(r1), int(c1)))
    return found


def _grow(box: tuple[int, int, int, int], ink: np.ndarray, gap: int):
    """Grow a box until blank rows above and below and ``gap`` blank columns either side."""
    height, width = ink.shape
    x0, y0, x1, y1 = box
    while True:
        before = (x0, y0, x1, y1)
        while y0 > 0 and ink[y0 - 1, x0:x1].any():
            y0 -= 1
        while y1 < height and ink[y1, x0:x1].any():
            y1 += 1
        left = ink[y0:y1, max(0, x0 - gap) : x0].any(axis=0)
        if left.any():
            x0 = max(0, x0 - gap) + int(np.argmax(left))
        right = ink[y0:y1, x1 : x1 + gap].any(axis=0)
        if right.any():
            x1 = x1 + len(right) - int(np.argmax(right[::-1]))
        if (x0, y0, x1, y1) == before:
            break
    margin = 3
    return (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(width, x1 + margin),
        min(height, y1 + margin),
    )


def _merge(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


# --- reading -----------------------------------------------------------------------------------


# Small crops are stacked into one page per tesseract run (a page costs layout analysis of its
# own): each keeps a border of its own edge pixels and a blank gap from the next.
STACK_MAX_CROP_HEIGHT = 160
STACK_MAX_HEIGHT = 2400
_STACK_BORDER, _STACK_GAP = 6, 16


@dataclass
class _Placement:
    crop: int
    page: int
    x: int
    y: int
    height: int


class _Reader:
    """Runs tesseract on crops, a few at a time, inside its own work folder.

    Each tesseract is single-threaded (``OMP_THREAD_LIMIT=1``: its OpenMP threads cost more
    CPU than they save on small pages); up to ``processes`` of them run side by side instead.
    """

    def __init__(self, work: Path, tesseract_bin: str, deadline: float, processes: int) -> None:
        self.work = work
        self.tesseract_bin = tesseract_bin
        self.deadline = deadline
        self.processes = max(1, processes)
        self.runs = 0
        self.pages = 0
        # pytesseract starts tesseract with this process's environment (os.environ itself).
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    def read(self, crops: list[np.ndarray]) -> list[list[_Word]]:
        """The words of each crop, in the crop's own pixels."""
        if not crops:
            return []
        pages, placements = _pages(crops, self.processes)
        groups = _balance(pages, self.processes)
        self.runs += len(groups)
        self.pages += len(pages)
        page_words: list[list[_Word]] = [[] for _ in pages]
        with ThreadPoolExecutor(len(groups), thread_name_prefix="tesseract") as pool:
            runs = [
                pool.submit(self._run, f"{tag}", [pages[i] for i in group])
                for tag, group in enumerate(groups)
            ]
            for group, run in zip(groups, runs, strict=True):
                for index, found in zip(group, run.result(), strict=True):
                    page_words[index] = found
        words: list[list[_Word]] = [[] for _ in crops]
        for page, found in enumerate(page_words):
            spots = [p for p in placements if p.page == page]
            for word in found:
                middle = (word.y0 + word.y1) / 2
                spot = next((p for p in spots if p.y <= middle < p.y + p.height), None)
                if spot is None:
                    continue  # read in a gap between crops: nothing of theirs
                height, width = crops[spot.crop].shape
                x0, y0 = max(0, word.x0 - spot.x), max(0, word.y0 - spot.y)
                x1, y1 = min(width, word.x1 - spot.x), min(height, word.y1 - spot.y)
                if x1 > x0 and y1 > y0:
                    words[spot.crop].append(_Word(x0, y0, x1, y1, word.text))
        return words

    def _run(self, tag: str, pages: list[np.ndarray]) -> list[list[_Word]]:
        """One tesseract over ``pages``; the words of each. Its files are removed after."""
        paths = []
        try:
            for index, page in enumerate(pages):
                path = self.work / f"page-{tag}-{index:03d}.pgm"
                height, width = page.shape
                path.write_bytes(f"P5\n{width} {height}\n255\n".encode() + page.tobytes())
                paths.append(path)
            listing = self.work / f"pages-{tag}.txt"
            listing.write_text("".join(f"{p}\n" for p in paths))
            paths.append(listing)
            base = self.work / f"words-{tag}"
            paths.append(base.with_suffix(".tsv"))
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise media.MediaTimeout("Reading the screen for suggestions took too long.")
            try:
                with _tesseract(self.tesseract_bin):
                    pytesseract.pytesseract.run_tesseract(
                        str(listing if len(pages) > 1 else paths[0]),
                        str(base),
                        extension="tsv",
                        lang="+".join(LANGUAGES),
                        config=f"--psm {PAGE_SEGMENTATION} -c tessedit_create_tsv=1",
                        timeout=max(1, int(remaining)),
                    )
            except pytesseract.TesseractNotFoundError:
                raise OcrUnavailable("Text recognition (tesseract) is not installed.") from None
            except RuntimeError as exc:  # pytesseract's timeout
                if "timeout" in str(exc).lower():
                    raise media.MediaTimeout(
                        "Reading the screen for suggestions took too long."
                    ) from None
                raise
            return _parse_tsv(base.with_suffix(".tsv").read_text(errors="replace"), len(pages))
        finally:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _balance(pages: list[np.ndarray], processes: int) -> list[list[int]]:
    """Pages split into at most ``processes`` groups of about equal area, largest first."""
    groups: list[list[int]] = [[] for _ in range(min(processes, len(pages)))]
    areas = [0] * len(groups)
    for index in sorted(range(len(pages)), key=lambda i: -pages[i].size):
        lightest = areas.index(min(areas))
        groups[lightest].append(index)
        areas[lightest] += pages[index].size
    return [sorted(group) for group in groups if group]


def _dark_on_light(crop: np.ndarray) -> np.ndarray:
    """A crop of light text on a dark ground, inverted, and its contrast stretched: every crop
    on a stacked page then has dark text on white, as tesseract reads a page best."""
    edges = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    if np.median(edges) < 128:
        crop = 255 - crop
    low, high = int(crop.min()), int(crop.max())
    if high - low < 16:
        return crop
    stretched = (crop.astype(np.int32) - low) * 255 // (high - low)
    return stretched.astype(np.uint8)


def _pages(crops: list[np.ndarray], stacks: int = 1) -> tuple[list[np.ndarray], list[_Placement]]:
    """Large crops as pages of their own; small ones stacked (dealt round ``stacks`` stacks, so
    that several tesseracts share them), each with a border of its own edge pixels (the ground
    it stands on) and a white gap between them."""
    pages: list[np.ndarray] = []
    placements: list[_Placement] = []
    piles: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(max(1, stacks))]
    small = 0
    for index, crop in enumerate(crops):
        crop = _dark_on_light(crop)
        if crop.shape[0] > STACK_MAX_CROP_HEIGHT:
            placements.append(_Placement(index, len(pages), 0, 0, crop.shape[0]))
            pages.append(np.ascontiguousarray(crop))
        else:
            piles[small % len(piles)].append((index, crop))
            small += 1
    for pile in piles:
        while pile:
            stack, height = [], 0
            while pile and (not stack or height < STACK_MAX_HEIGHT):
                index, crop = pile.pop(0)
                stack.append((index, crop))
                height += crop.shape[0] + 2 * _STACK_BORDER + _STACK_GAP
            width = max(c.shape[1] for _, c in stack) + 2 * _STACK_BORDER
            page = np.full((height, width), 255, np.uint8)
            y = 0
            for index, crop in stack:
                bordered = np.pad(crop, _STACK_BORDER, mode="edge")
                page[y : y + bordered.shape[0], : bordered.shape[1]] = bordered
                placements.append(
                    _Placement(index, len(pages), _STACK_BORDER, y + _STACK_BORDER, crop.shape[0])
                )
                y += bordered.shape[0] + _STACK_GAP
            pages.append(page)
    return pages, placements


def _parse_tsv(text: str, pages: int) -> list[list[_Word]]:
    words: list[list[_Word]] = [[] for _ in range(pages)]
    rows = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in rows:
        content = (row.get("text") or "").strip()
        if row.get("level") != "5" or not content:
            continue
        page = int(row["page_num"]) - 1
        if not 0 <= page < pages:
            continue
        left, top = int(row["left"]), int(row["top"])
        words[page].append(
            _Word(left, top, left + int(row["width"]), top + int(row["height"]), content)
        )
    return words


# --- from words to suggestions -----------------------------------------------------------------


def find_boxes(words: list[_Word]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Personal data among the words on screen: ``(reason, pixel box)`` for each finding.

    Words are put back into lines by where they stand (OCR's own line numbering breaks at
    columns and fragments); within a line, a wide blank starts a new phrase.
    """
    found = []
    for phrase in _phrases(words):
        text, spans = "", []
        for word in phrase:
            if text:
                text += " "
            spans.append((len(text), len(text) + len(word.text)))
            text += word.text
        for finding in find_personal_data(text):
            hit = [
                w
                for w, (a, b) in zip(phrase, spans, strict=True)
                if a < finding.end and finding.start < b
            ]
            box = (
                min(w.x0 for w in hit),
                min(w.y0 for w in hit),
                max(w.x1 for w in hit),
                max(w.y1 for w in hit),
            )
            found.append((finding.reason, box))
    return found


def _phrases(words: list[_Word]) -> list[list[_Word]]:
    lines: list[list[_Word]] = []
    for word in sorted(words, key=lambda w: (w.y0 + w.y1) / 2):
        middle = (word.y0 + word.y1) / 2
        for line in lines:
            top = min(w.y0 for w in line)
            bottom = max(w.y1 for w in line)
            if top <= middle <= bottom:
                line.append(word)
                break
        else:
            lines.append([word])
    phrases = []
    for line in lines:
        line.sort(key=lambda w: w.x0)
        height = max(w.y1 - w.y0 for w in line)
        phrase = [line[0]]
        for word in line[1:]:
            if word.x0 - phrase[-1].x1 > 2 * height:
                phrases.append(phrase)
                phrase = []
            phrase.append(word)
        phrases.append(phrase)
    return phrases


def _read_and_track(frames, reader: _Reader, length: float, on_progress):
    """Sampled frames to tracks of findings. A batch's crops are read by tesseract while the
    next batch is sampled and compared (ffmpeg and numpy meanwhile use the other CPU); the
    batches are taken up in order, so the words on screen are known frame after frame."""
    words: list[_Word] = []
    previous: np.ndarray | None = None
    tracks: list[_Track] = []
    closed: list[tuple[_Track, float]] = []
    last_t = 0.0
    detections: list[tuple[str, tuple[int, int, int, int]]] = []

    def advance(batch, read_words) -> None:
        nonlocal words, last_t, detections
        read = iter(read_words)
        for t, crops in batch:
            if crops:
                for (x0, y0, x1, y1), _crop in crops:
                    words = [
                        w
                        for w in words
                        if not (w.x0 < x1 and x0 < w.x1 and w.y0 < y1 and y0 < w.y1)
                    ]
                    words += [
                        _Word(w.x0 + x0, w.y0 + y0, w.x1 + x0, w.y1 + y0, w.text)
                        for w in next(read)
                    ]
                detections = find_boxes(words)
            _track(tracks, closed, detections, t, last_t)
            last_t = t
        if on_progress is not None and length:
            on_progress(min(1.0, last_t / length))

    def crops_of(batch) -> list[np.ndarray]:
        return [crop for _t, crops in batch for _box, crop in crops]

    # Only the crops of a batch are kept (copies: the frame they come from is let go).
    batch: list = []
    with ThreadPoolExecutor(1, thread_name_prefix="ocr-batch") as pool:
        pending = None  # (batch, the words of its crops, being read)
        for t, frame in frames:
            regions = changed_regions(previous, frame)
            batch.append(
                (t, [((x0, y0, x1, y1), frame[y0:y1, x0:x1].copy()) for x0, y0, x1, y1 in regions])
            )
            previous = frame
            if (
                sum(1 for _t, crops in batch if crops) >= FRAMES_PER_RUN
                or sum(crop.size for _t, crops in batch for _box, crop in crops) >= BATCH_MAX_PIXELS
            ):
                if pending is not None:
                    advance(pending[0], pending[1].result())
                pending = (batch, pool.submit(reader.read, crops_of(batch)))
                batch = []
        if pending is not None:
            advance(pending[0], pending[1].result())
    advance(batch, reader.read(crops_of(batch)))
    end = length or last_t
    return [(track, min(t, end)) for track, t in closed] + [(track, end) for track in tracks]


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _track(tracks: list[_Track], closed: list, detections, t: float, previous_t: float) -> None:
    """Extend the tracks seen again at ``t``; end the others at ``t``; start new ones.

    A new one starts at the previous sample: it may have shown up any time after it.
    """
    for track in tracks:
        track.seen = False
    for reason, box in detections:
        match = next(
            (
                track
                for track in tracks
                if not track.seen and track.reason == reason and _iou(track.box, box) >= MATCH_IOU
            ),
            None,
        )
        if match is None:
            tracks.append(_Track(reason, box, previous_t))
        else:
            match.seen = True
            match.box = (
                min(match.box[0], box[0]),
                min(match.box[1], box[1]),
                max(match.box[2], box[2]),
                max(match.box[3], box[3]),
            )
    for track in [track for track in tracks if not track.seen]:
        tracks.remove(track)
        closed.append((track, t))


def _suggestions(tracks, width: int, height: int) -> list[dict]:
    out = []
    for track, end in sorted(tracks, key=lambda item: (item[0].start_s, item[0].box)):
        x0, y0, x1, y1 = track.box
        pad = max(2, round(0.25 * (y1 - y0)))
        left = math.floor(max(0, x0 - pad) / width * 1e4) / 1e4
        top = math.floor(max(0, y0 - pad) / height * 1e4) / 1e4
        right = min(1.0, math.ceil(min(width, x1 + pad) / width * 1e4) / 1e4)
        bottom = min(1.0, math.ceil(min(height, y1 + pad) / height * 1e4) / 1e4)
        if end <= track.start_s:
            continue
        out.append(
            {
                "kind": "cover",
                "box": {
                    "x": left,
                    "y": top,
                    "w": round(right - left, 4),
                    "h": round(bottom - top, 4),
                },
                "start_s": round(track.start_s, 3),
                "end_s": round(end, 3),
                "reason": track.reason,
            }
        )
    return out
