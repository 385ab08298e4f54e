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
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{field} must be a folder, got the file {text!r}", field=field)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise BadInput(f"{field}: cannot create the folder {text!r} ({reason})", field=field) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"{field}: the folder {text!r} is not writable", field=field)
    return folder
