"""One check for every piece of text a person types in: purposes, names, titles, notes,
comments, team names, the consent text.

Refused, with a message naming the field and the character:

- control characters (NUL and the rest of C0 and C1, DEL) — a tab and a line break only in
  fields that take several lines;
- text-direction controls: embeddings and overrides (U+202A–U+202E), isolates
  (U+2066–U+2069), the marks U+200E, U+200F and U+061C, and the deprecated format characters
  U+206A–U+206F — they make a receipt or a name read differently from what it says;
- the line and paragraph separators U+2028 and U+2029 (a line break is U+000A), the
  byte-order mark (U+FEFF), interlinear annotation marks (U+FFF9–U+FFFB) and lone surrogates
  (which cannot even be stored).

Joiners (U+200C, U+200D) and everything else Unicode assigns stay allowed: names and
comments are written in every script, with emoji.
"""

from __future__ import annotations

import unicodedata

from app.services.errors import InvalidRequest
from app.services.i18n import _

_DIRECTION = {
    *range(0x202A, 0x202F),
    *range(0x2066, 0x2070),
    0x200E,
    0x200F,
    0x061C,
}
_OTHER = {0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0x2028, 0x2029}
_MULTILINE_CONTROLS = {"\n", "\t", "\r"}


def _refused(char: str, multiline: bool) -> bool:
    code = ord(char)
    if code in _DIRECTION or code in _OTHER:
        return True
    category = unicodedata.category(char)
    if category == "Cc":
        return not (multiline and char in _MULTILINE_CONTROLS)
    return category == "Cs"


def check(field: str, value: str, *, multiline: bool = False) -> str:
    """``value`` without surrounding spaces, tabs and line breaks, if every other character
    is allowed; InvalidRequest naming the field (code ``invalid_characters``) otherwise. (Not
    ``str.strip()``: it would quietly drop some controls, such as U+0085, at the ends.)"""
    value = value.strip(" \t\r\n")
    for position, char in enumerate(value):
        if _refused(char, multiline):
            code = f"U+{ord(char):04X}"
            name = unicodedata.name(char, "a control or unassigned character")
            raise InvalidRequest(
                _(
                    "%(field)s contains a character that is not allowed: %(code)s (%(name)s) at "
                    "position %(position)s. Remove control and text-direction characters.",
                    field=field,
                    code=code,
                    name=name.lower(),
                    position=position + 1,
                ),
                code="invalid_characters",
                details={"field": field, "character": code, "position": position + 1},
            )
    return value
