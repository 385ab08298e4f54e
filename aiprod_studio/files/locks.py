"""File locks that die with their process: what a writer holds while it works.

An exclusive `flock` on a file is dropped by the kernel when its holder exits, even by
`kill -9`, so "nobody holds it" means "whoever made it is gone". A lock is only worth
something on the file still under its name: between an open and its lock another process
may have removed the file, so every lock taken here is checked against the path and taken
again on the file now there.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import overload


def same_file(fd: int, path: Path | str) -> bool:
    """Is the file open as `fd` still the one named `path` (not removed, not replaced)?"""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


@overload
def take(path: Path | str, wait_s: None = None) -> int: ...
@overload
def take(path: Path | str, wait_s: float) -> int | None: ...
def take(path: Path | str, wait_s: float | None = None) -> int | None:
    """An fd holding the exclusive lock on `path` (created if absent). `wait_s=None` waits as
    long as it takes; otherwise None once another holder kept it past `wait_s` seconds."""
    deadline = time.monotonic() + (wait_s or 0.0)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait_s is None else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        except BaseException:
            os.close(fd)
            raise
        if same_file(fd, path):
            return fd
        os.close(fd)  # removed by someone between our open and our lock: lock the one now there


def take_if_unheld(path: Path | str) -> int | None:
    """An fd holding the exclusive lock on the existing file `path`, or None when it is gone,
    a symlink, unreadable, or held by a live process. Never creates anything."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: a live holder
        os.close(fd)
        return None
    if same_file(fd, path):
        return fd
    os.close(fd)
    return None
