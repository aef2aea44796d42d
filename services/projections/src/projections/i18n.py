"""The public page's languages: gettext catalogues (Babel), negotiation, country names.

The catalogues' sources are the committed ``locales/<lang>/LC_MESSAGES/messages.po`` files;
they are compiled in memory (Babel's ``write_mo``) the first time a page is rendered, so
no compiled ``.mo`` file is committed or built at setup and none can drift from its
source. ``make translations`` extracts the messages of the templates and the page modules
into ``locales/messages.pot`` and merges them into each ``.po`` (tests/unit/projections/
test_i18n.py fails when one is out of date or has an untranslated message).

The language of a page: ``?lang=`` when it names one (a permalink), else the best of the
``Accept-Language`` header (RFC 9110, 12.5.4; quality values honoured), else English.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from gettext import GNUTranslations, NullTranslations
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "de": "Deutsch"}
"""The page's languages, each named in itself (the language switch)."""


def N_(message: str) -> str:  # noqa: N802 (the gettext convention)
    """Mark a message for extraction; translated where it is shown."""
    return message


@cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalogue of ``lang`` (English: the messages themselves)."""
    if lang == DEFAULT:
        return NullTranslations()
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return GNUTranslations(compiled)


def _quality(part: str) -> tuple[str, float]:
    tag, _, params = part.strip().partition(";")
    q = 1.0
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return tag.strip().lower(), q


def from_accept_language(header: str | None) -> str | None:
    """The best of our languages in an ``Accept-Language`` header, or None."""
    if not header:
        return None
    ranked = sorted(
        (_quality(part) for part in header.split(",")[:32] if part.strip()),
        key=lambda tq: -tq[1],
    )  # a stable sort: equal qualities keep the header's order
    for tag, q in ranked:
        if q <= 0:
            continue
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
        if tag == "*":
            return DEFAULT
    return None


@dataclass(frozen=True)
class Choice:
    """The language of one page, and whether the visitor asked for it with ``?lang=``."""

    lang: str
    explicit: bool


def choose(query_lang: str | None, accept_language: str | None) -> Choice:
    """``?lang=`` if it names one of ours, else ``Accept-Language``, else English."""
    if query_lang in LANGUAGES:
        return Choice(query_lang, explicit=True)
    return Choice(from_accept_language(accept_language) or DEFAULT, explicit=False)


@cache
def country_names(lang: str) -> dict[str, str]:
    """ISO 3166-1 alpha-2 codes to country names in ``lang`` (CLDR, through Babel)."""
    territories = Locale.parse(lang).territories
    return {code: name for code, name in territories.items() if len(code) == 2 and code.isalpha()}


def country_name(code: str | None, lang: str) -> str:
    """The name of a country code in ``lang``; an unknown code as it is."""
    if not code:
        return ""
    return country_names(lang).get(code.upper(), code)


current: ContextVar[str] = ContextVar("page_language", default=DEFAULT)
"""The language of the page being rendered (set per request, read by the callables)."""


def gettext(message: str) -> str:
    return translations(current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current.get()).ngettext(singular, plural, n)


CALLABLES: tuple[Callable[[str], str], Callable[[str, str, int], str]] = (gettext, ngettext)
"""What the Jinja environment's i18n extension calls (newstyle gettext)."""
