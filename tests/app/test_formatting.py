"""One way to write a time on every page: ``app/pages/formatting.py`` on the server, and the
same rule in ``static/js/kit.js`` (tests/browser/test_formatting.py holds the two side by side).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from app.pages import coach, employee
from app.pages.formatting import clock

# Positions and lengths alike: whole seconds counted down, after rounding to the millisecond.
CASES = [
    (None, "–"),
    (math.nan, "–"),
    (math.inf, "–"),
    (-4.0, "0:00"),
    (0, "0:00"),
    (0.4, "0:00"),
    (0.999, "0:00"),
    (1, "0:01"),
    (9.5, "0:09"),  # a comment at 9.5 s: 0:09 for the coach and for the employee alike
    (9.6, "0:09"),  # a comment at 9.6 s: round() would write 0:10
    (19.6, "0:19"),  # a 19.6 s recording: the header and the player both say 0:19
    (6.9999999, "0:07"),  # float noise does not lose a second
    (12.4, "0:12"),
    (59.99, "0:59"),
    (59.999, "0:59"),
    (60, "1:00"),
    (75, "1:15"),
    (3599.5, "59:59"),
    (3599.9, "59:59"),
    (3600, "1:00:00"),
    (3723, "1:02:03"),
    (3725.5, "1:02:05"),
    (36000, "10:00:00"),
]


@pytest.mark.parametrize(("seconds", "text"), CASES)
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_the_pages_use_the_one_formatter():
    assert coach.clock is clock
    assert employee.clock is clock


def test_the_coach_header_length_reads_like_the_player():
    # The header used to round (0:20) while the player counted down (0:19).
    assert coach.duration_label(19.6) == "0:19" == clock(19.6)
    assert coach.duration_label(None) == ""


APP = Path(__file__).resolve().parents[2] / "app"


def _writers(folder: Path, pattern: str, glob: str) -> list[str]:
    found = re.compile(pattern)
    return [
        str(path.relative_to(folder))
        for path in sorted(folder.rglob(glob))
        if found.search(path.read_text())
    ]


def test_no_second_time_formatter_creeps_in():
    """Pages write a time only with clock(): kit.js in the browser, formatting.py on the server."""
    # Seconds into minutes (/ 60, % 60) mark a time formatter; padStart(2) alone would also
    # catch the share dialog's yyyy-mm-dd end date, which is no time of a recording.
    assert _writers(APP / "static" / "js", r"[%/] ?60\b", "*.js") == ["kit.js"]
    assert _writers(APP / "pages", r"divmod\(", "*.py") == ["formatting.py"]
