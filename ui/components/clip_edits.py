"""History's edits of a finished clip: *Upscale 2×*, *Extend* and *Retake* queue a new job made from it.

`render()` lays out the Extend and Retake rows (Upscale 2× sits with the other clip actions), `listen()`
wires them to the selected clip and the tab's message line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from ui.context import Services, bind


@dataclass
class ClipEdits:
    extend_frames: Any
    extend: Any  # the selected clip continued by that many frames
    retake_from: Any
    retake_to: Any
    retake_prompt: Any
    retake: Any  # those seconds of the selected clip rendered again


def render() -> ClipEdits:
    with gr.Row():
        extend_frames = gr.Number(label="Frames to add", value=24, precision=0, step=8, scale=1)
        extend = gr.Button("Extend", scale=0)
    with gr.Row():
        retake_from = gr.Number(label="Retake from (s)", value=1, minimum=0, step=0.5, scale=1)
        retake_to = gr.Number(label="to (s)", value=2, minimum=0, step=0.5, scale=1)
        retake_prompt = gr.Textbox(label="Retake prompt", placeholder="the clip's own prompt", scale=3)
        retake = gr.Button("Retake range", scale=0)
    return ClipEdits(extend_frames, extend, retake_from, retake_to, retake_prompt, retake)


def listen(edits: ClipEdits, services: Services, selected: Any, message: Any) -> None:
    private = {"api_visibility": "private"}
    edits.extend.click(bind(do_extend, services), inputs=[selected, edits.extend_frames], outputs=message, **private)
    edits.retake.click(
        bind(do_retake, services),
        inputs=[selected, edits.retake_from, edits.retake_to, edits.retake_prompt],
        outputs=message,
        **private,
    )


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
    from engine.render.edits.extend import extend_recipe

    if job_id is None:
        return "Select a render first."
    try:
        new_id = services.worker.enqueue(extend_recipe(services.studio, job_id, frames))
    except StudioError as exc:
        return str(exc)
    return f"Job {new_id} queued: job {job_id} continued by {int(frames)} frames (its own frames kept as they are)."


def do_retake(services: Services, job_id: Any, start: Any, end: Any, prompt: Any) -> str:
    from engine.render.edits.retake import retake_recipe

    if job_id is None:
        return "Select a render first."
    try:
        recipe = retake_recipe(services.studio, job_id, start, end, (prompt or "").strip() or None)
        new_id = services.worker.enqueue(recipe)
    except StudioError as exc:
        return str(exc)
    return f"Job {new_id} queued: job {job_id}, {retake_words(recipe.model_dump())}, seed {recipe.seed}."


def retake_words(recipe: dict[str, Any]) -> str:
    """ "frames 8…15 (1–2 s) rendered again" for a retake's recipe (the range as widened to keyframes)."""
    edit, fps = recipe["edit"], recipe["fps"]
    first, end = edit["start"], edit["start"] + edit["frames"]
    return f"frames {first}…{end - 1} ({first / fps:g}–{end / fps:g} s) rendered again"
