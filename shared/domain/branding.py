"""How a tenant's mail presents itself: name, logo, accent colour, reply-to and footer.

The rules of what a value may be live here, once: the API refuses a value that breaks them, and
the mail renderer checks them again before a value goes into a mail (a row written by other
means is still data, never markup, a script or CSS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

MAX_DISPLAY_NAME_CHARS = 100
MAX_LOGO_URL_CHARS = 2048
MAX_CONTACT_LINE_CHARS = 200
MAX_FOOTER_TEXT_CHARS = 500
DEFAULT_ACCENT = "#5b5fc7"

# "#rgb" or "#rrggbb": nothing a style attribute could read as more than one colour.
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# An absolute https URL: a host name (no user, password or IP literal), an optional port, then
# visible ASCII only (no spaces, controls, quotes, backslashes or angle brackets; non-ASCII
# hosts and paths come punycode- or percent-encoded). docs/openapi.yaml holds the same pattern.
LOGO_URL = re.compile(
    rf"https://(?:{_LABEL}\.)+{_TOP_LABEL}(?::{_PORT})?"
    r"(?:[/?#][!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]*)?"
)


@dataclass(frozen=True)
class Branding:
    """A tenant's mail branding; every field is optional (None: the default look)."""

    display_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None
    reply_to: str | None = None
    contact_line: str | None = None
    footer_text: str | None = None


def is_color(value: object) -> TypeGuard[str]:
    """`#rgb` or `#rrggbb`, and nothing else."""
    return isinstance(value, str) and _COLOR.fullmatch(value) is not None


def logo_url_problem(value: object) -> str | None:
    """Why `value` cannot be a logo's address (None: it can): `LOGO_URL`, at most 2048
    characters."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_LOGO_URL_CHARS:
        return f"is longer than {MAX_LOGO_URL_CHARS} characters"
    if LOGO_URL.fullmatch(value):
        return None
    if not value.startswith("https://"):
        return "must be an https URL (https://host/path)"
    authority = value[len("https://") :].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return "must not carry a user name or password"
    return (
        "must name a host and hold only visible ASCII characters, without quotes, "
        "backslashes or angle brackets (e.g. https://example.com/logo.png)"
    )


def is_logo_url(value: object) -> TypeGuard[str]:
    return logo_url_problem(value) is None
