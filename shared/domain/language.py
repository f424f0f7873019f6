"""Language tags (BCP 47, RFC 5646) as participants and tenants give them: "de", "de-AT",
"en-GB", "zh-Hant-TW". A tag is checked for form and kept as given (in canonical case); which
of the shipped languages it is written in is decided when a mail is rendered."""

from __future__ import annotations

import re

# RFC 5646 recommends room for at least 35 characters; anything longer is not a language a
# person chose but data.
MAX_TAG_CHARS = 35

# The RFC 5646 "langtag" production (irregular grandfathered tags such as "i-klingon" are not
# accepted; nobody writes mail in them), plus a private-use tag alone ("x-whatever").
_TAG = re.compile(
    r"""
    (?:
      (?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})
      (?:-(?P<script>[a-z]{4}))?
      (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
      (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*
      (?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*
      (?:-x(?:-[a-z0-9]{1,8})+)?
    |
      x(?:-[a-z0-9]{1,8})+
    )
    """,
    re.VERBOSE,
)


def language_tag(text: str) -> str | None:
    """`text` as a well-formed BCP 47 tag in canonical case ("DE-at" → "de-AT"), or None when
    it is not one (empty, too long, `_` for `-`, a stray character)."""
    if not 0 < len(text) <= MAX_TAG_CHARS or not text.isascii():
        return None
    lowered = text.lower()
    if not _TAG.fullmatch(lowered):
        return None
    parts = lowered.split("-")
    out = [parts[0]]
    singleton = parts[0] == "x"
    for part in parts[1:]:
        # Case after the first subtag: a script is Title, a region UPPER (RFC 5646 §2.1.1);
        # nothing after an extension or private-use singleton changes.
        if len(part) == 1:
            singleton = True
        if not singleton and len(part) == 4 and part.isalpha():
            part = part.title()
        elif not singleton and len(part) == 2:
            part = part.upper()
        out.append(part)
    return "-".join(out)


def primary_language(tag: str) -> str:
    """The language subtag of a well-formed tag: "de" of "de-AT"."""
    return tag.split("-", 1)[0].lower()
