"""The two languages (SPEC §14): the current one, its translations, and Babel's formats.

English is the source language (every msgid is English); Norwegian Bokmål (``nb``) has its
catalogs in ``app/translations/nb/LC_MESSAGES``: ``messages`` for Python and templates, ``js``
for the page scripts. The install step compiles them (``scripts/i18n.sh compile``); a fresh
checkout, or a ``.po`` edited since, is read from the ``.po`` itself, so the text a person sees
is never older than the catalog in the repository.

The language of the work at hand is a context variable: the web edge sets it per request,
the CLI and the worker leave the default. The domain writes its messages with :func:`_`.
"""

from __future__ import annotations

import contextvars
import gettext as gettext_module
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from babel import Locale, dates, numbers
from babel.messages import mofile, pofile
from babel.support import Translations

LANGUAGES: tuple[str, ...] = ("en", "nb")
DEFAULT_LANGUAGE = "en"
# What each language calls itself (the switch shows the other one in its own words).
NAMES = {"en": "English", "nb": "Norsk (bokmål)"}


TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"

_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "cr_language", default=DEFAULT_LANGUAGE
)


def normalise(language: str | None) -> str | None:
    """``nb`` for the Norwegian tags (``nb``, ``no``, ``nn``, ``nb-NO`` …), ``en`` for English,
    None for anything else."""
    if not language:
        return None
    primary = language.strip().replace("_", "-").split("-")[0].lower()
    if primary in ("nb", "no", "nn"):
        return "nb"
    return "en" if primary == "en" else None


def current() -> str:
    return _current.get()


def set_language(language: str) -> contextvars.Token[str]:
    return _current.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def reset_language(token: contextvars.Token[str]) -> None:
    _current.reset(token)


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Work in ``lang`` for a while (an e-mail to a person, a test)."""
    token = set_language(lang)
    try:
        yield
    finally:
        reset_language(token)


def _po_path(lang: str, domain: str) -> Path:
    return TRANSLATIONS_DIR / lang / "LC_MESSAGES" / f"{domain}.po"


@lru_cache(maxsize=8)
def _translations(lang: str, domain: str, stamp: float) -> gettext_module.NullTranslations:
    po, mo = _po_path(lang, domain), _po_path(lang, domain).with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= stamp:
        with mo.open("rb") as handle:
            return Translations(handle, domain=domain)
    if not po.exists():
        return gettext_module.NullTranslations()
    with po.open("rb") as handle:
        catalog = pofile.read_po(handle, locale=lang, domain=domain)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)  # fuzzy entries left out, as pybabel compile does
    buffer.seek(0)
    return Translations(buffer, domain=domain)


def translations(lang: str, domain: str = "messages") -> gettext_module.NullTranslations:
    if lang == DEFAULT_LANGUAGE or lang not in LANGUAGES:
        return gettext_module.NullTranslations()
    po = _po_path(lang, domain)
    # The .po's time keys the cache: an edited catalog is read again, a stale .mo ignored.
    stamp = po.stat().st_mtime if po.exists() else 0.0
    return _translations(lang, domain, stamp)


def _(message: str, **values: object) -> str:
    """``message`` in the current language; ``%(name)s`` filled from ``values``."""
    text = translations(current()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values: object) -> str:
    """The form for ``n`` in the current language; ``%(num)s`` is ``n``, written locally."""
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": format_number(n), **values}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; translated where it is shown."""
    return message


# Each language named in the reader's words (translated where shown).
IN_WORDS = {"en": N_("English"), "nb": N_("Norwegian (bokmål)")}


def language_name(language: str) -> str:
    """A language named in the current one ("Norwegian (bokmål)", "engelsk")."""
    return translate(IN_WORDS.get(language, language))


def translate(message: str) -> str:
    """A message marked with :func:`N_` (or any literal msgid) in the current language."""
    return translations(current()).gettext(message)


class StoredMessages:
    """Messages written in English where no reader is known (by the worker, by a library), put
    back into the reader's language where they are shown.

    Each message is made from one of ``templates`` (marked with :func:`N_`, with ``%(name)s``
    placeholders); :meth:`translate` finds the template a message was made from and fills its
    translation with the same values. A value named in ``value_words`` (e.g. ``part`` →
    ``{"screen": N_("the screen file")}``) is itself translated. A message made from no
    template is answered as it is.
    """

    _PLACEHOLDER = re.compile(r"%\((\w+)\)s")

    def __init__(
        self, templates: Iterable[str], value_words: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.templates = tuple(templates)
        self.value_words = dict(value_words or {})
        self._patterns = tuple((self._pattern(t), t) for t in self.templates)

    @classmethod
    def _pattern(cls, template: str) -> re.Pattern[str]:
        parts = cls._PLACEHOLDER.split(template)  # text, name, text, name, …, text
        regex = "".join(
            f"(?P<{part}>.+?)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
        )
        return re.compile(f"^{regex}$", re.DOTALL)

    def translate(self, message: str) -> str:
        for pattern, template in self._patterns:
            match = pattern.match(message)
            if match and translate(template) == template:
                return message  # the source language, or no translation: the words as written
            if match:
                values = {
                    name: translate(self.value_words.get(name, {}).get(value, value))
                    if name in self.value_words
                    else value
                    for name, value in match.groupdict().items()
                }
                return _(template, **values)
        return message


def translate_plural(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def catalog(lang: str) -> dict[str, str | list[str]]:
    """The page scripts' catalog: msgid → text, or a plural msgid → its forms."""
    if lang == DEFAULT_LANGUAGE:
        return {}
    po = _po_path(lang, "js")
    if not po.exists():
        return {}
    with po.open("rb") as handle:
        parsed = pofile.read_po(handle, locale=lang, domain="js")
    out: dict[str, str | list[str]] = {}
    for message in parsed:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple | list):
            forms = [str(form) for form in message.string or ()]
            if all(forms):
                out[str(message.id[0])] = forms
        elif message.string:
            out[str(message.id)] = str(message.string)
    return out


def catalog_version(lang: str) -> str:
    """A short hash of the page scripts' catalog: its URL changes when its text does."""
    body = json.dumps(catalog(lang), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


# --- Babel's formats, in the current language -------------------------------------------------


def locale() -> Locale:
    return Locale.parse(current())


def format_number(value: float) -> str:
    return numbers.format_decimal(value, locale=current())


def format_date(value: date | datetime, form: str = "medium") -> str:
    return dates.format_date(value, format=form, locale=current())


def format_datetime(value: datetime, form: str = "medium") -> str:
    """A moment (in UTC unless it carries its zone; the pages upgrade it to local time)."""
    return dates.format_datetime(value, format=form, locale=current())


def format_time(value: datetime, form: str = "short") -> str:
    return dates.format_time(value, format=form, locale=current())


def format_duration(seconds: float) -> str:
    """A length in words: "3 minutes", "3 minutter"."""
    return dates.format_timedelta(
        timedelta(seconds=seconds), threshold=1.0, format="long", locale=current()
    )
