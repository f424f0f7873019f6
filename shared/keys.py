"""Ids that become part of a table key, and the one check of what they may hold.

Pure: the API, the token check and the Stripe webhook refuse a bad id with it before any
storage call, and the repositories check every key with it too (`shared.storage.tables`
raises storage's `InvalidKeyError`, a subclass of the one here, so that a bad key met in
storage fails like any storage error).
"""

from __future__ import annotations

import re

# Table Storage forbids / \ # ? and control characters in PartitionKey and RowKey, and caps
# each at 1 KiB. We also forbid "|", which our composite row keys use as the separator.
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?|\x00-\x1f\x7f-\x9f]")
# PartitionKey and RowKey hold at most 1 KiB of UTF-16, i.e. 512 characters. Ids are kept to
# 255 so that composite row keys ("p|{participant}|{booking}", "b|{booking}|{time}|{record}")
# always fit.
MAX_KEY_LENGTH = 255


class InvalidKeyError(ValueError):
    """An id holds characters Table Storage forbids in a key, or is empty or too long."""


def validate_key(value: str, what: str) -> str:
    """Return `value` if it can be part of a table key, else raise `InvalidKeyError`."""
    if not isinstance(value, str) or not value:
        raise InvalidKeyError(f"{what} must be a non-empty string")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"{what} is longer than {MAX_KEY_LENGTH} characters")
    bad = _FORBIDDEN_KEY_CHARS.search(value)
    if bad:
        raise InvalidKeyError(
            f"{what} {value!r} contains {bad.group()!r}; keys may not contain "
            "'/', '\\', '#', '?', '|' or control characters"
        )
    if not is_utf8(value):
        raise InvalidKeyError(f"{what} is not valid text (it holds a lone surrogate)")
    return value


def is_utf8(value: str) -> bool:
    # A lone surrogate cannot be stored (nor sent as JSON to Storage): refuse it before any call.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
