"""The Render tab: prompt → clip with sound through the persistent queue.

"Generate" enqueues and follows the job (live step progress, ETA, Cancel); "Add to
queue" enqueues and returns. Handlers only convert widget values, call the engine, and
turn its events into widget updates.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.presets import load_presets
from aiprod_studio.recipe import MAX_SEED, OFFLOADS, QUANTIZATIONS
from engine.render import media
from engine.studio import Studio
from engine.jobs.queue import Done, Progress, QueueWorker, Stopped
from ui.components import queue_panel
from ui.components.render_form import RenderForm, values
from ui.errors import refused

TEST_MODEL_NOTE = (
    "⚠️ **Test model.** `{name}` is the studio's tiny built-in LTX-2 model with random weights: it proves the "
    "whole render path works offline, but its clips look like coloured noise. Put real LTX-2 weights in the vault "
    "(see the README, *Models*) and pick them here."
)
def status_text(event: Any) -> str:
    if isinstance(event, Progress):
        if event.status == "queued":
            return f"Job {event.job_id} is waiting in the queue (position {event.position})…"
        eta = f" · about {event.eta_s:.1f}s left" if event.eta_s is not None else ""
        return f"Job {event.job_id}: step {event.step}/{event.total}{eta}"
    row = event.row
    if isinstance(event, Done):
        return f"Done: job {row['id']} in {row['wall_s']:.2f}s → `{row['output_path']}`"
    if isinstance(event, Stopped):
        return f"Job {row['id']} {row['status']}: the partial clip was discarded."
    return f"Failed: job {row['id']}: {event.error}"


class _Followed:
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


def build(studio: Studio, worker: QueueWorker) -> RenderForm:
    """Lay out the tab inside the current `gr.Blocks` and wire its events."""
    pipelines = studio.pipelines()
    default = studio.default_model()
    entry = next((e for e in pipelines if e.name == default), None)
    d = {**{"width": 768, "height": 512, "num_frames": 121, "fps": 24, "steps": 40, "guidance": 4.0},
         **(entry.defaults if entry else {})}
    presets = {p.name: p for p in load_presets()}
    followed = _Followed()

    note = gr.Markdown(TEST_MODEL_NOTE.format(name=entry.name) if entry and entry.test_model else "",
                       visible=bool(entry and entry.test_model))
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="A red car drives through a rainy city at night")
            negative = gr.Textbox(label="Negative prompt", value="", lines=1, placeholder="what to avoid (optional)")
            with gr.Row():
                preset = gr.Dropdown(label="Preset", choices=[""] + list(presets), value="", interactive=True)
                model = gr.Dropdown(label="Model", choices=[e.name for e in pipelines], value=default,
                                    interactive=True)
            with gr.Row():
                quantization = gr.Radio(label="Quantization", choices=list(QUANTIZATIONS), value="none")
                offload = gr.Radio(label="Offload (GPU memory)", choices=list(OFFLOADS), value="none")
            with gr.Row():
                width = gr.Number(label="Width", value=d["width"], precision=0, step=32, minimum=32)
                height = gr.Number(label="Height", value=d["height"], precision=0, step=32, minimum=32)
                num_frames = gr.Number(label="Frames (8k+1)", value=d["num_frames"], precision=0, step=8, minimum=1)
                fps = gr.Number(label="FPS", value=d["fps"], precision=0, minimum=1, maximum=60)
            with gr.Row():
                steps = gr.Number(label="Steps", value=d["steps"], precision=0, minimum=1, maximum=200)
                guidance = gr.Number(label="Guidance", value=d["guidance"], minimum=1.0, step=0.5)
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                with gr.Column(min_width=120, scale=0):
                    lock_seed = gr.Checkbox(label="Lock seed", value=True)
                    dice = gr.Button("Random seed", size="sm")
            lora_names = [e.name for e in studio.vault.entries("lora")]
            loras = gr.Dropdown(label="LoRAs", choices=lora_names, value=[], multiselect=True, allow_custom_value=True,
                                info="several at once; strength 1, or type name:0.6 (−2…2)", elem_id="render-loras")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                add = gr.Button("Add to queue")
                cancel = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("")
            restore = gr.File(label="Drop an MP4 made by the studio to restore its settings", file_types=[".mp4"],
                              height=90)
        with gr.Column(scale=2):
            video = gr.Video(label="Result", interactive=False, autoplay=True)
            recipe_view = gr.JSON(label="Recipe")

    form = RenderForm([prompt, negative, model, quantization, offload, width, height, num_frames, fps, steps,
                       guidance, seed, loras])
    inputs = form.components
    queue_view = queue_panel.build(worker)

    def on_model(name: str):
        chosen = next((e for e in studio.pipelines() if e.name == name), None)
        if chosen is None:
            return [gr.update()] * 7
        dd = chosen.defaults
        note_text = TEST_MODEL_NOTE.format(name=chosen.name) if chosen.test_model else ""
        return [gr.update(value=note_text, visible=chosen.test_model)] + [
            gr.update(value=dd[k]) if k in dd else gr.update()
            for k in ("width", "height", "num_frames", "fps", "steps", "guidance")]

    def on_preset(name: str):
        chosen = presets.get(name)
        settings = chosen.settings if chosen else {}
        return form.updates_from_recipe(settings)

    def on_restore(path: str | None):
        if not path:
            return form.updates_from_recipe({}) + [gr.update()]
        recipe = media.read_metadata_json(path)
        if recipe is None:
            raise refused("That file carries no AIPROD recipe (was it made by the studio?)")
        return form.updates_from_recipe(recipe) + [f"Settings restored from `{recipe.get('prompt', '')[:60]}`."]

    def next_seed(seed_value: float, locked: bool):
        return seed_value if locked else random.randint(0, 2**32 - 1)

    def enqueue(*args: Any) -> int:
        try:
            return worker.enqueue(studio.build_recipe(values(*args)))
        except StudioError as exc:
            raise refused(exc) from None

    def on_generate(prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps, steps,
                    guidance, seed, loras, request: gr.Request):
        # (explicit parameters: Gradio only injects `request` next to named positional ones)
        job_id = enqueue(prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps,
                         steps, guidance, seed, loras)
        session = request.session_hash or "default"
        followed.set(session, job_id)
        try:
            for event in worker.follow(job_id):
                if isinstance(event, Progress):
                    yield gr.update(), gr.update(), status_text(event)
                elif isinstance(event, Done):
                    row = event.row
                    yield row["output_path"], row["recipe"] | {"job_id": row["id"]}, status_text(event)
                else:
                    yield None, gr.update(), status_text(event)
        finally:
            followed.set(session, None)  # leaving the page does not cancel: the job stays in the queue

    def on_add(*args: Any):
        job_id = enqueue(*args)
        return f"Job {job_id} added to the queue (position {worker.status(job_id)['position'] or 'now running'})."

    def on_cancel(request: gr.Request):
        job_id = followed.get(request.session_hash or "default")
        if job_id is None:
            return "Nothing is rendering from this page (cancel queued jobs in the queue panel)."
        try:
            return f"Job {job_id}: {worker.cancel(job_id)}…"
        except StudioError as exc:
            return str(exc)

    private = {"api_visibility": "private"}
    model.change(on_model, inputs=model, outputs=[note, width, height, num_frames, fps, steps, guidance], **private)
    preset.change(on_preset, inputs=preset, outputs=inputs, **private)
    restore.upload(on_restore, inputs=restore, outputs=inputs + [status], **private)
    dice.click(lambda: random.randint(0, 2**32 - 1), outputs=seed, **private)
    generate.click(on_generate, inputs=inputs, outputs=[video, recipe_view, status], concurrency_limit=None,
                   **private).then(next_seed, inputs=[seed, lock_seed], outputs=seed, **private)
    add.click(on_add, inputs=inputs, outputs=status, **private).then(
        next_seed, inputs=[seed, lock_seed], outputs=seed, **private).then(
        queue_view.refresh, outputs=queue_view.outputs, **private)
    cancel.click(on_cancel, outputs=status, queue=False, **private)
    return form
