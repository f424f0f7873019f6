"""Every sentence a participant reads, in message catalogues: one gettext `.po` file per
language under `locales/<language>/LC_MESSAGES/messages.po`, read with Babel on first use (no
compile step). Templates name keys only (`t("greeting", name=…)`), so another language is one
more catalogue, not another set of templates.

English is the reference: every key is there. A key a shipped language lacks (or leaves
untranslated or fuzzy) is said in English, and logged by key and language only. Values are
`str.format` patterns; what they are filled with (a subject, a name) is participant text,
escaped by the HTML templates after formatting, like any other value.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from shared.domain.language import language_tag, primary_language

logger = logging.getLogger("meetings.mail")

LOCALES = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"
# The Babel (CLDR) locale whose names and zone abbreviations a language's dates use. English
# is British English, as the catalogue is ("cancelled"; BST for London's summer time).
CLDR_LOCALE = {"en": "en_GB"}

_lock = threading.Lock()
_catalogues: dict[str, dict[str, str]] = {}
_missing_logged: set[tuple[str, str]] = set()


@functools.cache
def shipped_languages() -> tuple[str, ...]:
    """The languages with a catalogue, English first."""
    found = sorted(path.parent.parent.name for path in LOCALES.glob("*/LC_MESSAGES/messages.po"))
    return (DEFAULT_LANGUAGE, *(name for name in found if name != DEFAULT_LANGUAGE))


def catalogue(language: str) -> Mapping[str, str]:
    """Key → pattern of one shipped language, read once per process (translated, not fuzzy)."""
    with _lock:
        found = _catalogues.get(language)
        if found is None:
            found = _catalogues[language] = _read(language)
        return found


def _read(language: str) -> dict[str, str]:
    from babel.messages.pofile import read_po

    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as file:
        entries = read_po(file, locale=CLDR_LOCALE.get(language, language))
    return {
        str(message.id): str(message.string)
        for message in entries
        if message.id and message.string and not message.fuzzy
    }


def language_for(*tags: str | None) -> str:
    """The shipped language of the first tag that has one ("de-AT" → "de"), else English: a
    recipient's locale first, then the tenant's."""
    shipped = shipped_languages()
    for tag in tags:
        canonical = language_tag(tag) if tag else None
        if canonical is not None and primary_language(canonical) in shipped:
            return primary_language(canonical)
    return DEFAULT_LANGUAGE


class _English(Mapping[str, str]):
    """The English catalogue, read on first use like the others."""

    def __getitem__(self, key: str) -> str:
        return catalogue(DEFAULT_LANGUAGE)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue(DEFAULT_LANGUAGE))

    def __len__(self) -> int:
        return len(catalogue(DEFAULT_LANGUAGE))


ENGLISH: Mapping[str, str] = _English()


class Strings:
    """The strings of one language (a tag of any shipped language; anything else is English).
    A key English lacks is a bug, so it raises."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        self.language = language_for(language)

    @property
    def cldr_locale(self) -> str:
        return CLDR_LOCALE.get(self.language, self.language)

    def pattern(self, key: str) -> str:
        found = catalogue(self.language).get(key)
        if found is not None:
            return found
        english = ENGLISH[key]
        if self.language != DEFAULT_LANGUAGE and (key, self.language) not in _missing_logged:
            _missing_logged.add((key, self.language))
            logger.warning("mail text %s has no %s translation; English used", key, self.language)
        return english

    def __call__(self, key: str, **values: object) -> str:
        return self.pattern(key).format(**values)
