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


class Catalogues:
    """The catalogues in one folder (`<language>/LC_MESSAGES/messages.po`), each read once per
    process on first use: key → pattern, translated entries only (an empty or fuzzy one is
    missing, so English is said instead)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._read: dict[str, dict[str, str]] = {}
        self._missing_logged: set[tuple[str, str]] = set()
        self.languages = tuple(
            sorted(
                (p.parent.parent.name for p in folder.glob("*/LC_MESSAGES/messages.po")),
                key=lambda name: (name != DEFAULT_LANGUAGE, name),
            )
        )

    def __getitem__(self, language: str) -> Mapping[str, str]:
        with self._lock:
            found = self._read.get(language)
            if found is None:
                found = self._read[language] = self._load(language)
            return found

    def _load(self, language: str) -> dict[str, str]:
        from babel.messages.pofile import read_po

        path = self._folder / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as file:
            entries = read_po(file, locale=CLDR_LOCALE.get(language, language))
        return {
            str(message.id): str(message.string)
            for message in entries
            if message.id and message.string and not message.fuzzy
        }

    def language_for(self, *tags: str | None) -> str:
        """The shipped language of the first tag that has one ("de-AT" → "de"), else
        English: a recipient's locale first, then the tenant's."""
        for tag in tags:
            canonical = language_tag(tag) if tag else None
            if canonical is not None and primary_language(canonical) in self.languages:
                return primary_language(canonical)
        return DEFAULT_LANGUAGE

    def pattern(self, language: str, key: str) -> str:
        """The pattern of `key` in `language`, or English's when it has none (logged once by
        key and language, never with a value). A key English lacks raises KeyError."""
        found = self[language].get(key)
        if found is not None:
            return found
        english = self[DEFAULT_LANGUAGE][key]
        with self._lock:
            first = (key, language) not in self._missing_logged
            self._missing_logged.add((key, language))
        if first:
            logger.warning("mail text %s has no %s translation; English used", key, language)
        return english


CATALOGUES = Catalogues(LOCALES)


def shipped_languages() -> tuple[str, ...]:
    """The languages with a catalogue, English first."""
    return CATALOGUES.languages


def language_for(*tags: str | None) -> str:
    """The shipped language of the first tag that has one ("de-AT" → "de"), else English."""
    return CATALOGUES.language_for(*tags)


class _English(Mapping[str, str]):
    """The English catalogue, read on first use like the others."""

    def __getitem__(self, key: str) -> str:
        return CATALOGUES[DEFAULT_LANGUAGE][key]

    def __iter__(self) -> Iterator[str]:
        return iter(CATALOGUES[DEFAULT_LANGUAGE])

    def __len__(self) -> int:
        return len(CATALOGUES[DEFAULT_LANGUAGE])


ENGLISH: Mapping[str, str] = _English()


class Strings:
    """The strings of one language (a tag of any shipped language; anything else is English).
    A key English lacks is a bug, so it raises."""

    def __init__(
        self, language: str = DEFAULT_LANGUAGE, catalogues: Catalogues = CATALOGUES
    ) -> None:
        self._catalogues = catalogues
        self.language = catalogues.language_for(language)

    @property
    def cldr_locale(self) -> str:
        """The Babel locale its dates are written in."""
        return CLDR_LOCALE.get(self.language, self.language)

    def pattern(self, key: str) -> str:
        return self._catalogues.pattern(self.language, key)

    def __call__(self, key: str, **values: object) -> str:
        return self.pattern(key).format(**values)
