"""History's edits of a finished clip: *Upscale 2×* and *Extend* queue a new job made from it."""

from __future__ import annotations

from typing import Any

from aiprod_studio.errors import StudioError
from ui.context import Services


def do_upscale(services: Services, job_id: Any) -> str:
    from engine.render.inputs import upscaled_recipe

    if job_id is None:
        return "Select a render first."
    try:
        new_id = services.worker.enqueue(upscaled_recipe(services.studio, job_id))
    except StudioError as exc:
        return str(exc)
    return f"Job {new_id} queued: job {job_id} upscaled 2× (the same first stage, then the upsampler and a refine)."


def do_extend(services: Services, job_id: Any, frames: Any) -> str:
    from engine.render.extend import extend_recipe

    if job_id is None:
        return "Select a render first."
    try:
        new_id = services.worker.enqueue(extend_recipe(services.studio, job_id, frames))
    except StudioError as exc:
        return str(exc)
    return f"Job {new_id} queued: job {job_id} continued by {int(frames)} frames (its own frames kept as they are)."
