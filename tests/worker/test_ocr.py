"""Redaction suggestions (SPEC §12): the checksum rules, and worker.ocr on real ffmpeg and
real tesseract.

The first part is pure: valid numbers are made here by computing their control digits, and
every one-digit change of them must fail. The second renders a short screen with drawtext
(a valid national identity number, a valid card number, a phone number that shows up late,
numbers whose checksums fail and plain words) and checks what ``suggest_redactions`` proposes,
where, and when; and that it keeps no text and no files.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from app.services import pii
from app.services.redaction import validate_redactions
from worker import media, ocr

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# --- making valid numbers --------------------------------------------------------------------


def mod11(digits: str, weights: list[int]) -> int | None:
    control = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return {11: 0, 10: None}.get(control, control)


def with_controls(nine: str) -> str | None:
    """A fødselsnummer/D-number from its first nine digits, or None if none exists."""
    k1 = mod11(nine, [3, 7, 6, 1, 8, 9, 4, 5, 2])
    if k1 is None:
        return None
    k2 = mod11(nine + str(k1), [5, 4, 3, 2, 7, 6, 5, 4, 3, 2])
    return None if k2 is None else f"{nine}{k1}{k2}"


def national_id(day: int, month: int, year: int, individual: int, d_number: bool = False):
    first = day + 40 if d_number else day
    for candidate in range(individual, individual + 1000):
        number = with_controls(f"{first:02d}{month:02d}{year % 100:02d}{candidate % 1000:03d}")
        if number:
            return number
    raise AssertionError("no individual number has both control digits")


def luhn_complete(prefix: str) -> str:
    total = 0
    for position, char in enumerate(reversed(prefix)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return prefix + str((10 - total % 10) % 10)


def account_complete(ten: str) -> str | None:
    control = mod11(ten, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2])
    return None if control is None else ten + str(control)


def one_digit_changes(number: str):
    for position in range(len(number)):
        for digit in "0123456789":
            if digit != number[position]:
                yield number[:position] + digit + number[position + 1 :]


FNR = national_id(15, 3, 1987, 100)
DNR = national_id(15, 3, 1987, 100, d_number=True)
CARD = luhn_complete("471628593041778")
ACCOUNT = account_complete("1503123456") or account_complete("1503123457")


# --- checksums -------------------------------------------------------------------------------

dates = st.tuples(st.integers(1, 28), st.integers(1, 12), st.integers(1900, 2039))


@settings(max_examples=150, deadline=None)
@given(date=dates, individual=st.integers(0, 999), d_number=st.booleans())
def test_national_ids_with_both_control_digits_pass_and_any_one_digit_change_fails(
    date, individual, d_number
):
    number = national_id(*date, individual, d_number=d_number)
    assert pii.national_id_valid(number)
    for changed in one_digit_changes(number):
        # one changed digit always breaks a mod-11 sum (11 is prime, the weights are < 11)
        assert not pii.national_id_valid(changed), changed


def test_national_id_rules():
    assert pii.national_id_valid(FNR) and pii.national_id_valid(DNR)
    assert int(DNR[0]) == int(FNR[0]) + 4 and DNR[1:6] == FNR[1:6]
    # a possible date is needed: the controls alone are not enough
    for nine in ("320387100", "721387100", "151387100", "150087100", "000387100"):
        number = with_controls(nine)
        assert number is None or not pii.national_id_valid(number), number
    for bad in ("", FNR[:10], FNR + "0", FNR.replace(FNR[4], "x"), "１５０３８７１００４１"):
        assert not pii.national_id_valid(bad)
    # the first control digit right and the second wrong, and the other way round
    assert not pii.national_id_valid(FNR[:10] + str((int(FNR[10]) + 1) % 10))
    assert not pii.national_id_valid(FNR[:9] + str((int(FNR[9]) + 1) % 10) + FNR[10])


@settings(max_examples=150, deadline=None)
@given(prefix=st.text("0123456789", min_size=12, max_size=18))
def test_luhn_valid_cards_pass_and_any_one_digit_change_fails(prefix):
    number = luhn_complete(prefix)
    if not number.strip("0"):
        assert not pii.luhn_valid(number)  # all zeros is not a card
        return
    assert pii.luhn_valid(number)
    for changed in one_digit_changes(number):
        assert not pii.luhn_valid(changed), changed


def test_card_lengths():
    assert pii.luhn_valid(luhn_complete("4" * 12))  # 13 digits
    assert pii.luhn_valid(luhn_complete("4" * 18))  # 19 digits
    assert not pii.luhn_valid(luhn_complete("4" * 11))  # 12
    assert not pii.luhn_valid(luhn_complete("4" * 19))  # 20
    assert pii.luhn_valid("4111111111111111") and not pii.luhn_valid("4111111111111112")


@settings(max_examples=150, deadline=None)
@given(ten=st.text("0123456789", min_size=10, max_size=10))
def test_account_numbers_mod11(ten):
    number = account_complete(ten)
    if number is None:  # a remainder of 1: no control digit exists, so no valid number
        assert not any(pii.account_valid(ten + d) for d in "0123456789")
        return
    assert pii.account_valid(number)
    for changed in one_digit_changes(number):
        assert not pii.account_valid(changed), changed


# --- finding numbers in a line of OCR text ---------------------------------------------------


def found(text: str) -> list[tuple[str, str]]:
    return [(text[f.start : f.end], f.reason) for f in pii.find_personal_data(text)]


def spaced(digits: str, *groups: int, sep: str = " ") -> str:
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    return sep.join(parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Fnr {FNR}", [(FNR, "national_id")]),
        (f"Fnr {spaced(FNR, 6, 5)} ok", [(spaced(FNR, 6, 5), "national_id")]),
        (f"D-nr {spaced(DNR, 6, 5)}", [(spaced(DNR, 6, 5), "national_id")]),
        (f"Kort {spaced(CARD, 4, 4, 4, 4)}", [(spaced(CARD, 4, 4, 4, 4), "card_number")]),
        (f"Kort {spaced(CARD, 4, 4, 8)}", [(spaced(CARD, 4, 4, 8), "card_number")]),
        (f"kort: {CARD}.", [(CARD, "card_number")]),
        (f"Konto {spaced(ACCOUNT, 4, 2, 5)}", [(spaced(ACCOUNT, 4, 2, 5), "account_number")]),
        (
            f"Konto {spaced(ACCOUNT, 4, 2, 5, sep='.')}",
            [(spaced(ACCOUNT, 4, 2, 5, sep="."), "account_number")],
        ),
        ("Tlf 913 45 678", [("913 45 678", "phone")]),
        ("Tlf 22 33 44 55", [("22 33 44 55", "phone")]),
        ("mob 91345678", [("91345678", "phone")]),
        ("Tlf +47 913 45 678", [("+47 913 45 678", "phone")]),
        ("Tlf 0047 91345678", [("0047 91345678", "phone")]),
        ("Tlf +4791345678", [("+4791345678", "phone")]),
        ("ola.nordmann@example.no svarte", [("ola.nordmann@example.no", "email")]),
        ("kari_h+post@firma-navn.co.uk", [("kari_h+post@firma-navn.co.uk", "email")]),
        ("ola.nordmann @example.no", [("ola.nordmann @example.no", "email")]),  # OCR's space
        (
            f"{spaced(FNR, 6, 5)} og {spaced(CARD, 4, 4, 4, 4)}",
            [(spaced(FNR, 6, 5), "national_id"), (spaced(CARD, 4, 4, 4, 4), "card_number")],
        ),
    ],
)
def test_personal_data_is_found_with_its_reason(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Kunde Ola Nordmann ringte om faktura",
        f"Saksnr {FNR[:10]}{(int(FNR[10]) + 1) % 10}",  # one control digit wrong
        f"Kort {CARD[:15]}{(int(CARD[15]) + 1) % 10}",  # Luhn fails
        "Kort 0000 0000 0000 0000",
        "Kundenr 8812 4410",  # 4+4 is not a phone grouping
        "Service 800 12 345",  # 8: service numbers
        "Nr 113 45 678 og 013 45 678",
        "Dato 01.02.2025 kl 14.32",
        "Saksnr 771 og 4410",
        "Ordre 123456789",  # nine digits
        "Kort4111111111111111",  # glued to a word: not a number of its own
        "ola.nordmann@",
        "@example.no",
    ],
)
def test_ordinary_text_and_failing_checksums_are_not_personal_data(text):
    assert found(text) == []


def test_a_finding_keeps_no_text():
    [finding] = pii.find_personal_data(f"Fnr {FNR}")
    assert set(vars(finding)) == {"start", "end", "reason"}


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(st.sampled_from(["Kunde", "ringte", "om", "Fnr", "sak", "771"]), max_size=4),
    split=st.sampled_from([(11,), (6, 5), (3, 3, 5), (2, 2, 2, 5)]),
    date=dates,
    individual=st.integers(0, 999),
)
def test_a_national_id_split_by_ocr_is_joined(words, split, date, individual):
    number = national_id(*date, individual)
    shown = spaced(number, *split)
    text = " ".join([*words, shown, *words])
    results = pii.find_personal_data(text)
    assert any(f.reason == "national_id" and text[f.start : f.end] == shown for f in results), (
        text,
        results,
    )


# --- what changed between two frames ---------------------------------------------------------


def screen_image(lines: list[tuple[int, int, str]], size=(640, 240)) -> np.ndarray:
    image = Image.new("L", size, 245)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 20)
    for x, y, text in lines:
        draw.text((x, y), text, fill=20, font=font)
    return np.array(image)


def test_a_changed_digit_is_read_again_with_the_whole_number_but_not_the_rest():
    before = screen_image([(20, 20, "Kunde Ola Nordmann"), (20, 80, "Kort 4111 1111 1111 1111")])
    after = screen_image([(20, 20, "Kunde Ola Nordmann"), (20, 80, "Kort 4111 1111 1111 1129")])
    assert ocr.changed_regions(None, before) == [(0, 0, 640, 240)]
    assert ocr.changed_regions(before, before) == []
    [region] = ocr.changed_regions(before, after)
    x0, y0, x1, y1 = region
    ink = np.argwhere(after[60:130] < 128)  # the card line's ink
    assert x0 <= ink[:, 1].min() and x1 > ink[:, 1].max()  # from "Kort" to the last digit
    assert y0 <= 60 + ink[:, 0].min() and y1 > 60 + ink[:, 0].max()
    assert y0 > 45  # the name line above is not read again


def test_a_panel_border_does_not_make_every_change_a_full_frame():
    lines = [(40, 40, "Samtaletid 12 s"), (40, 120, "Notat")]
    before, after = screen_image(lines), screen_image([(40, 40, "Samtaletid 13 s"), lines[1]])
    for frame in (before, after):
        frame[10:230, 20] = 0  # a panel's left and right borders, top to bottom
        frame[10:230, 620] = 0
        frame[10, 20:621] = 0
    [region] = ocr.changed_regions(before, after)
    x0, y0, x1, y1 = region
    assert y1 - y0 < 60 and x1 - x0 < 300, region


# --- on a rendered screen, with real ffmpeg and tesseract -------------------------------------

W, H, SECONDS = 800, 450, 4
INVALID_ID = f"{FNR[:10]}{(int(FNR[10]) + 1) % 10}"
INVALID_CARD = f"{CARD[:15]}{(int(CARD[15]) + 1) % 10}"
# (label, value, x of the value, y, when shown)
ROWS = [
    ("Fnr", spaced(FNR, 6, 5), 200, 80, ""),
    ("Kort", spaced(CARD, 4, 4, 4, 4), 200, 140, "lt(t,3)"),
    ("Saksnr", spaced(INVALID_ID, 6, 5), 200, 200, ""),
    ("Referanse", spaced(INVALID_CARD, 4, 4, 4, 4), 200, 260, ""),
    ("Notat", "Kunden ringte om faktura", 200, 320, ""),
]
PHONE = ("Tlf", "913 45 678", 560, 16, "gte(t,2)")  # white on the dark header, from 2 s


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ocr-screen") / "screen.webm"
    draw = ["drawbox=x=0:y=0:w=iw:h=60:color=0x1f3a5f:t=fill"]
    for label, value, x, y, when in [*ROWS, PHONE]:
        color = "white" if (label, value) == PHONE[:2] else "0x1a1a1a"
        enable = f":enable='{when}'" if when else ""
        draw.append(
            f"drawtext=fontfile={FONT}:text='{label}':x={x - 170}:y={y}:fontsize=24"
            f":fontcolor={color}{enable}"
        )
        draw.append(
            f"drawtext=fontfile={FONT}:text='{value}':x={x}:y={y}:fontsize=24"
            f":fontcolor={color}{enable}"
        )
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            *("-f", "lavfi", "-i", f"color=c=0xf4f6f8:s={W}x{H}:r=10:d={SECONDS}"),
            *("-vf", ",".join(draw)),
            *("-c:v", "libvpx", "-deadline", "good", "-cpu-used", "4", "-b:v", "1M"),
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


@pytest.fixture(scope="module")
def suggested(rendered, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("ocr-scratch")
    handler = _Capture()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        suggestions = ocr.suggest_redactions(rendered, "matroska", scratch)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    return suggestions, scratch, handler.lines


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def ink_box(frame: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    """The pixels of a value drawn at (x, y), from a decoded frame (dark on light)."""
    band = frame[y - 4 : y + 36, x - 4 : W]
    rows, cols = np.nonzero(band < 128)
    return x - 4 + cols.min(), y - 4 + rows.min(), x - 4 + cols.max() + 1, y - 4 + rows.max() + 1


def decoded_frame(path: Path, at: float) -> np.ndarray:
    raw = subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-ss", f"{at}", "-i", str(path)),
            *("-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W)


def pixels(suggestion) -> tuple[float, float, float, float]:
    box = suggestion["box"]
    return box["x"] * W, box["y"] * H, (box["x"] + box["w"]) * W, (box["y"] + box["h"]) * H


def test_suggestions_cover_the_valid_numbers_and_nothing_else(suggested, rendered):
    suggestions, _scratch, _logs = suggested
    by_reason = {s["reason"]: s for s in suggestions}
    assert sorted(by_reason) == ["card_number", "national_id", "phone"], suggestions
    assert len(suggestions) == 3
    frame = decoded_frame(rendered, 1.5)
    for reason, (_label, _value, x, y, _when) in (
        ("national_id", ROWS[0]),
        ("card_number", ROWS[1]),
    ):
        x0, y0, x1, y1 = pixels(by_reason[reason])
        ix0, iy0, ix1, iy1 = ink_box(frame, x, y)
        assert x0 <= ix0 and y0 <= iy0 and x1 >= ix1 and y1 >= iy1, (reason, by_reason[reason])
        assert (x1 - x0) < 1.3 * (ix1 - ix0) + 20 and (y1 - y0) < 2.5 * (iy1 - iy0), reason
        assert x0 > x - 170 + 60  # the label is not part of it
    # the phone, white on the dark header bar
    x0, y0, x1, y1 = pixels(by_reason["phone"])
    header = 255 - decoded_frame(rendered, 2.5)
    header[60:] = 0
    ix0, iy0, ix1, iy1 = ink_box(header, PHONE[2], PHONE[3])
    assert x0 <= ix0 and y0 <= iy0 and x1 >= ix1 and y1 >= iy1
    # nothing over the numbers that fail their checksums, nor the words
    for _label, _value, _x, y, _when in ROWS[2:]:
        assert all(
            not (s_y0 < y + 30 and y < s_y1) for _, s_y0, _, s_y1 in map(pixels, suggestions)
        )


def test_suggestions_have_the_span_they_were_on_screen(suggested):
    suggestions, _scratch, _logs = suggested
    by_reason = {s["reason"]: s for s in suggestions}
    assert by_reason["national_id"]["start_s"] == 0 and by_reason["national_id"]["end_s"] == 4
    card = by_reason["card_number"]
    assert card["start_s"] == 0 and 3.0 <= card["end_s"] <= 3.5  # gone at 3 s
    phone = by_reason["phone"]
    assert 0.9 <= phone["start_s"] <= 2.0 and phone["end_s"] == 4  # shown from 2 s


def test_suggestions_are_a_valid_redactions_list(suggested):
    suggestions, _scratch, _logs = suggested
    assert (
        validate_redactions(suggestions, duration_s=SECONDS, has_video=True, audio_channels=0)
        == suggestions
    )


def test_the_text_is_never_returned_logged_or_left_behind(suggested):
    suggestions, scratch, logs = suggested
    answer = json.dumps(suggestions)
    log_text = "\n".join(logs)
    for _label, value, *_ in [*ROWS, PHONE]:
        for text in (value, value.replace(" ", "")):
            assert text not in answer and text not in log_text
    for word in ("Kunden", "faktura", "Saksnr"):
        assert word not in answer and word not in log_text
    assert set(suggestions[0]) == {"kind", "box", "start_s", "end_s", "reason"}
    assert list(scratch.iterdir()) == []


def test_stopping_midway_removes_the_work_folder_and_ffmpeg(rendered, tmp_path):
    class Stop(Exception):
        pass

    def stop(fraction: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        ocr.suggest_redactions(rendered, "matroska", tmp_path, on_progress=stop)
    assert list(tmp_path.iterdir()) == []
    assert not [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "ffmpeg" and str(rendered) in " ".join(p.info["cmdline"] or [])
    ]


def test_missing_tesseract_is_a_clear_error(rendered, tmp_path):
    with pytest.raises(ocr.OcrUnavailable, match=r"not installed.*tesseract-ocr"):
        ocr.suggest_redactions(
            rendered, "matroska", tmp_path, tesseract_bin=str(tmp_path / "no-tesseract")
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_language_data_is_a_clear_error(tmp_path, monkeypatch):
    empty = tmp_path / "tessdata"
    empty.mkdir()
    monkeypatch.setenv("TESSDATA_PREFIX", str(empty))  # real tesseract, with no data to find
    with pytest.raises(ocr.OcrUnavailable, match=r"nor\+eng.*tesseract-ocr-nor"):
        ocr.check_tesseract()


def test_a_file_without_video_is_refused(tmp_path):
    audio = tmp_path / "call.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(audio)], check=True
    )
    with pytest.raises(media.MediaRejected, match="no video"):
        ocr.suggest_redactions(audio, "wav", tmp_path)
