"""A training run the Training tab follows: Start, Pause, Resume, Cancel, and the live status and loss plot.

Training runs go through the same queue as renders (one job at a time on the GPU). The page
follows the run it started: step, loss plot, seconds per step and ETA; Pause stops it at once
(within one block) keeping the last whole step as a checkpoint, Resume continues from there,
Cancel stops it for good (its checkpoints stay in the run folder).

The run a page follows is the one in its Run box (filled in by Start), so each browser
session's buttons reach only its own run; typing another run's id there takes that run
over (after a page reload, say), and Resume then follows it.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import pandas as pd

from aiprod_studio.errors import BadInput, StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.numbers import whole_number
from aiprod_studio.training import make_train_config
from engine.jobs.events import watch
from engine.training.checkpoints import checkpoint_steps
from engine.training.jobs import queue_training
from ui.context import Services
from ui.errors import refused

# the Training tab's components that Start reads, in `on_train_start`'s parameter order
START_FIELDS = (
    "dataset",
    "name",
    "base",
    "trigger",
    "rank",
    "lr",
    "steps",
    "save_every",
    "warmup",
    "seed",
    "width",
    "height",
    "frames",
    "schedule",
    "quantization",
    "checkpointing",
)


AVERAGE_OVER = 10  # steps in the loss's moving average


def loss_frame(metrics: list[dict]) -> pd.DataFrame:
    """The loss plot's data, long form: step and loss as numbers (even before the first step, or
    the plot keeps a text axis with a label per value), one `series` per line, the loss and its
    moving average."""
    steps = pd.DataFrame(metrics or [], columns=["step", "loss"]).astype(float)
    average = steps.assign(loss=steps["loss"].rolling(AVERAGE_OVER, min_periods=1).mean())
    frame = pd.concat([steps.assign(series="loss"), average.assign(series=f"average of {AVERAGE_OVER}")])
    return frame.astype({"step": float, "loss": float, "series": str}).reset_index(drop=True)


def run_id(services: Services, value: str | float | None) -> int | None:
    """The run in the page's Run box, checked to be a training run."""
    if value in (None, 0) or not str(value).strip():  # an empty box
        return None
    try:
        number = whole_number(value, "run")
        kind = services.studio.history.get(number)["kind"]
    except StudioError as exc:
        raise refused(exc) from None
    except KeyError:
        raise refused(f"run: there is no run {number}") from None
    if kind != "train":
        raise refused(f"run: job {number} is a render, not a training run")
    return number


def saved_step(services: Services, job_id: int) -> int | None:
    """The step of the run's last checkpoint (where Resume continues), None before the first."""
    studio = services.studio
    found = checkpoint_steps(studio.settings, job_id, studio.history.get(job_id)["recipe"]["name"])
    return found[-1] if found else None


def run_text(job_id: int, row: dict[str, Any], saved: int | None = None) -> str:
    """One line on a run: status, last step's loss, speed and ETA (while it runs), its place in the
    queue, its outcome; a paused run reads "paused at step N", N the checkpoint's."""
    if row.get("paused"):
        where = f"step {saved}" if saved is not None else "the start (no checkpoint yet)"
        return f"Run {job_id}: paused at {where} of {row['total_steps']} — Resume continues from there."
    text, metrics = f"Run {job_id}: {row['status']}", row["metrics"]
    if metrics:
        m = metrics[-1]
        text += f" · step {m['step']}/{row['total_steps']} · loss {m['loss']:.4f}"
        if row["status"] == "running":  # a stopped run has no time left to estimate
            eta = m["seconds"] * (row["total_steps"] - m["step"])
            text += f" · {m['seconds']:.2f}s/step · about {eta:,.0f}s left"
    if row["status"] == "queued":
        text += f" (position {row['position']} in the queue)"
    if row["status"] == "done":
        text += f" — LoRA saved in the vault: `{row['output_path']}`"
    elif row["status"] in FINAL_STATUSES:
        text += f" — {row.get('error') or ''}"
    return text


def follow(services: Services, job_id: int):
    """(status text, loss table, Run box) while the run moves; the Run box is set once, at the start."""
    studio, worker = services.studio, services.worker
    run_box = job_id
    for row in watch(
        lambda: worker.status(job_id) | {"metrics": studio.history.metrics(job_id)},
        key=lambda r: (r["status"], len(r["metrics"])),
        poll_s=0.5,
        timeout_s=None,
    ):
        saved = saved_step(services, job_id) if row["status"] in FINAL_STATUSES else None
        yield run_text(job_id, row, saved), loss_frame(row["metrics"]), run_box
        run_box = gr.update()  # leave the box alone: the user may type another run's id meanwhile


def _whole(field: str, value: float | None, empty: int | None = None) -> int:
    return empty if value in (None, "") and empty is not None else whole_number(value, field, low=-(2**63))


def on_train_start(
    services: Services,
    folder,
    lora_name,
    model,
    trig,
    rank_v,
    lr_v,
    steps_v,
    save_v,
    warm_v,
    seed_v,
    w,
    h,
    f,
    sched,
    quant,
    ckpt,
):
    try:
        if isinstance(lr_v, bool) or not isinstance(lr_v, (int, float)) or not math.isfinite(lr_v):
            raise BadInput(f"lr must be a number, got {lr_v!r}", field="lr")
        config = make_train_config(
            {
                "dataset": folder,
                "name": (lora_name or "").strip(),
                "model": model or None,
                "trigger": trig or "",
                "rank": _whole("rank", rank_v),
                "lr": float(lr_v),
                "steps": _whole("steps", steps_v),
                "save_every": _whole("save_every", save_v),
                "warmup_steps": _whole("warmup_steps", warm_v, 0),
                "seed": _whole("seed", seed_v, 0),
                "width": _whole("width", w, 0) or None,
                "height": _whole("height", h, 0) or None,
                "num_frames": _whole("num_frames", f, 0) or None,
                "schedule": sched,
                "quantization": quant,
                "gradient_checkpointing": bool(ckpt),
            }
        )
        job_id = queue_training(services.worker, config)
    except StudioError as exc:
        raise refused(exc) from None
    yield from follow(services, job_id)


def on_train_stop(services: Services, verb: str, run_value: str | float | None) -> str:
    job_id = run_id(services, run_value)
    if job_id is None:
        return "No training run started from this page."
    try:
        state = services.worker.cancel(job_id, pause=verb == "paused")
    except StudioError as exc:
        return str(exc)
    if state == "paused":  # it had not started
        return f"Run {job_id}: paused before it started (Resume queues it again)."
    if verb == "paused":
        return f"Run {job_id}: pausing at the end of this step (Resume continues from its checkpoint)."
    return f"Run {job_id}: {state} (its checkpoints stay; Resume continues from the last one)."


def on_train_resume(services: Services, run_value: str | float | None):
    job_id = run_id(services, run_value)
    if job_id is None:
        raise refused("resume: no training run started from this page (type its id in the Run box)")
    try:
        if services.worker.status(job_id)["status"] in FINAL_STATUSES:  # else a run taken over: just follow it
            services.worker.resume(job_id)
    except StudioError as exc:
        raise refused(exc) from None
    yield from follow(services, job_id)


def on_train_attach(services: Services):
    """A (re)loaded page: follow the training run that is running or queued, or else show the most
    recent one, filling the Run box; nothing when there has been no training run."""
    runs = services.studio.history.jobs(limit=50, kind="train")
    live = [r for r in runs if r["status"] == "running"] + [r for r in reversed(runs) if r["status"] == "queued"]
    if live:
        yield from follow(services, live[0]["id"])  # the running one, or else the next to run
    elif runs:
        job_id = runs[0]["id"]
        row = services.worker.status(job_id) | {"metrics": services.studio.history.metrics(job_id)}
        yield run_text(job_id, row, saved_step(services, job_id)), loss_frame(row["metrics"]), job_id
    else:
        yield "", loss_frame([]), gr.update()
