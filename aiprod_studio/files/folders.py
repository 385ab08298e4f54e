"""An output folder the user names (an export's destination): checked, created, writable.

The answer to a bad one is a `BadInput` naming the field and the folder in words, never an
`[Errno …]` from the library that tripped on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiprod_studio.errors import BadInput


def writable_folder(value: Path | str, field: str) -> Path:
    """The folder `value` (created with its parents when missing), refused when it cannot hold files."""
    text = str(value).strip()
    if not text:
        raise BadInput(f"{field}: give a folder to write into", field=field)
    try:
        folder = Path(text).expanduser()
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"{field} must be a folder, got the file {text!r}", field=field)
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, ~nobody, a name too long, no such device…
        reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
        raise BadInput(f"{field}: cannot create the folder {text[:200]!r} ({reason})", field=field) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"{field}: the folder {text!r} is not writable", field=field)
    return folder
