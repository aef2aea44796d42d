"""The page's languages: negotiation, and catalogues that are complete and current."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from projections import i18n, web

PROJECTIONS = Path(web.__file__).parents[2]
"""services/projections: babel.cfg is there."""
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize(
    ("query", "header", "lang"),
    [
        (None, None, "en"),
        (None, "fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        (None, "de-AT", "de"),
        (None, "it, de;q=0.5, fr;q=0.6", "fr"),
        (None, "fr;q=0, de;q=0.1", "de"),
        (None, "pl, *;q=0.1", "en"),
        (None, "pl", "en"),
        (None, "de;q=oops, fr;q=0.4", "fr"),
        ("de", "fr", "de"),
        ("xx", "fr", "fr"),
        ("", None, "en"),
    ],
)
def test_the_language_is_the_parameter_else_the_best_accepted_else_english(
    query: str | None, header: str | None, lang: str
) -> None:
    choice = i18n.choose(query, header)
    assert choice.lang == lang
    assert choice.explicit == (query in i18n.LANGUAGES)


def test_country_names_are_in_the_page_s_language() -> None:
    assert [i18n.country_name("LT", lang) for lang in ("en", "fr", "de")] == [
        "Lithuania",
        "Lituanie",
        "Litauen",
    ]
    assert i18n.country_name("AA", "fr") == "AA"
    assert i18n.country_name(None, "fr") == ""


def _extracted() -> set[Any]:
    mapping = [
        ("src/projections/web.py", "python"),
        ("src/projections/i18n.py", "python"),
        ("src/projections/templates/**.html", "jinja2"),
    ]
    found = extract_from_dir(
        str(PROJECTIONS),
        mapping,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    )
    return {message[2] for message in found}


def _catalogue(lang: str) -> dict[Any, Any]:
    path = i18n.LOCALES / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang)
    return {m.id: m.string for m in catalog if m.id and not m.fuzzy}


@pytest.mark.parametrize("lang", [code for code in i18n.LANGUAGES if code != i18n.DEFAULT])
def test_each_catalogue_translates_exactly_the_page_s_messages(lang: str) -> None:
    """After a change of the page's text: make translations, then translate what is new."""
    catalogue = _catalogue(lang)
    assert set(catalogue) == _extracted(), "run make translations"
    for msgid, translated in catalogue.items():
        singular = msgid if isinstance(msgid, str) else msgid[0]
        forms = [translated] if isinstance(translated, str) else list(translated)
        assert all(forms), f"{lang}: no translation of {singular!r}"
        for form in forms:  # the same placeholders, or the page fails to render
            assert set(PLACEHOLDER.findall(form)) == set(PLACEHOLDER.findall(singular)), form


def test_a_compiled_catalogue_translates_and_keeps_placeholders() -> None:
    de = i18n.translations("de")
    assert de.gettext("Labels") == "Labels" and de.gettext("Country") == "Land"
    assert de.ngettext(
        "Status on %(day)s. %(count)s label matches.",
        "Status on %(day)s. %(count)s labels match.",
        2,
    ) == ("Status am %(day)s. %(count)s Labels passen.")
    assert i18n.translations("en").gettext("Country") == "Country"
