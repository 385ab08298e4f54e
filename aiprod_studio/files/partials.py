"""Partial files: what a writer holds while it writes, and what a crash leaves behind.

Outputs are written to a hidden temp name (`.NAME.partial`) and renamed into place when
complete. The writer holds an exclusive `flock` on the temp file for as long as it writes
(`holding`); the kernel drops that lock when the process dies, even by `kill -9`. So a
partial file nobody holds is a crash's leftover and `sweep` removes it, while the file of a
render still running in another process is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from aiprod_studio.files import locks

log = logging.getLogger(__name__)

SUFFIX = ".partial"


def temp_path_for(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}{SUFFIX}")


@contextlib.contextmanager
def holding(tmp: Path) -> Iterator[None]:
    """Create `tmp` and hold its lock until the block ends (the writer writes it meanwhile)."""
    fd = locks.take(tmp)
    try:
        yield
    finally:
        os.close(fd)


def _remove_if_unheld(path: Path) -> bool:
    fd = locks.take_if_unheld(path)  # None: gone, a symlink, unreadable, or a live writer holds it
    if fd is None:
        return False
    try:
        path.unlink()
        return True
    finally:
        os.close(fd)


def sweep(paths: Iterable[Path | str]) -> list[Path]:
    """Remove the given partial files that no live writer holds; returns those removed."""
    removed = []
    for p in paths:
        p = Path(p)
        if p.name.startswith(".") and p.name.endswith(SUFFIX) and _remove_if_unheld(p):
            removed.append(p)
    if removed:
        log.info(
            "removed %d partial file(s) left by an interrupted render: %s",
            len(removed),
            ", ".join(str(p) for p in removed),
        )
    return removed


def sweep_tree(root: Path | str) -> list[Path]:
    """`sweep` every `.*.partial` file below `root`."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sweep(p for p in root.rglob(f".*{SUFFIX}") if p.is_file())
