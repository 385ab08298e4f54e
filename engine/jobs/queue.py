"""The job queue: a worker thread over the SQLite `jobs` table.

The UI and the API only enqueue and watch; the worker takes queued jobs oldest first and
runs them one at a time (its device is used serially) with the runner of the job's kind —
a table the composition root hands in (`engine/runners.py`), so the queue itself knows
no kind of work. Because the queue *is* the database, nothing is lost when the studio
stops: rows left `running` become `interrupted` on the next start and can be resumed.
`follow(job_id)` turns a job's progress into typed events (`engine/jobs/events.py`).

Several workers may share one queue — the studio's own thread and `aiprod-studio worker`
processes, one per GPU (`engine/jobs/workers.py`): a job is taken by an atomic claim of
its row, so each runs exactly once, and everything else here reads and writes the rows,
so it works the same for a job another process runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiprod_studio.errors import BadInput, Cancelled
from aiprod_studio.files import partials
from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.takes import check_takes, group, next_seed, take_seeds, takes_of
from aiprod_studio.jobs.timing import typical_step_s
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import Recipe, recipe_from_json
from engine.jobs.events import Done, Event, Failed, Progress, Stopped, events

if TYPE_CHECKING:
    from engine.studio import Studio

__all__ = ["Done", "Event", "Failed", "Progress", "QueueFull", "QueueWorker", "Runner", "Stopped"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 100

Runner = Callable[[int, threading.Event], object]
"""Runs the job whose row is already `running` (claimed by the worker) to its end; `Event` cancels it."""


def _sweep_partial(row: dict[str, Any]) -> None:
    """Remove the partial file a stopped job left (unless a live writer holds it)."""
    if row.get("target_path"):
        partials.sweep([partials.temp_path_for(row["target_path"])])


class QueueFull(BadInput):
    def __init__(self, max_size: int):
        super().__init__(
            f"queue full: {max_size} jobs are already waiting (max_size {max_size}); "
            "wait for some to finish or cancel some",
            field="queue",
        )


class QueueWorker:
    """`max_jobs`: take that many jobs, then end; `idle_exit_s`: end after that long with nothing queued."""

    def __init__(
        self,
        studio: Studio,
        runners: Mapping[str, Runner],
        max_size: int = DEFAULT_MAX_SIZE,
        max_jobs: int | None = None,
        idle_exit_s: float | None = None,
    ):
        self.studio = studio
        self.runners = dict(runners)
        self.max_size = max_size
        self.max_jobs = max_jobs
        self.idle_exit_s = idle_exit_s
        self.ran: list[int] = []  # the jobs this worker claimed, in order
        self._wake = threading.Condition()
        self._stop = False
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()  # the thread has ended

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> QueueWorker:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aiprod-queue", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop taking jobs; a running one is cancelled (its row says so)."""
        self._stop = True
        with self._lock:
            for event in self._cancels.values():
                event.set()
        self._notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to end (stopped, `max_jobs` taken, or idle `idle_exit_s`); True once it has.

        Safe to interrupt with Ctrl-C (a `Thread.join` interrupted so can mark a live thread as ended)."""
        return self._thread is None or self._finished.wait(timeout)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # -- what the UI and the API call --------------------------------------------------------------
    @property
    def history(self) -> History:
        return self.studio.history

    def submit(self, create: Callable[[History], int]) -> int:
        """Add a job: `create` writes its queued row (unless the queue is full); the worker wakes."""
        if self.history.count("queued") >= self.max_size:
            raise QueueFull(self.max_size)
        job_id = create(self.history)
        self._notify()
        return job_id

    def enqueue(self, recipe: Recipe) -> int:
        """Queue a render of `recipe`, stamped with the model's current digest."""
        stamped = self.studio.stamp(recipe)
        return self.submit(lambda history: history.create_job(stamped))

    def enqueue_takes(self, recipe: Recipe, takes: int) -> list[int]:
        """Queue `takes` renders of `recipe`, one seed each (its seed, then the next ones), as one
        group of takes; all or none (a queue without room for every take refuses them all)."""
        count = check_takes(takes)
        if self.history.count("queued") + count > self.max_size:
            raise QueueFull(self.max_size)
        stamped = self.studio.stamp(recipe)
        ids: list[int] = []
        for seed in take_seeds(stamped.seed, count):
            take = stamped.model_copy(update={"seed": seed})
            ids.append(self.submit(lambda history, take=take: history.create_job(take)))
            group(self.history, ids)  # grouped as they come: a crash in between keeps the group
        return ids

    def enqueue_retake(self, first: int) -> int:
        """One more take of the group `first` leads (or of that single job), with the next seed:
        a retake when no take passed its technical check."""
        rows = takes_of(self.history, first)
        recipe = recipe_from_json(json.dumps(self.history.get(first)["recipe"]))
        job_id = self.submit(
            lambda h: h.create_job(self.studio.stamp(recipe.model_copy(update={"seed": next_seed(rows)})))
        )
        group(self.history, sorted([r["id"] for r in rows] + [job_id]))
        return job_id

    def cancel(self, job_id: int, pause: bool = False) -> str:
        """Cancel a queued job (it never starts) or a running one (it stops within about a
        second here; a job another process runs stops at that process's next heartbeat).
        `pause` stops it the same way but the row remembers it was paused (resume continues)."""
        history = self.studio.history
        row = self._row(job_id)
        job_id = row["id"]
        if history.cancel_if_queued(job_id, pause=pause):
            return "paused" if pause else "cancelled"
        if row.get("paused") and not pause:  # a paused run cancelled for good: no longer resumable as paused
            history.forget_pause(job_id)
            return "cancelled"
        if history.request_cancel(job_id, pause=pause):
            with self._lock:
                event = self._cancels.get(job_id)
            if event is not None:  # ours: stop now rather than at the next heartbeat
                event.set()
            return "pausing" if pause else "cancelling"
        raise BadInput(f"job {job_id} is {row['status']}; only queued or running jobs can be cancelled", field="job_id")

    def resume(self, job_id: int) -> int:
        """Put an interrupted, failed or cancelled job back in the queue with the same recipe."""
        row = self._row(job_id)
        job_id = row["id"]
        self._refuse_if_owner_alive(row, "resumed")
        if self.studio.history.count("queued") >= self.max_size:
            raise QueueFull(self.max_size)
        _sweep_partial(row)
        if not self.studio.history.requeue(job_id):
            raise BadInput(
                f"job {job_id} is {row['status']}; only interrupted, failed or cancelled jobs can be resumed",
                field="job_id",
            )
        self._notify()
        return job_id

    def discard(self, job_id: int) -> None:
        """Drop an interrupted job from the queue for good (its row stays, as cancelled)."""
        row = self._row(job_id)
        job_id = row["id"]
        if row["status"] != "interrupted":
            raise BadInput(f"job {job_id} is {row['status']}; only interrupted jobs can be discarded", field="job_id")
        self._refuse_if_owner_alive(row, "discarded")
        self.studio.history.mark_failed(job_id, "discarded after an interruption", status="cancelled")
        self.studio.history.forget_pause(job_id)  # a pause asked before the interruption is moot
        _sweep_partial(row)

    def _refuse_if_owner_alive(self, row: dict[str, Any], verb: str) -> None:
        if row["status"] == "interrupted" and self.studio.history.owner_alive(row["id"]):
            raise BadInput(
                f"job {row['id']} cannot be {verb}: process {row['owner_pid']} that ran it is still "
                "alive and may finish it; wait for it (or cancel the job first)",
                field="job_id",
            )

    def status(self, job_id: int) -> dict[str, Any]:
        row = self._row(job_id)
        total = row["total_steps"] or 0
        row["position"] = self.studio.history.queue_position(row["id"])
        row["progress"] = 1.0 if row["status"] == "done" else (row["step"] or 0) / total if total else 0.0
        return row

    def active(self) -> list[dict[str, Any]]:
        """What the queue panel shows: running, queued (in order) and interrupted jobs."""
        history = self.studio.history
        rows = history.jobs(limit=self.max_size + 50, status="running")
        rows += sorted(history.jobs(limit=self.max_size, status="queued"), key=lambda r: r["id"])
        rows += history.jobs(limit=50, status="interrupted")
        for position, row in enumerate((r for r in rows if r["status"] == "queued"), start=1):
            row["position"] = position
        return rows

    def follow(self, job_id: int, poll_s: float = 0.1, timeout_s: float | None = None) -> Iterator[Event]:
        """Yield a `Progress` whenever the job moves, then its final event."""
        row = self._row(job_id)
        typical = typical_step_s(self.studio.history, row)  # the basis of the time left until its own steps
        return events(lambda: self.status(row["id"]), poll_s=poll_s, timeout_s=timeout_s, typical_step_s=typical)

    def wait(self, job_id: int, timeout_s: float | None = None) -> dict[str, Any]:
        final = None
        for event in self.follow(job_id, timeout_s=timeout_s):
            final = event
        return final.row  # type: ignore[union-attr]

    def _row(self, job_id: Any) -> dict[str, Any]:
        number = whole_number(job_id, "job_id")  # ≥ 1, one SQLite can hold: never 1.5 read as 1
        try:
            return self.studio.history.get(number)
        except KeyError:
            raise BadInput(f"job_id {number} does not exist", field="job_id") from None

    # -- the worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._finished.set()

    def _loop(self) -> None:
        history = self.studio.history
        idle_since = time.monotonic()
        while not self._stop and (self.max_jobs is None or len(self.ran) < self.max_jobs):
            job_id = history.next_queued()
            if job_id is None:
                if self.idle_exit_s is not None and time.monotonic() - idle_since >= self.idle_exit_s:
                    log.info("no job queued for %.0f s: the worker ends", self.idle_exit_s)
                    break
                with self._wake:  # woken by a job queued here; one queued by another process is seen within 1 s
                    self._wake.wait(timeout=1.0)
                continue
            cancel = threading.Event()
            with self._lock:
                self._cancels[job_id] = cancel
            try:
                if not history.claim(job_id):  # cancelled, or taken by another worker, in the meantime
                    continue
                self.ran.append(job_id)
                kind = history.get(job_id).get("kind") or "render"
                runner = self.runners.get(kind)
                if runner is None:
                    history.mark_failed(job_id, f"this studio cannot run {kind} jobs")
                    continue
                runner(job_id, cancel)
            except Cancelled:
                if self._stop:  # the studio is shutting down: the job can be resumed later
                    history.mark_failed(job_id, "the studio stopped while this job was running", status="interrupted")
                log.info("job %s stopped", job_id)
            except Exception:  # noqa: BLE001 - the row holds the error; the queue goes on
                log.exception("job %s failed", job_id)
            finally:
                with self._lock:
                    self._cancels.pop(job_id, None)
                idle_since = time.monotonic()
