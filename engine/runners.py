"""The composition root of the queue: which code runs which kind of job.

The queue (`engine/jobs/queue.py`) knows no kind of work; it is handed this table. A new
kind of job (QA, upscaling) is one more line here and a runner in its own room.
"""

from __future__ import annotations

import threading

from engine.jobs.queue import DEFAULT_MAX_SIZE, QueueWorker, Runner
from engine.studio import Studio
from engine.training.jobs import run_training


def runners(studio: Studio) -> dict[str, Runner]:
    def render(job_id: int, cancel: threading.Event) -> object:
        return studio.run_job(job_id, cancel=cancel)

    def training(job_id: int, cancel: threading.Event) -> object:
        return run_training(studio, job_id, cancel=cancel)

    return {"render": render, "train": training}


def make_worker(
    studio: Studio, max_size: int = DEFAULT_MAX_SIZE, max_jobs: int | None = None, idle_exit_s: float | None = None
) -> QueueWorker:
    """The studio's queue worker with every kind of job it can run (not started yet); `max_jobs` and
    `idle_exit_s` end it after that many jobs or that long with nothing queued (a `worker` process)."""
    return QueueWorker(studio, runners(studio), max_size=max_size, max_jobs=max_jobs, idle_exit_s=idle_exit_s)
