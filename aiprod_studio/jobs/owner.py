"""Who is running a job, and whether that process still lives.

A `running` row records its owner: the process id, the host, a token for the process's
start (so a recycled process id is not mistaken for the owner) and a heartbeat the owner
refreshes while it works. A row is `running` only while its owner lives:

- on the owner's own host, the process must exist with the same start token (exact, at
  once: a `kill -9` is seen by the next reader);
- from another host or container (a shared data folder), the heartbeat must be younger than
  `STALE_AFTER_S` by this machine's clock (keep the machines' clocks in step).

A row from before owners were recorded has none, and counts as orphaned.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0  # how often a working owner refreshes its row
STALE_AFTER_S = 60.0  # a remote owner silent this long is presumed gone


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """Process ids mean something only within one pid namespace (a container has its own)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """A token that changes when `pid` is reused: the start time in clock ticks since boot
    (Linux `/proc`); "" where that cannot be read; None when no such process exists."""
    if not os.path.isdir("/proc/self"):  # no /proc (another Unix): the process id alone
        return _signal_zero(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        # the command name (field 2) may hold spaces or parentheses: count from the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):  # a zombie has finished its work
            return None
        return fields[19]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError):
        return _signal_zero(pid)


def _signal_zero(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # it exists, owned by someone else
        return ""
    return ""


@lru_cache(maxsize=1)
def host_id() -> str:
    """This machine, this boot of it, and this pid namespace: a process id means something only here."""
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}"


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    start: str

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, host_id(), process_start(pid) or "")

    def columns(self) -> dict[str, Any]:
        return {"owner_pid": self.pid, "owner_host": self.host, "owner_start": self.start, "heartbeat": time.time()}

    def describe(self) -> str:
        return f"process {self.pid} on {self.host.split('/')[0]}"


def owner_of(row: dict[str, Any]) -> Owner | None:
    if not row.get("owner_pid") or not row.get("owner_host"):
        return None
    return Owner(int(row["owner_pid"]), str(row["owner_host"]), str(row.get("owner_start") or ""))


def is_alive(row: dict[str, Any], now: float | None = None) -> bool:
    """Does the process recorded on this row still live (see the module's rules)?"""
    owner = owner_of(row)
    if owner is None:
        return False
    if owner.host == host_id():
        start = process_start(owner.pid)
        return start is not None and (not owner.start or not start or start == owner.start)
    beat = row.get("heartbeat")
    return beat is not None and (now if now is not None else time.time()) - float(beat) < STALE_AFTER_S


class Heartbeat:
    """While a job runs: call `beat()` every `HEARTBEAT_S` seconds in a daemon thread; when it
    returns True (a cancel asked from another process), set `cancel`.

        with Heartbeat(lambda: history.beat(job_id), cancel):
            ...the work...
    """

    def __init__(self, beat: Callable[[], bool], cancel: threading.Event | None = None, every: float = HEARTBEAT_S):
        self._beat, self._cancel, self._every = beat, cancel, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiprod-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if self._beat() and self._cancel is not None:
                    self._cancel.set()
            except Exception:  # noqa: BLE001 - a missed beat is retried; the job goes on
                log.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
