"""A tenant's meeting subject template: literal text with named fields, nothing else.

Templates come from tenants (`PUT /teams-meetings/settings`), so they are data, never code: no
Python format string, no attribute or index access, no format spec or conversion, no escapes.
A template is text in which `{field}` names one of `FIELDS`; any other brace is refused when it
is saved (`TemplateError`, 400 `invalid_template`). The rendered subject is bounded by
construction: the template's length (`MAX_TEMPLATE_CHARS`) plus the booking's own bounded text,
cut to Graph's subject length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.domain.booking import Booking, ParticipantRole
from shared.errors import AppError

DEFAULT_TEMPLATE = "{subject} {level} Lesson"
MAX_TEMPLATE_CHARS = 200
# What Teams keeps of a meeting's subject; a longer one is cut here rather than refused there.
MAX_SUBJECT_CHARS = 255


def _person(role: ParticipantRole) -> Callable[[Booking], str]:
    def name(booking: Booking) -> str:
        for p in booking.participants:
            if p.role is role:
                return p.display_name or ""
        return ""

    return name


def _local(booking: Booking) -> datetime:
    try:
        return booking.start.astimezone(ZoneInfo(booking.time_zone))
    except (KeyError, ValueError):
        return booking.start


# The fields a template may name, in the order the docs list them.
FIELDS: Mapping[str, Callable[[Booking], str]] = {
    "subject": lambda b: b.subject,
    "level": lambda b: b.level or "",
    "student": _person(ParticipantRole.STUDENT),
    "tutor": _person(ParticipantRole.TUTOR),
    "date": lambda b: _local(b).strftime("%Y-%m-%d"),
    "time": lambda b: _local(b).strftime("%H:%M"),
}

_FIELD = re.compile(r"\{([^{}]*)\}")


class TemplateError(AppError, ValueError):
    """The template is not one this product renders; the message names the problem."""

    code = "invalid_template"


@dataclass(frozen=True)
class SubjectTemplate:
    """A checked template: alternating literal text and field names."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> SubjectTemplate:
        """Check `text` and split it into literals and fields; `TemplateError` if it is not a
        template of this product."""
        if len(text) > MAX_TEMPLATE_CHARS:
            raise TemplateError(
                f"subjectTemplate is {len(text)} characters; at most {MAX_TEMPLATE_CHARS}"
            )
        for char in text:
            if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
                raise TemplateError(
                    f"subjectTemplate contains a control or invisible character (U+{ord(char):04X})"
                )
        parts: list[tuple[str, str | None]] = []
        at = 0
        for match in _FIELD.finditer(text):
            literal = text[at : match.start()]
            _no_stray_braces(literal)
            name = match.group(1)
            if name not in FIELDS:
                raise TemplateError(
                    f"subjectTemplate names an unknown field {{{_shown(name)}}}; the fields are "
                    + ", ".join(f"{{{f}}}" for f in FIELDS)
                    + " (nothing else may stand between braces)"
                )
            parts.append((literal, name))
            at = match.end()
        tail = text[at:]
        _no_stray_braces(tail)
        parts.append((tail, None))
        if not "".join(p[0] for p in parts).strip() and all(p[1] is None for p in parts):
            raise TemplateError("subjectTemplate is empty")
        return cls(tuple(parts))

    def render(self, booking: Booking) -> str:
        """The subject for `booking`: whitespace collapsed, at most MAX_SUBJECT_CHARS, never
        empty (the booking's subject when the template gives nothing)."""
        pieces: list[str] = []
        for literal, name in self.parts:
            pieces.append(literal)
            if name is not None:
                pieces.append(FIELDS[name](booking))
        text = " ".join("".join(pieces).split())[:MAX_SUBJECT_CHARS].rstrip()
        return text or booking.subject[:MAX_SUBJECT_CHARS]


def _no_stray_braces(literal: str) -> None:
    if "{" in literal or "}" in literal:
        raise TemplateError(
            "subjectTemplate has a brace that does not enclose a field name; braces may only "
            "enclose one of " + ", ".join(f"{{{f}}}" for f in FIELDS)
        )


def _shown(name: str) -> str:
    return name if len(name) <= 40 else name[:40] + "…"


DEFAULT = SubjectTemplate.parse(DEFAULT_TEMPLATE)
