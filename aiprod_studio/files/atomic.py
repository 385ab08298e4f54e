"""Durable, atomic file replacement: nothing half-written ever appears under a real name."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def replace_durably(tmp: Path, path: Path) -> None:
    """fsync `tmp`, rename it over `path`, then fsync the folder so the rename survives a crash."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file beside it, then `replace_durably`)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_durably(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def fsync_dir(path: Path) -> None:
    """fsync a folder so the names created in it survive a crash (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every folder below `root` (and `root`'s parent): their entries are then durable."""
    for dirpath, _dirnames, _files in os.walk(root):
        fsync_dir(Path(dirpath))
    fsync_dir(root.parent)
