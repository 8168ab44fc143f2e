"""Detectors for personal data in a line of recognised text (SPEC §12 suggestions). Pure.

:func:`find_personal_data` takes one line of text as OCR read it (words joined by single
spaces) and answers where personal data is, as character spans and a reason; it never returns
or keeps the text. Numbers count only when their check digits hold: a Norwegian national
identity number (fødselsnummer or D-number, both mod-11 control digits and a possible date), a
payment card number (13–19 digits, Luhn), a Norwegian bank account number (11 digits, mod 11),
plus e-mail addresses and Norwegian phone numbers (8 digits in the usual groupings, optionally
after +47 or 0047).

OCR splits numbers where the screen had spaces (``4111 1111 1111 1111``, ``150387 10041``,
``1503 12 34567``) and sometimes where it had none; digit groups separated by a space, a dot or
a hyphen are joined before checking, in every run of consecutive groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NATIONAL_ID, CARD, ACCOUNT, EMAIL, PHONE = (
    "national_id",
    "card_number",
    "account_number",
    "email",
    "phone",
)

_FNR_K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ACCOUNT = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    """The mod-11 control digit for ``digits`` (None where none exists: a remainder of 1)."""
    control = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if control == 11:
        return 0
    return None if control == 10 else control


def national_id_valid(digits: str) -> bool:
    """A Norwegian fødselsnummer or D-number: 11 digits, a possible day and month, and both
    mod-11 control digits. A D-number has 4 added to the day's first digit (41–71)."""
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        return False
    day, month = int(digits[0:2]), int(digits[2:4])
    if day > 40:
        day -= 40  # D-number
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return False
    k1 = _mod11(digits[:9], _FNR_K1)
    if k1 is None or k1 != int(digits[9]):
        return False
    k2 = _mod11(digits[:10], _FNR_K2)
    return k2 is not None and k2 == int(digits[10])


def luhn_valid(digits: str) -> bool:
    """A payment card number: 13–19 digits passing the Luhn check (and not all zeros)."""
    if not 13 <= len(digits) <= 19 or not digits.isascii() or not digits.isdigit():
        return False
    if not digits.strip("0"):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def account_valid(digits: str) -> bool:
    """A Norwegian bank account number: 11 digits, the last a mod-11 control digit."""
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        return False
    control = _mod11(digits[:10], _ACCOUNT)
    return control is not None and control == int(digits[10])


@dataclass(frozen=True)
class Finding:
    """Personal data at ``text[start:end]``; why, as a SPEC §12 reason. No text is kept."""

    start: int
    end: int
    reason: str


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]* ?@ ?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![\w-])"
)
# Digit groups joined by single separators; a leading + (an international prefix) is kept.
_NUMBER_RUN = re.compile(r"(?<![\w+])\+?\d+(?:[ .\-]\d+)*(?!\w)")
_GROUP = re.compile(r"\d+")
_PHONE_GROUPINGS = {(8,), (3, 2, 3), (2, 2, 2, 2)}
_PHONE_FIRST = set("2345679")  # 0 and 1 are not used; 8 is service numbers (800, 815, ...)


def find_personal_data(text: str) -> list[Finding]:
    """Where personal data is in one line of text: spans that never overlap, each with its
    reason. A number whose check digits fail is not personal data here."""
    findings = [Finding(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text)]
    taken = [(f.start, f.end) for f in findings]
    for run in _NUMBER_RUN.finditer(text):
        if any(run.start() < end and start < run.end() for start, end in taken):
            continue
        findings += _numbers_in_run(text, run.start(), run.end())
    return sorted(findings, key=lambda f: f.start)


def _numbers_in_run(text: str, run_start: int, run_end: int) -> list[Finding]:
    plus = text[run_start] == "+"
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(text, run_start, run_end)]
    found: list[Finding] = []
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += text[groups[last][0] : groups[last][1]]
            if len(digits) > 23:
                break
            grouping = tuple(b - a for a, b in groups[first : last + 1])
            reason = _number_reason(digits, grouping)
            start = groups[first][0]
            if reason is None:
                plus_first = plus and first == 0
                if not _prefixed_phone(text, groups, first, last, plus_first):
                    continue
                reason = PHONE
                start = run_start if plus_first else start
            found.append(Finding(start, groups[last][1], reason))
    # Where findings overlap, the one with the strongest check wins (a national id has two
    # control digits and a date; an account one control digit; a card's Luhn digit passes one
    # random number in ten; a phone number has no check), then the longer.
    found.sort(key=lambda f: (_STRENGTH[f.reason], -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for finding in found:
        if not any(k.start < finding.end and finding.start < k.end for k in kept):
            kept.append(finding)
    return kept


_STRENGTH = {NATIONAL_ID: 0, ACCOUNT: 1, CARD: 2, PHONE: 3}


def _number_reason(digits: str, grouping: tuple[int, ...]) -> str | None:
    if len(digits) == 11:
        if national_id_valid(digits):
            return NATIONAL_ID
        if account_valid(digits):
            return ACCOUNT
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return CARD
    if grouping in _PHONE_GROUPINGS and digits[0] in _PHONE_FIRST:
        return PHONE
    return None


def _prefixed_phone(
    text: str, groups: list[tuple[int, int]], first: int, last: int, plus_first: bool
) -> bool:
    """A phone number after +47 or 0047, as a group of its own or run into the number."""
    head = text[groups[first][0] : groups[first][1]]
    if first < last:
        if not ((plus_first and head == "47") or head == "0047"):
            return False
        rest = groups[first + 1 : last + 1]
        digits = "".join(text[a:b] for a, b in rest)
        return tuple(b - a for a, b in rest) in _PHONE_GROUPINGS and digits[0] in _PHONE_FIRST
    for prefix in ("0047", "47") if plus_first else ("0047",):
        number = head[len(prefix) :]
        if head.startswith(prefix) and len(number) == 8 and number[0] in _PHONE_FIRST:
            return True
    return False
