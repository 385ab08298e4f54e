"""The queue panel: what is running, waiting and interrupted, with Cancel / Resume / Discard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from engine.jobs.queue import QueueWorker
from ui.context import Services, bind

COLUMNS = ["job", "status", "position", "progress", "model", "prompt"]
ACTIONS = ("cancel", "resume", "discard")


@dataclass
class QueuePanel:
    table: Any
    job: Any
    cancel: Any
    resume: Any
    discard: Any
    message: Any
    timer: Any


def rows(worker: QueueWorker) -> list[list[Any]]:
    table = []
    for r in worker.active():
        progress = f"{r['step'] or 0}/{r['total_steps']}" if r["status"] == "running" else ""
        table.append(
            [
                r["id"],
                "paused" if r.get("paused") else r["status"],
                r.get("position") or "",
                progress,
                r["model"],
                (r["prompt"] or "")[:80],
            ]
        )
    return table


def layout(worker: QueueWorker) -> QueuePanel:
    with gr.Accordion("Queue", open=True):
        table = gr.Dataframe(
            headers=COLUMNS,
            value=rows(worker),
            interactive=False,
            wrap=True,
            label="Running, waiting and interrupted jobs",
        )
        with gr.Row():
            job = gr.Textbox(label="Job", placeholder="pick a row, or type its number", scale=1, max_lines=1)
            cancel = gr.Button("Cancel job", size="sm")
            resume = gr.Button("Resume", size="sm")
            discard = gr.Button("Discard", size="sm")
        message = gr.Markdown("")
        timer = gr.Timer(1.0)
    return QueuePanel(table, job, cancel, resume, discard, message, timer)


def refresh(services: Services) -> list[list[Any]]:
    return rows(services.worker)


def on_queue_action(services: Services, action: str, job_id: str | float | None) -> tuple[list[list[Any]], str]:
    worker = services.worker
    if job_id in (None, 0) or not str(job_id).strip():
        return refresh(services), "Pick a job from the table first."
    try:  # the worker checks the number (a whole job id that exists) and names the field
        if action == "cancel":
            text = f"Job {job_id}: {worker.cancel(job_id)}."
        elif action == "resume":
            text = f"Job {worker.resume(job_id)} is back in the queue."
        else:
            worker.discard(job_id)
            text = f"Job {job_id} discarded."
    except StudioError as exc:
        text = str(exc)
    return refresh(services), text


def pick(evt: gr.SelectData) -> Any:
    return evt.row_value[0] if evt.row_value else None


def wire(panel: QueuePanel, services: Services) -> None:
    private = {"api_visibility": "private"}
    act = {a: bind(on_queue_action, services, a, name=f"on_queue_{a}") for a in ACTIONS}
    panel.timer.tick(bind(refresh, services), outputs=panel.table, queue=False, **private)
    panel.table.select(pick, outputs=panel.job, **private)
    outputs = [panel.table, panel.message]
    panel.cancel.click(act["cancel"], inputs=panel.job, outputs=outputs, queue=False, **private)
    panel.resume.click(act["resume"], inputs=panel.job, outputs=outputs, **private)
    panel.discard.click(act["discard"], inputs=panel.job, outputs=outputs, **private)
