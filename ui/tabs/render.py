"""The Render tab: prompt → clip with sound through the persistent queue.

"Generate" enqueues and follows the job (live step progress, ETA, Cancel); "Add to
queue" enqueues and returns. Handlers only convert widget values, call the engine, and
turn its events into widget updates.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.presets import Preset, load_presets
from aiprod_studio.recipe import MAX_SEED, OFFLOADS, QUANTIZATIONS
from engine.jobs.queue import Done, Progress, Stopped
from engine.render import media
from ui.components import queue_panel
from ui.components.render_form import RenderForm, updates_from_recipe, values
from ui.context import Services, bind
from ui.errors import refused

TEST_MODEL_NOTE = (
    "⚠️ **Test model.** `{name}` is the studio's tiny built-in LTX-2 model with random weights: it proves the "
    "whole render path works offline, but its clips look like coloured noise. Put real LTX-2 weights in the vault "
    "(see the README, *Models*) and pick them here."
)
SIZE_FIELDS = ("width", "height", "num_frames", "fps", "steps", "guidance")
FALLBACK_SIZES = {"width": 768, "height": 512, "num_frames": 121, "fps": 24, "steps": 40, "guidance": 4.0}


@dataclass
class RenderTab:
    form: RenderForm
    note: Any
    preset: Any
    lock_seed: Any
    dice: Any
    generate: Any
    add: Any
    cancel: Any
    status: Any
    restore: Any
    video: Any
    recipe_view: Any
    queue: queue_panel.QueuePanel
    presets: dict[str, Preset]

    def field(self, name: str) -> Any:
        return self.form.component(name)


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
        eta = f" · about {event.eta_s:.1f}s left" if event.eta_s is not None else ""
        return f"Job {event.job_id}: step {event.step}/{event.total}{eta}"
    row = event.row
    if isinstance(event, Done):
        return f"Done: job {row['id']} in {row['wall_s']:.2f}s → `{row['output_path']}`"
    if isinstance(event, Stopped):
        return f"Job {row['id']} {row['status']}: the partial clip was discarded."
    return f"Failed: job {row['id']}: {event.error}"


def layout(services: Services) -> RenderTab:
    """Lay out the tab inside the current `gr.Blocks`: the form, its buttons, the result, the queue panel."""
    # long: one widget a line, top to bottom as the page shows them
    studio = services.studio
    pipelines = studio.pipelines()
    default = studio.default_model()
    entry = next((e for e in pipelines if e.name == default), None)
    d = {**FALLBACK_SIZES, **(entry.defaults if entry else {})}
    presets = {p.name: p for p in load_presets()}

    note = gr.Markdown(
        TEST_MODEL_NOTE.format(name=entry.name) if entry and entry.test_model else "",
        visible=bool(entry and entry.test_model),
    )
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="A red car drives through a rainy city at night")
            negative = gr.Textbox(label="Negative prompt", value="", lines=1, placeholder="what to avoid (optional)")
            with gr.Row():
                preset = gr.Dropdown(label="Preset", choices=[""] + list(presets), value="", interactive=True)
                model = gr.Dropdown(label="Model", choices=[e.name for e in pipelines], value=default, interactive=True)
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
            loras = gr.Dropdown(
                label="LoRAs",
                choices=lora_names,
                value=[],
                multiselect=True,
                allow_custom_value=True,
                info="several at once; strength 1, or type name:0.6 (−2…2)",
                elem_id="render-loras",
            )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                add = gr.Button("Add to queue")
                cancel = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("")
            restore = gr.File(
                label="Drop an MP4 made by the studio to restore its settings", file_types=[".mp4"], height=90
            )
        with gr.Column(scale=2):
            video = gr.Video(label="Result", interactive=False, autoplay=True)
            recipe_view = gr.JSON(label="Recipe")

    form = RenderForm(
        [prompt, negative, model, quantization, offload, width, height, num_frames, fps, steps, guidance, seed, loras]
    )
    return RenderTab(
        form,
        note,
        preset,
        lock_seed,
        dice,
        generate,
        add,
        cancel,
        status,
        restore,
        video,
        recipe_view,
        queue_panel.layout(services.worker),
        presets,
    )


def on_model(services: Services, name: str) -> list[Any]:
    chosen = next((e for e in services.studio.pipelines() if e.name == name), None)
    if chosen is None:
        return [gr.update()] * 7
    dd = chosen.defaults
    note_text = TEST_MODEL_NOTE.format(name=chosen.name) if chosen.test_model else ""
    return [gr.update(value=note_text, visible=chosen.test_model)] + [
        gr.update(value=dd[k]) if k in dd else gr.update() for k in SIZE_FIELDS
    ]


def on_preset(presets: dict[str, Preset], name: str) -> list[Any]:
    chosen = presets.get(name)
    return updates_from_recipe(chosen.settings if chosen else {})


def on_restore(path: str | None) -> list[Any]:
    if not path:
        return updates_from_recipe({}) + [gr.update()]
    recipe = media.read_metadata_json(path)
    if recipe is None:
        raise refused("That file carries no AIPROD recipe (was it made by the studio?)")
    return updates_from_recipe(recipe) + [f"Settings restored from `{recipe.get('prompt', '')[:60]}`."]


def random_seed() -> int:
    return random.randint(0, 2**32 - 1)


def next_seed(seed_value: float, locked: bool) -> Any:
    return seed_value if locked else random_seed()


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
    job_id = enqueue(
        services,
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
    )
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


def on_add(services: Services, *args: Any) -> str:
    job_id = enqueue(services, *args)
    return f"Job {job_id} added to the queue (position {services.worker.status(job_id)['position'] or 'now running'})."


def on_cancel(services: Services, followed: Followed, request: gr.Request) -> str:
    job_id = followed.get(request.session_hash or "default")
    if job_id is None:
        return "Nothing is rendering from this page (cancel queued jobs in the queue panel)."
    try:
        return f"Job {job_id}: {services.worker.cancel(job_id)}…"
    except StudioError as exc:
        return str(exc)


def wire(tab: RenderTab, services: Services) -> None:
    """Connect the tab's events; the queue panel's too."""
    followed = Followed()  # shared by the app's sessions, keyed by session hash
    private = {"api_visibility": "private"}
    inputs = tab.form.components
    sizes = [tab.field(k) for k in SIZE_FIELDS]
    seed = tab.field("seed")
    queue_panel.wire(tab.queue, services)
    tab.field("model").change(
        bind(on_model, services), inputs=tab.field("model"), outputs=[tab.note, *sizes], **private
    )
    tab.preset.change(bind(on_preset, tab.presets), inputs=tab.preset, outputs=inputs, **private)
    tab.restore.upload(on_restore, inputs=tab.restore, outputs=inputs + [tab.status], **private)
    tab.dice.click(random_seed, outputs=seed, **private)
    tab.generate.click(
        bind(on_generate, services, followed),
        inputs=inputs,
        outputs=[tab.video, tab.recipe_view, tab.status],
        concurrency_limit=None,
        **private,
    ).then(next_seed, inputs=[seed, tab.lock_seed], outputs=seed, **private)
    tab.add.click(bind(on_add, services), inputs=inputs, outputs=tab.status, **private).then(
        next_seed, inputs=[seed, tab.lock_seed], outputs=seed, **private
    ).then(bind(queue_panel.refresh, services), outputs=[tab.queue.table], **private)
    tab.cancel.click(bind(on_cancel, services, followed), outputs=tab.status, queue=False, **private)
