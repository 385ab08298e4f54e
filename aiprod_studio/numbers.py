"""Whole numbers given by users and scripts: job ids, storyboard ids, counts.

One check for all of them, so `1.5`, `"²"`, `True`, `inf` or `2**70` get the same clear
error naming the field, never an `OverflowError` from SQLite or a silent `int(1.5) == 1`.
"""

from __future__ import annotations

from aiprod_studio.errors import BadInput
from aiprod_studio.text import echo

MAX_SQLITE_INT = 2**63 - 1


def whole_number(
    value: object, field: str, low: int = 1, high: int = MAX_SQLITE_INT, strict: bool = False, what: str = ""
) -> int:
    """`value` as an int in `low…high`, else `BadInput(field=field)`.

    Unless `strict`, an integral float (`3.0`) and a string of ASCII digits (`"3"`) are
    accepted, as the UI's number boxes and command lines send them. `what` replaces
    `field` in the message where a longer name reads better ("storyboard id").
    """
    name = what or field
    if not strict:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be a whole number, got {echo(value)}", field=field)
    if not low <= value <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}, got {echo(value)}", field=field)
    return value
