"""Hostile and awkward media, generated on the spot with ffmpeg and a few byte-level edits.

Each generator writes one file into ``folder`` and returns its path. Nothing here is random
at run time (seeded generators only), so a failure reproduces. The byte-level helpers walk
Matroska/EBML elements and ISO-BMFF (MP4) boxes just far enough to patch or find them.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.samples import AGENT_HZ, CUSTOMER_HZ

CANARY = b"CANARY-7f3a9c-do-not-store-in-the-clear"


def ffmpeg(*args: str) -> None:
    # The timeout only bounds waiting for a fixture: on a loaded machine making a 40 s 720p
    # input took longer than two minutes.
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=600)


# --- Matroska / EBML --------------------------------------------------------------------------

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
SEGMENT, INFO, TRACKS, TRACK_ENTRY, VIDEO, CLUSTER = (
    0x18538067,
    0x1549A966,
    0x1654AE6B,
    0xAE,
    0xE0,
    0x1F43B675,
)
DURATION, DEFAULT_DURATION, PIXEL_WIDTH, PIXEL_HEIGHT, VOID = (
    0x4489,
    0x23E383,
    0xB0,
    0xBA,
    0xEC,
)
_EBML_MASTERS = {SEGMENT, INFO, TRACKS, TRACK_ENTRY, VIDEO, CLUSTER}


def _vint(buf: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int]:
    first = buf[pos]
    length, mask = 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise ValueError(f"invalid EBML length at {pos}")
    value = first if keep_marker else first & (mask - 1)
    for byte in buf[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return value, length


def ebml_elements(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple]:
    """(element id, start of element, start of data, data size or None if unknown), depth-first."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        element, id_len = _vint(buf, pos, keep_marker=True)
        size, size_len = _vint(buf, pos + id_len, keep_marker=False)
        unknown = size == (1 << (7 * size_len)) - 1
        data = pos + id_len + size_len
        yield element, pos, data, None if unknown else size
        if element in _EBML_MASTERS:
            yield from ebml_elements(buf, data, end if unknown else data + size)
        if unknown:
            return
        pos = data + size


def ebml_void(buf: bytes, element_id: int) -> bytes:
    """Overwrite every element ``element_id`` with a Void element of the same length."""
    out = bytearray(buf)
    found = 0
    for element, pos, data, size in list(ebml_elements(out)):
        if element == element_id and size is not None:
            total = data + size - pos
            out[pos : data + size] = bytes([VOID, 0x80 | (total - 2)]) + bytes(total - 2)
            found += 1
    if not found:
        raise AssertionError(f"no element {element_id:#x} to remove")
    return bytes(out)


def ebml_set_uint(buf: bytes, element_id: int, value: int) -> bytes:
    """Rewrite every unsigned-integer element ``element_id`` in place (same byte length)."""
    out = bytearray(buf)
    found = 0
    for element, _pos, data, size in list(ebml_elements(out)):
        if element == element_id:
            if value >= 1 << (8 * size):
                raise AssertionError(f"{value} does not fit the {size}-byte element")
            out[data : data + size] = value.to_bytes(size, "big")
            found += 1
    if not found:
        raise AssertionError(f"no element {element_id:#x} to patch")
    return bytes(out)


def ebml_ids(buf: bytes) -> set[int]:
    return {element for element, *_ in ebml_elements(buf)}


# --- MP4 boxes --------------------------------------------------------------------------------

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"edts"}


def mp4_boxes(buf: bytes, start: int = 0, end: int | None = None, path: tuple = ()):
    """(path of box types, offset, size) of every box, depth-first."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos : pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", buf[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError(f"invalid box size at {pos}")
        yield (*path, kind), pos, size
        if kind in _MP4_CONTAINERS:
            yield from mp4_boxes(buf, pos + header, pos + size, (*path, kind))
        pos += size


def top_level_boxes(buf: bytes) -> list[bytes]:
    return [path[0] for path, _pos, _size in mp4_boxes(buf) if len(path) == 1]


def _alias_record(target: str) -> bytes:
    """A QuickTime 'alis' data reference naming ``target`` as an absolute path."""
    path = target.encode()
    name = path.rsplit(b"/", 1)[-1][:63]
    body = bytes(10) + b"\x00" + bytes(27) + bytes(12) + bytes([len(name)]) + name.ljust(63, b"\0")
    body += bytes(16) + struct.pack(">hh", 0, 0) + bytes(16)
    body += struct.pack(">hH", 2, len(path)) + path + (b"\0" if len(path) % 2 else b"")
    body += struct.pack(">hH", -1, 0)
    return struct.pack(">I4sI", 12 + len(body), b"alis", 0) + body


def with_external_reference(mp4: bytes, target: str) -> bytes:
    """Point every track's data reference at ``target`` (moov must follow mdat)."""
    buf = bytearray(mp4)
    boxes = list(mp4_boxes(buf))
    order = top_level_boxes(buf)
    if order.index(b"moov") < order.index(b"mdat"):
        raise AssertionError("needs moov after mdat, so sample offsets stay valid")
    drefs = [b for b in boxes if b[0][-1] == b"dref"]
    for path, pos, size in sorted(drefs, key=lambda b: -b[1]):
        entry = _alias_record(target)
        new = struct.pack(">I4sII", 16 + len(entry), b"dref", 0, 1) + entry
        delta = len(new) - size
        buf[pos : pos + size] = new
        for outer_path, outer_pos, outer_size in boxes:
            if outer_pos < pos < outer_pos + outer_size and len(outer_path) < len(path):
                (current,) = struct.unpack(">I", buf[outer_pos : outer_pos + 4])
                buf[outer_pos : outer_pos + 4] = struct.pack(">I", current + delta)
    return bytes(buf)


# --- generators -------------------------------------------------------------------------------


def zero_bytes(folder: Path) -> Path:
    path = folder / "empty.webm"
    path.write_bytes(b"")
    return path


def random_bytes(folder: Path, size: int = 256 * 1024, seed: int = 1) -> Path:
    """Noise with a video file name."""
    path = folder / "noise.webm"
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def noise_after_magic(folder: Path, size: int = 256 * 1024, seed: int = 2) -> Path:
    """The EBML magic (so the upload's sniff takes it for WebM), then noise."""
    path = folder / "fake.webm"
    path.write_bytes(EBML_MAGIC + random.Random(seed).randbytes(size))
    return path


def small_mp4(folder: Path, name: str = "plain.mp4", seconds: float = 3) -> Path:
    """H.264 + AAC with the moov box after the media data (ffmpeg's default layout)."""
    path = folder / name
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=15:d={seconds}"),
        *("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


def truncated_mp4(folder: Path) -> Path:
    """A recording cut off half-way: the moov index never got written."""
    whole = small_mp4(folder, "whole.mp4").read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def hls_playlist(folder: Path, target: str = "/etc/passwd") -> Path:
    path = folder / "playlist.m3u8"
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\nfile://{target}\n#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
    )
    return path


def concat_playlist(folder: Path, target: str = "/etc/passwd") -> Path:
    path = folder / "list.ffconcat"
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\nfile 'file:{target}'\n")
    return path


def external_reference_mp4(folder: Path, target: str = "/etc/passwd") -> Path:
    """An MP4 whose tracks say their samples live in ``target`` (a QuickTime alias)."""
    plain = small_mp4(folder, "to-alias.mp4").read_bytes()
    path = folder / "external-reference.mp4"
    path.write_bytes(with_external_reference(plain, target))
    return path


def huge_picture_raw(folder: Path, size: int = 30000) -> Path:
    """Uncompressed video whose Matroska header declares size×size pixels (1.35 GB a frame)."""
    small = folder / "raw-small.mkv"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x288:r=5:d=1"),
        *("-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "matroska"),
        str(small),
    )
    data = ebml_set_uint(small.read_bytes(), PIXEL_WIDTH, size)
    path = folder / "huge-picture.mkv"
    path.write_bytes(ebml_set_uint(data, PIXEL_HEIGHT, size))
    small.unlink()
    return path


def huge_picture_vp8(folder: Path, size: int = 30000) -> Path:
    """A small VP8 WebM whose header claims size×size (the frames themselves stay small)."""
    small = folder / "vp8-small.webm"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=320x288:r=15:d=2"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"),
        str(small),
    )
    data = ebml_set_uint(small.read_bytes(), PIXEL_WIDTH, size)
    path = folder / "huge-picture.webm"
    path.write_bytes(ebml_set_uint(data, PIXEL_HEIGHT, size))
    small.unlink()
    return path


def ten_hour_wav(folder: Path, hours: float = 10) -> Path:
    """A WAV that really lasts ``hours``: 8-bit mono at 1 sample a second (36 kB)."""
    rate, seconds = 1, int(hours * 3600)
    data = bytes([128]) * (rate * seconds)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    header += b"data" + struct.pack("<I", len(data))
    path = folder / "ten-hours.wav"
    path.write_bytes(header + data)
    return path


def audio_only(folder: Path, seconds: float = 3) -> Path:
    """Plain stereo call audio: valid media, but no picture (wrong for the 'screen' part)."""
    path = folder / "only-audio.wav"
    ffmpeg(
        *("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={seconds}:sample_rate=16000"),
        *("-f", "lavfi", "-i", f"sine=f={CUSTOMER_HZ}:d={seconds}:sample_rate=16000"),
        *("-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2"),
        str(path),
    )
    return path


def mediarecorder_webm(folder: Path, seconds: float = 4) -> Path:
    """What a browser's MediaRecorder writes: a live WebM with no Duration and no frame rate.

    Written to a pipe (``-f webm`` is not seekable there, so no Duration, no Cues), with
    irregular millisecond timestamps like a screen capture's, and DefaultDuration removed as
    Chrome leaves it out: ffprobe then reports neither a length nor an average frame rate.
    """
    frames = int(seconds * 25)
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error"),
            *("-f", "lavfi", "-i", f"testsrc2=s=640x360:r=25:d={seconds}"),
            *("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={seconds}"),
            *("-vf", "settb=1/1000,setpts='N*40+floor(random(0)*30)',format=yuv420p"),
            *("-fps_mode", "passthrough", "-enc_time_base:v", "1:1000"),
            *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k"),
            *("-c:a", "libopus", "-frames:v", str(frames), "-live", "1", "-f", "webm", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    data = result.stdout
    if DEFAULT_DURATION in ebml_ids(data):
        data = ebml_void(data, DEFAULT_DURATION)
    path = folder / "mediarecorder.webm"
    path.write_bytes(data)
    return path


def chatty_corrupt_h264(folder: Path, seconds: float = 40, seed: int = 3) -> Path:
    """H.264 whose frames are damaged, so the decoder logs a few lines for every frame.

    Far more than a pipe holds (~200 kB for 40 s), which is what wedged a worker whose
    stderr nobody read while it waited for progress on stdout.
    """
    clean = folder / "clean-h264.mkv"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=30:d={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", "600", "-f", "matroska"),
        str(clean),
    )
    data = bytearray(clean.read_bytes())
    rng = random.Random(seed)
    for element, _pos, start, size in list(ebml_elements(bytes(data))):
        if element == 0xA3 and size and size > 200:  # SimpleBlock
            for _ in range(3):
                data[start + 50 + rng.randrange(size - 60)] ^= 0xFF
    clean.unlink()
    path = folder / "chatty.mkv"
    path.write_bytes(bytes(data))
    return path
