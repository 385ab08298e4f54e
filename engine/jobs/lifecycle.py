"""One job's life, written once: started, heartbeat, then done, cancelled or failed.

Every kind of job (a render, a training run) runs inside `job_lifecycle`:

    with job_lifecycle(history, job_id, cancel) as run:
        ...wait for the device...
        run.started(target)          # the row: running since now, owned by this process
        ...the work...
        run.done(output_path)        # the row: done, with its wall time

A `Cancelled` ends the row `cancelled`, Ctrl-C ends it `cancelled` with `interrupted`
(the message a user reads), anything else ends it `failed` with the error; the
exception then propagates. A heartbeat shows the row's owner is alive and sets `cancel`
when a cancel is asked from another process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from aiprod_studio.errors import Cancelled, failure_text
from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.owner import Heartbeat
from aiprod_studio.jobs.timing import StepClock


class JobRun:
    """What the work inside `job_lifecycle` reports: when it really started, and its output."""

    def __init__(self, history: History, job_id: int):
        self.history, self.job_id = history, job_id
        self.finished = False
        self._started = time.perf_counter()
        self._clock = StepClock()

    def started(self, target: str | None = None) -> None:
        """The job starts now (after waiting for the device); `target` is the file it will write."""
        self.history.mark_running(self.job_id, target=target)
        self._started = time.perf_counter()

    def step(self, step: int, total: int) -> None:
        """`step` of `total` is done: the row shows it, and the clock times it."""
        self.history.set_progress(self.job_id, step, total)
        self._clock.tick(step)

    def done(self, output_path: str) -> None:
        wall_s = time.perf_counter() - self._started
        self.history.mark_done(self.job_id, output_path, wall_s, step_s=self._clock.step_s)
        self.finished = True


@contextlib.contextmanager
def job_lifecycle(
    history: History, job_id: int, cancel: threading.Event, interrupted: str = "interrupted by the user"
) -> Iterator[JobRun]:
    run = JobRun(history, job_id)
    with Heartbeat(lambda: history.beat(job_id), cancel):  # the row shows this process is alive
        try:
            yield run
        except Cancelled as exc:
            history.mark_failed(job_id, str(exc), status="cancelled")
            raise
        except KeyboardInterrupt:
            history.mark_failed(job_id, interrupted, status="cancelled")
            raise
        except Exception as exc:
            history.mark_failed(job_id, failure_text(exc))
            raise
    if not run.finished:
        history.mark_failed(job_id, "the job ended without a result")
