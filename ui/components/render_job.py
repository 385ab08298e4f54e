"""Following a render from the page: who follows which job, its status line, Generate and Cancel."""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from engine.jobs.queue import Done, Progress, Stopped
from ui.components.qa_report import qa_markdown
from ui.components.render_form import values
from ui.context import Services
from ui.errors import refused, shown


class Followed:
    """The job each browser session is following, so its Cancel button can reach it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, int] = {}

    def set(self, session: str, job_id: int | None) -> None:
        with self._lock:
            if job_id is None:
                self._jobs.pop(session, None)
            else:
                self._jobs[session] = job_id

    def get(self, session: str) -> int | None:
        with self._lock:
            return self._jobs.get(session)


def status_text(event: Any) -> str:
    if isinstance(event, Progress):
        if event.status == "queued":
            return f"Job {event.job_id} is waiting in the queue (position {event.position})…"
        if event.loading:
            return f"Job {event.job_id}: loading the model…"
        eta = f"about {event.eta_s:.1f}s left" if event.eta_s is not None else "estimating the time left…"
        return f"Job {event.job_id}: step {event.step}/{event.total} · {eta}"
    row = event.row
    if isinstance(event, Done):
        done = f"Done: job {row['id']} in {row['wall_s']:.2f}s → `{row['output_path']}`"
        return f"{done}\n\n{qa_markdown(row.get('qa'))}".strip()
    if isinstance(event, Stopped):
        return f"Job {row['id']} {row['status']}: the partial clip was discarded."
    return f"Failed: job {row['id']}: {event.error}"


def enqueue(services: Services, *args: Any) -> int:
    try:
        return services.worker.enqueue(services.studio.build_recipe(values(*args)))
    except StudioError as exc:
        raise refused(exc) from None


def on_generate(
    services: Services,
    followed: Followed,
    prompt,
    negative_prompt,
    model,
    quantization,
    offload,
    width,
    height,
    num_frames,
    fps,
    steps,
    guidance,
    seed,
    loras,
    request: gr.Request,
):
    # (explicit parameters: Gradio only injects `request` next to named positional ones)
    args = (prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps, steps, guidance)
    try:
        job_id = enqueue(services, *args, seed, loras)
    except gr.Error as exc:  # the last clip and its recipe stay on screen; the message goes to the status line
        yield gr.update(), gr.update(), shown(exc)
        return
    session = request.session_hash or "default"
    followed.set(session, job_id)
    try:
        for event in services.worker.follow(job_id):
            if isinstance(event, Progress):
                yield gr.update(), gr.update(), status_text(event)
            elif isinstance(event, Done):
                row = event.row
                yield row["output_path"], row["recipe"] | {"job_id": row["id"]}, status_text(event)
            else:
                yield None, gr.update(), status_text(event)
    finally:
        followed.set(session, None)  # leaving the page does not cancel: the job stays in the queue


def on_cancel(services: Services, followed: Followed, request: gr.Request) -> str:
    job_id = followed.get(request.session_hash or "default")
    if job_id is None:
        return "Nothing is rendering from this page (cancel queued jobs in the queue panel)."
    try:
        return f"Job {job_id}: {services.worker.cancel(job_id)}…"
    except StudioError as exc:
        return str(exc)
