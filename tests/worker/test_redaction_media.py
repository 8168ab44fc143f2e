"""Redactions in the rendition run (SPEC §12), checked on pixels and samples with real ffmpeg.

Each test makes the real rendition, poster, thumbnails and waveform with ``worker.media`` from
a short synthetic screen (lines of text drawn with DejaVu) and a stereo call, decodes what came
out, and measures it: covers are flat, blurs leave no detail inside their box and span (and
leave it everywhere else), mutes measure below -60 dBFS on the chosen channels, and tesseract
reads a number without the blur and nothing of it with the blur.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytesseract
import pytest
from PIL import Image

from app.services.redaction import validate_redactions
from worker import media

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
W, H, FPS, SECONDS = 640, 360, 15, 4
AGENT_HZ, CUSTOMER_HZ = 440, 1000
NUMBER = "4716 2859 3041 7786"
# Where things are drawn, in pixels (x0, y0, x1, y1), and the boxes over them in fractions.
NUMBER_PX = (24, 20, 456, 76)
ROWS_PX = (16, 110, 624, 230)  # five lines of small text
OTHER_PX = (16, 250, 624, 350)  # four more lines, never redacted
LINES = [
    "Kunde Ola Nordmann  Kundenr 8812 4410  Saksnr 771",
    "Adresse Storgata 12B 0155 Oslo  Tlf 913 45 678",
    "Konto 1503 12 34567  Kort 5500 0000 0000 0004",
    "Notat ringte om faktura 2291 og purring fra mars",
    "Avtale Mobil Pluss 30 GB  Startdato 01.02.2025",
    "Henvendelse 44810 lukket av agent 17 kl 14.32",
    "Produkt Bredband 500  Ruter ZX-300 serie 99812",
    "Neste steg send ny faktura per e-post til kunden",
    "Logget 12.03.2025 av Kari  Prioritet normal",
]


def box(px: tuple[int, int, int, int]) -> dict[str, float]:
    x0, y0, x1, y1 = px
    return {"x": x0 / W, "y": y0 / H, "w": (x1 - x0) / W, "h": (y1 - y0) / H}


def run(*args: str) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Path:
    """A still screen of text (a CRM page) with a clock that ticks, as VP8 WebM."""
    path = tmp_path_factory.mktemp("screen") / "screen.webm"
    draw = [
        f"drawtext=fontfile={FONT}:text='{NUMBER}':x={NUMBER_PX[0] + 6}:y={NUMBER_PX[1] + 10}"
        ":fontsize=34:fontcolor=black"
    ]
    for i, line in enumerate(LINES):
        y = ROWS_PX[1] + 6 + i * 24 if i < 5 else OTHER_PX[1] + 4 + (i - 5) * 24
        draw.append(
            f"drawtext=fontfile={FONT}:text='{line}':x={ROWS_PX[0] + 4}:y={y}"
            ":fontsize=17:fontcolor=0x202020"
        )
    # the frame number, top right: the picture changes every frame, as a screen's does
    draw.append(f"drawtext=fontfile={FONT}:text='%{{n}}':x=560:y=30:fontsize=20:fontcolor=blue")
    run(
        *("-f", "lavfi", "-i", f"color=c=white:s={W}x{H}:r={FPS}:d={SECONDS}"),
        *("-vf", ",".join(draw)),
        *("-c:v", "libvpx", "-deadline", "good", "-cpu-used", "4", "-b:v", "2M"),
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def call(tmp_path_factory) -> Path:
    """Stereo call audio: the agent's 440 Hz on the left, the customer's 1000 Hz on the right."""
    path = tmp_path_factory.mktemp("call") / "call.wav"
    run(
        *("-f", "lavfi", "-i", f"sine=f={AGENT_HZ}:d={SECONDS}:sample_rate=48000"),
        *("-f", "lavfi", "-i", f"sine=f={CUSTOMER_HZ}:d={SECONDS}:sample_rate=48000"),
        *("-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2"),
        str(path),
    )
    return path


def render(tmp_path: Path, screen: Path | None, audio: Path | None, redactions, **choices):
    """Validate the redactions as the API will, then make the share's outputs."""
    screen_probe = media.probe(screen, "matroska", "screen") if screen else None
    audio_probe = media.probe(audio, "wav", "audio") if audio else None
    items = validate_redactions(
        redactions,
        duration_s=SECONDS,
        has_video=screen is not None,
        audio_channels=audio_probe.audio_channels if audio_probe else 0,
        agent_channel=choices.get("agent_channel", "left"),
    )
    out = tmp_path / "out"
    out.mkdir(parents=True)
    plan = media.plan_rendition(
        screen=screen,
        screen_probe=screen_probe,
        audio=audio,
        audio_probe=audio_probe,
        agent_channel=choices.get("agent_channel", "left"),
        include_customer=choices.get("include_customer", False),
        trim_start_s=choices.get("trim_start_s"),
        trim_end_s=choices.get("trim_end_s"),
        out_dir=out,
        redactions=items,
    )
    media.run_ffmpeg(
        media.build_command(plan),
        total_s=plan.duration_s,
        timeout_s=300,
        on_progress=lambda f: None,
    )
    media.make_sprite(plan)
    return plan


def frames(path: Path) -> np.ndarray:
    """Every frame of a video (or the one of an image) as RGB, shape (n, height, width, 3)."""
    info = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "stream=width,height", "-of", "csv=p=0", str(path)),
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split(",")
    width, height = int(info[0]), int(info[1])
    raw = run("-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def region(image: np.ndarray, px, inset: int = 0) -> np.ndarray:
    x0, y0, x1, y1 = px
    return image[y0 + inset : y1 - inset, x0 + inset : x1 - inset].astype(float)


def detail(pixels: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (text has plenty; flat has none)."""
    gray = pixels.mean(axis=2)
    return float(np.abs(np.diff(gray, axis=1)).mean() + np.abs(np.diff(gray, axis=0)).mean())


def is_flat(pixels: np.ndarray) -> bool:
    return float(pixels.std(axis=(0, 1)).max()) < 2.0


def times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


# --- cover -------------------------------------------------------------------------------------


def test_cover_is_an_opaque_fill_in_its_span_in_the_rendition_poster_and_thumbnails(
    tmp_path, screen
):
    plan = render(
        tmp_path,
        screen,
        None,
        [
            {"kind": "cover", "box": box(NUMBER_PX)},  # the whole recording
            {"kind": "cover", "box": box(ROWS_PX), "start_s": 1.5, "end_s": 2.5},
        ],
    )
    video = frames(plan.outputs["rendition"])
    assert len(video) == SECONDS * FPS
    for n, frame in enumerate(video):
        t = n / FPS
        number = region(frame, NUMBER_PX)
        assert is_flat(number) and number.mean() < 20, f"number not covered at {t:.2f} s"
        rows = region(frame, ROWS_PX)
        if 1.5 <= t <= 2.5:
            assert is_flat(rows) and rows.mean() < 20, f"rows not covered at {t:.2f} s"
        elif t < 1.4 or t > 2.6:
            assert detail(rows) > 4, f"rows covered outside the span, at {t:.2f} s"
        assert detail(region(frame, OTHER_PX)) > 4  # never covered
        # the fill stops at the box: a few pixels outside it is still the white page
        assert region(frame, (NUMBER_PX[2] + 4, 84, NUMBER_PX[2] + 40, 100)).min() > 200

    # the poster (at 0.4 s, scaled to 640 wide: the same pixels) and the thumbnails
    [poster] = frames(plan.outputs["poster"])
    assert poster.shape == (H, W, 3)
    assert is_flat(region(poster, NUMBER_PX, inset=2)) and region(poster, NUMBER_PX).mean() < 25
    assert detail(region(poster, ROWS_PX)) > 4
    for thumb in sorted(plan.outputs["thumb_frames"].glob("*.jpg")):
        [image] = frames(thumb)  # 160×90: a quarter of the frame
        small = tuple(v // 4 for v in NUMBER_PX)
        assert region(image, small, inset=2).mean() < 30, thumb.name


# --- blur --------------------------------------------------------------------------------------


def test_blur_removes_detail_only_inside_its_box_and_span(tmp_path, screen):
    # recording 1.5–3.0 s; trimmed from 0.5 s, so 1.0–2.5 s in the rendition
    plan = render(
        tmp_path,
        screen,
        None,
        [{"kind": "blur", "box": box(ROWS_PX), "start_s": 1.5, "end_s": 3.0}],
        trim_start_s=0.5,
    )
    video = frames(plan.outputs["rendition"])
    assert len(video) == round((SECONDS - 0.5) * FPS)
    inside = [n for n in range(len(video)) if 1.0 <= n / FPS <= 2.5]
    outside = [n for n in range(len(video)) if n / FPS < 0.9 or n / FPS > 2.6]
    assert len(inside) > 15 and len(outside) > 15
    text_detail = np.mean([detail(region(video[n], ROWS_PX)) for n in outside])
    other_detail = np.mean([detail(region(video[n], OTHER_PX)) for n in outside])
    assert text_detail > 5 and other_detail > 5
    for n in inside:
        rows = region(video[n], ROWS_PX)
        assert detail(rows) < 0.1 * text_detail, f"detail left under the blur at {n / FPS:.2f} s"
        # a mosaic of a few coarse blocks: along a line, the colour changes only at block edges
        changes = np.count_nonzero(np.abs(np.diff(rows.mean(axis=2), axis=1)) > 8, axis=1)
        assert np.median(changes) <= media.MOSAIC_MAX_BLOCKS
        # and everything outside the box is as sharp as without the blur
        assert detail(region(video[n], OTHER_PX)) > 0.9 * other_detail
        assert detail(region(video[n], NUMBER_PX)) > 4


# --- mute --------------------------------------------------------------------------------------


def decode_audio(path: Path, channels: int, rate: int = 48000) -> np.ndarray:
    raw = run("-i", str(path), "-vn", "-f", "f32le", "-ac", str(channels), "-ar", str(rate), "-")
    return np.frombuffer(raw, "<f4").reshape(-1, channels)


def read_waveform_pcm(plan) -> np.ndarray:
    samples = np.frombuffer(plan.outputs["waveform_pcm"].read_bytes(), "<i2")
    return samples.reshape(-1, plan.audio_out_channels).astype(float) / 32768


def dbfs(samples: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(samples)))) if len(samples) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def span(samples: np.ndarray, rate: int, start: float, end: float, margin: float = 0.03):
    return samples[int((start + margin) * rate) : int((end - margin) * rate)]


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_mute_is_digital_silence_on_the_chosen_channel_only(tmp_path, screen, call):
    plan = render(
        tmp_path,
        screen,
        call,
        [
            {"kind": "mute", "start_s": 1.0, "end_s": 2.0, "channel": "customer"},
            {"kind": "mute", "start_s": 2.8, "end_s": 3.4},  # all
        ],
        include_customer=True,
        agent_channel="left",
    )
    assert plan.audio_out_channels == 2
    for name, rate, audio in (
        ("rendition", 48000, decode_audio(plan.outputs["rendition"], 2)),
        ("waveform", media.WAVEFORM_RATE, read_waveform_pcm(plan)),
    ):
        agent, customer = audio[:, 0], audio[:, 1]
        assert dbfs(span(customer, rate, 1.0, 2.0)) < -60, name
        assert dbfs(span(agent, rate, 1.0, 2.0)) > -30, name  # the agent is still heard
        assert dbfs(span(agent, rate, 2.8, 3.4)) < -60, name
        assert dbfs(span(customer, rate, 2.8, 3.4)) < -60, name
        for start, end in ((0.1, 0.9), (2.1, 2.7), (3.5, 3.9)):
            assert dbfs(span(agent, rate, start, end)) > -30, (name, start)
            assert dbfs(span(customer, rate, start, end)) > -30, (name, start)
    rendition = decode_audio(plan.outputs["rendition"], 2)
    assert dominant_hz(span(rendition[:, 0], 48000, 0.1, 0.9), 48000) == pytest.approx(
        AGENT_HZ, abs=5
    )
    assert dominant_hz(span(rendition[:, 1], 48000, 0.1, 0.9), 48000) == pytest.approx(
        CUSTOMER_HZ, abs=5
    )


def test_mute_spans_follow_the_trim_and_the_agents_channel(tmp_path, screen, call):
    # agent on the right, the customer dropped: one channel out, the agent's 1000 Hz
    plan = render(
        tmp_path,
        screen,
        call,
        [
            {"kind": "mute", "start_s": 2.0, "end_s": 2.6, "channel": "agent"},
            {"kind": "mute", "start_s": 0.0, "end_s": 4.0, "channel": "customer"},  # not heard
            {"kind": "mute", "start_s": 0.0, "end_s": 0.8},  # before the trim: dropped
        ],
        agent_channel="right",
        trim_start_s=1.0,
    )
    assert plan.audio_out_channels == 1
    for rate, audio in (
        (48000, decode_audio(plan.outputs["rendition"], 1)[:, 0]),
        (media.WAVEFORM_RATE, read_waveform_pcm(plan)[:, 0]),
    ):
        assert dbfs(span(audio, rate, 1.0, 1.6)) < -60  # recording 2.0–2.6 s
        assert dbfs(span(audio, rate, 0.0, 0.95)) > -30
        assert dbfs(span(audio, rate, 1.65, 2.9)) > -30
    audio = decode_audio(plan.outputs["rendition"], 1)[:, 0]
    assert dominant_hz(span(audio, 48000, 0.1, 0.9), 48000) == pytest.approx(CUSTOMER_HZ, abs=5)


def test_a_mute_is_exact_to_the_sample_before_encoding(tmp_path, call):
    """The waveform's PCM (no lossy codec in between) is zero over the span, to within the
    4 kHz resampler's few milliseconds of ringing: not a whole audio packet (21 to 85 ms)."""
    plan = render(tmp_path, None, call, [{"kind": "mute", "start_s": 1.25, "end_s": 2.5}])
    pcm = read_waveform_pcm(plan)[:, 0]
    rate, ring = media.WAVEFORM_RATE, 0.005
    assert np.all(pcm[int((1.25 + ring) * rate) : int((2.5 - ring) * rate)] == 0)
    assert np.abs(pcm[int((1.25 - 4 * ring) * rate) : int((1.25 - ring) * rate)]).max() > 0.05
    assert np.abs(pcm[int((2.5 + ring) * rate) : int((2.5 + 4 * ring) * rate)]).max() > 0.05


# --- OCR: the blur is not readable -------------------------------------------------------------


def ocr_digits(image: np.ndarray) -> str:
    """What tesseract reads in an RGB crop, upscaled as OCR likes it, as its digits only."""
    picture = Image.fromarray(image.astype(np.uint8)).resize(
        (image.shape[1] * 2, image.shape[0] * 2), Image.Resampling.LANCZOS
    )
    text = pytesseract.image_to_string(picture, lang="eng", config="--psm 7")
    return re.sub(r"\D", "", text)


def test_ocr_reads_the_number_without_the_blur_and_nothing_of_it_with_it(tmp_path, screen):
    crop = (NUMBER_PX[0], NUMBER_PX[1] - 8, NUMBER_PX[2] + 8, NUMBER_PX[3] + 8)
    plain = render(tmp_path / "plain", screen, None, [])
    [poster] = frames(plain.outputs["poster"])
    assert ocr_digits(region(poster, crop)) == NUMBER.replace(" ", "")  # the control

    blurred = render(tmp_path / "blurred", screen, None, [{"kind": "blur", "box": box(NUMBER_PX)}])
    [poster] = frames(blurred.outputs["poster"])
    video = frames(blurred.outputs["rendition"])
    for image in (poster, video[0], video[-1]):
        digits = ocr_digits(region(image, crop))
        assert len(digits) <= 2, digits
    # the page around it is still read as before
    assert "Kunde" in pytesseract.image_to_string(Image.fromarray(poster), lang="eng")
