"""Text every recipe, shot and name passes: no lone surrogates or control characters, and
error messages that repeat a bad value only in part."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import field_validator

T = TypeVar("T")

# Characters no prompt, name or script may carry: lone surrogates (not text: they cannot be
# written as UTF-8, so the database, JSON files and MP4 metadata would fail on them) and
# control characters other than tab, newline, vertical tab, form feed and carriage return.
_BAD_CHAR_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
MAX_ECHO_CHARS = 120  # how much of a bad value an error message repeats


def check_text(value: T, where: str = "", surrogates_only: bool = False) -> T:
    """Refuse a lone surrogate or a control character anywhere in `value` (strings in lists and dicts too).

    Raises `ValueError("contains an invalid character (lone surrogate U+D800 at position 3)")`;
    pydantic validators prefix it with the field's name. `surrogates_only`: control
    characters pass (for raw text that is cleaned afterwards, like a script).
    """
    if isinstance(value, str):
        if m := (_SURROGATE_RE if surrogates_only else _BAD_CHAR_RE).search(value):
            code = ord(m.group())
            kind = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "NUL" if code == 0 else "control character"
            raise ValueError(
                f"contains an invalid character ({kind} U+{code:04X} at position {m.start()}"
                f"{f' of {where}' if where else ''})"
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, f"{where}[{k!r}]" if where else f"key {k!r}", surrogates_only)
            check_text(v, f"{where}[{k!r}]", surrogates_only)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_text(v, f"{where}[{i}]", surrogates_only)
    return value


def text_fields(*fields: str) -> Any:
    """A pydantic validator running `check_text` on the named fields."""
    return field_validator(*fields)(lambda value: check_text(value))


def echo(value: object) -> str:
    """`repr(value)`, cut short for an error message (a huge number by its digit count)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= MAX_ECHO_CHARS else f"{text[: MAX_ECHO_CHARS - 1]}…"
