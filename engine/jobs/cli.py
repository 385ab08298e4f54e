"""`aiprod-studio worker`: a headless render worker over the studio's queue.

It builds a studio for its own device (`--device cuda:1`) and takes queued jobs from the same
SQLite queue as the UI — each by an atomic claim, so two workers never run one job — with the
same runners, until SIGTERM or Ctrl-C (the running job then becomes `interrupted`, resumable),
`--max-jobs N` jobs, or `--idle-exit S` seconds with nothing queued. `ui --workers N` / `--gpus`
start and watch such processes (`engine/jobs/workers.py`); one can also be started by hand,
beside a running studio, on the same data dir.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Any

from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.errors import BadInput
from aiprod_studio.numbers import whole_number
from aiprod_studio.settings import Settings

log = logging.getLogger(__name__)


def idle_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"--idle-exit must be a number of seconds above 0, got {text!r}", field="idle_exit")
    return value


def cmd_worker(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from engine.jobs.sweep import Sweeper
    from engine.runners import make_worker
    from engine.studio import Studio

    # 1. Check the limits before anything loads.
    max_jobs = None if args.max_jobs is None else whole_number(args.max_jobs, "max_jobs", what="--max-jobs")
    idle_exit = None if args.idle_exit is None else idle_seconds(args.idle_exit)

    # 2. A studio of its own (its own device owner), the queue's worker loop and a sweep of dead workers' jobs.
    studio = Studio(settings)
    parent = os.getppid()
    worker = make_worker(studio, max_jobs=max_jobs, idle_exit_s=idle_exit)
    sweeper = Sweeper(studio.history)
    log.info("worker %s on %s: taking jobs from %s", os.getpid(), studio.plan.label, settings.db_path)
    stopped = "max-jobs reached" if max_jobs is not None else "idle"
    try:
        with sigterm_as_interrupt():
            sweeper.start()
            worker.start()
            while not worker.join(timeout=0.5):
                if args.supervised and os.getppid() != parent:  # the studio that started it is gone
                    stopped = "the studio that started this worker stopped"
                    break
    except KeyboardInterrupt:
        stopped = "signal"
    finally:
        # 3. Stop: a running job is cancelled and left `interrupted`; the device is freed.
        sweeper.stop()
        worker.stop()
        statuses = {job_id: studio.history.get(job_id)["status"] for job_id in worker.ran}
        label = studio.plan.label
        studio.close()
    log.info("worker %s stopped (%s) after %d job(s)", os.getpid(), stopped, len(worker.ran))
    result = {
        "pid": os.getpid(),
        "device": label,
        "ran": worker.ran,
        "statuses": statuses,
        "stopped": stopped,
    }
    counts = ", ".join(f"{sum(1 for s in statuses.values() if s == k)} {k}" for k in sorted(set(statuses.values())))
    text = f"worker {os.getpid()} on {label}: ran {len(worker.ran)} job(s){f' ({counts})' if counts else ''}; "
    return result, text + f"stopped: {stopped}"


def register(reg: Any) -> None:
    p = reg.command(
        "worker",
        "a headless render worker: takes jobs from the studio's queue on its own device until stopped",
        cmd_worker,
    )
    p.add_argument("--max-jobs", metavar="N", help="take N jobs, then exit")
    p.add_argument("--idle-exit", metavar="S", help="exit after S seconds with no job queued")
    # started by `ui --workers/--gpus`: also stop when that studio's process is gone
    p.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
