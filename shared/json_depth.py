"""How deeply a JSON text nests, found without parsing it, so that a hostile body cannot
exhaust the parser before it is refused."""

from __future__ import annotations


def nesting_depth(raw: bytes | str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest
