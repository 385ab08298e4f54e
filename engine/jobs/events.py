"""Following a job: the one polling loop every watcher uses, and the typed events it yields.

`watch(read)` re-reads a job's row until it reaches a final status and yields the row
each time it changed (by `key`, status and step by default). The queue's `follow` turns
those rows into events — `Progress` while the job waits or runs, then one of `Done`,
`Failed`, `Stopped` — and the film and training watchers read the rows directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.jobs.timing import StepClock

Row = dict[str, Any]


@dataclass(frozen=True)
class Progress:
    job_id: int
    status: str  # queued | running
    step: int
    total: int
    position: int | None  # place in the queue while queued
    elapsed_s: float
    step_s: float | None = None  # seconds per step, measured over the steps seen after the first
    typical_step_s: float | None = None  # seconds per step of this machine's last jobs like this one

    @property
    def loading(self) -> bool:
        """Running but no step done yet: the model is loading (or the device is still busy)."""
        return self.status == "running" and self.step == 0

    @property
    def eta_s(self) -> float | None:
        """Seconds left, once there is a basis: the job's own steps once two were seen (the first
        one carries the model's loading time, so it says nothing about the rest), before that the
        machine's past jobs of the same model and size; None while there is neither."""
        per_step = self.step_s if self.step_s is not None else self.typical_step_s
        if per_step is None or self.status != "running":
            return None
        return per_step * (self.total - self.step)


@dataclass(frozen=True)
class Done:
    row: Row


@dataclass(frozen=True)
class Failed:
    row: Row

    @property
    def error(self) -> str:
        return self.row.get("error") or "failed"


@dataclass(frozen=True)
class Stopped:
    row: Row


Event = Progress | Done | Failed | Stopped


def _status_and_step(row: Row) -> Hashable:
    return row["status"], row.get("step"), row.get("position")


def watch(
    read: Callable[[], Row],
    key: Callable[[Row], Hashable] = _status_and_step,
    poll_s: float = 0.1,
    timeout_s: float | None = None,
) -> Iterator[Row]:
    """Yield the row from `read()` whenever `key(row)` changes, the last one in a final status.

    Raises `TimeoutError` when the job is still queued or running after `timeout_s`."""
    started, last = time.perf_counter(), None
    first = True
    while True:
        row = read()
        final = row["status"] in FINAL_STATUSES
        seen = key(row)
        if first or seen != last or final:
            first, last = False, seen
            yield row
        if final:
            return
        if timeout_s is not None and time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"job {row['id']} still {row['status']} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def events(
    read: Callable[[], Row], poll_s: float = 0.1, timeout_s: float | None = None, typical_step_s: float | None = None
) -> Iterator[Event]:
    """`watch` as typed events: `Progress` whenever the job moves, then its final event;
    `typical_step_s` (from past jobs) estimates the time left until the job's own steps do."""
    started = time.perf_counter()
    clock = StepClock()  # timed from the first step seen done: the ones before carry the loading
    for row in watch(read, poll_s=poll_s, timeout_s=timeout_s):
        status = row["status"]
        step, now = row["step"] or 0, time.perf_counter()
        if status == "running":
            clock.tick(step)
        step_s = clock.step_s
        if status == "done":
            yield Done(row)
        elif status == "failed":
            yield Failed(row)
        elif status in FINAL_STATUSES:
            yield Stopped(row)
        else:
            total = row["total_steps"] or 0
            yield Progress(row["id"], status, step, total, row.get("position"), now - started, step_s, typical_step_s)
