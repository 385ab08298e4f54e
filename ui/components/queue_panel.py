"""The queue panel: what is running, waiting and interrupted, with Cancel / Resume / Discard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from aiprod_studio.errors import StudioError
from engine.jobs.queue import QueueWorker

COLUMNS = ["job", "status", "position", "progress", "model", "prompt"]


@dataclass
class QueueView:
    refresh: Callable[[], Any]
    outputs: list[Any]


def rows(worker: QueueWorker) -> list[list[Any]]:
    table = []
    for r in worker.active():
        progress = f"{r['step'] or 0}/{r['total_steps']}" if r["status"] == "running" else ""
        table.append([r["id"], r["status"], r.get("position") or "", progress, r["model"], (r["prompt"] or "")[:80]])
    return table


def build(worker: QueueWorker) -> QueueView:
    with gr.Accordion("Queue", open=True):
        table = gr.Dataframe(headers=COLUMNS, value=rows(worker), interactive=False, wrap=True,
                             label="Running, waiting and interrupted jobs")
        with gr.Row():
            job = gr.Number(label="Job", precision=0, minimum=1, scale=1)
            cancel = gr.Button("Cancel job", size="sm")
            resume = gr.Button("Resume", size="sm")
            discard = gr.Button("Discard", size="sm")
        message = gr.Markdown("")
        timer = gr.Timer(1.0)

    def refresh():
        return rows(worker)

    def act(action: str):
        def handler(job_id: float | None):
            if not job_id:
                return refresh(), "Pick a job number from the table first."
            try:
                if action == "cancel":
                    text = f"Job {int(job_id)}: {worker.cancel(int(job_id))}."
                elif action == "resume":
                    text = f"Job {worker.resume(int(job_id))} is back in the queue."
                else:
                    worker.discard(int(job_id))
                    text = f"Job {int(job_id)} discarded."
            except StudioError as exc:
                text = str(exc)
            return refresh(), text
        handler.__name__ = f"on_queue_{action}"
        return handler

    def pick(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    private = {"api_visibility": "private"}
    timer.tick(refresh, outputs=table, queue=False, **private)
    table.select(pick, outputs=job, **private)
    cancel.click(act("cancel"), inputs=job, outputs=[table, message], queue=False, **private)
    resume.click(act("resume"), inputs=job, outputs=[table, message], **private)
    discard.click(act("discard"), inputs=job, outputs=[table, message], **private)
    return QueueView(refresh=refresh, outputs=[table])
