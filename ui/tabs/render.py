"""The Render tab: prompt → clip with sound through the persistent queue.

"Generate" enqueues and follows the job (live step progress, ETA, Cancel); "Add to
queue" enqueues and returns. Handlers only convert widget values, call the engine, and
turn its events into widget updates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.choices import AUTO
from aiprod_studio.presets import Preset, hardware_profiles, load_presets
from aiprod_studio.recipe import MAX_SEED, OFFLOADS, QUANTIZATIONS
from engine.render import media
from ui.components import pictures as picture_inputs
from ui.components import prompt_enhance, queue_panel
from ui.components.budget_note import BUDGET_FIELDS, forecast_text, on_forecast
from ui.components.model_defaults import SIZE_FIELDS, extras, follow_model, model_defaults, placeholder
from ui.components.model_defaults import note as model_note
from ui.components.render_form import TILING, RenderForm, stored_pictures, updates_from_recipe
from ui.components.render_job import Followed, enqueue, on_cancel, on_generate
from ui.context import Services, bind
from ui.errors import refused, shown

GPU_ONLY = "only on a CUDA GPU; this studio runs on the CPU"


@dataclass
class RenderTab:
    form: RenderForm
    note: Any
    preset: Any
    profile: Any
    lock_seed: Any
    dice: Any
    generate: Any
    add: Any
    cancel: Any
    status: Any
    budget: Any  # what the form's render needs: memory, profile, time
    restore: Any
    video: Any
    recipe_view: Any
    queue: queue_panel.QueuePanel
    presets: dict[str, Preset]
    takes: Any  # best of N: how many seeds Generate renders
    retakes: Any  # … and how many more while none passes its technical check
    pictures: picture_inputs.Pictures  # start image, end image, keyframes, and their crops
    enhance: Any  # the local LLM rewrites the prompt (shown only with a scenarist in the vault)

    def field(self, name: str) -> Any:
        return self.form.component(name)


def layout(services: Services) -> RenderTab:
    """Lay out the tab inside the current `gr.Blocks`: the form, its buttons, the result, the queue panel."""
    # long: one widget a line, top to bottom as the page shows them
    studio = services.studio
    pipelines = studio.pipelines()
    default = studio.default_model()
    entry = next((e for e in pipelines if e.name == default), None)
    d = model_defaults(services, entry)  # shown as placeholders: an empty field is the model's value
    p = {k: placeholder(d[k]) for k in SIZE_FIELDS}
    presets = {p.name: p for p in load_presets()}
    by_kind = {
        kind: [("", "")] + [(f"{p.name} — {p.description}" if p.description else p.name, p.name) for p in found]
        for kind in ("render",)
        for found in [[p for p in presets.values() if p.kind == kind]]
    }
    on_gpu = studio.plan.device.type == "cuda"
    profiles = [("auto — the fastest that fits this machine's memory", AUTO)]
    profiles += [(f"{p.name} — {p.description}", p.id) for p in hardware_profiles("cuda" if on_gpu else "cpu")]
    profiles += [("custom — only the settings below", "custom")]

    note = gr.Markdown(model_note(entry, d), elem_id="render-start")
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                label="Prompt",
                lines=3,
                placeholder="A red car drives through a rainy city at night",
                elem_id="render-prompt",
            )
            enhance = prompt_enhance.layout(services)
            negative = gr.Textbox(label="Negative prompt", value="", lines=1, placeholder="what to avoid (optional)")
            with gr.Row():
                preset = gr.Dropdown(
                    label="Preset", choices=by_kind["render"], value="", info="size, length and steps", interactive=True
                )
                profile = gr.Dropdown(
                    label="Hardware profile",
                    choices=profiles,
                    value=AUTO,
                    info="quantization, offload and VAE tiling for this machine's memory",
                    interactive=True,
                    elem_id="render-profile",
                )
                model = gr.Dropdown(label="Model", choices=[e.name for e in pipelines], value=default, interactive=True)
            with gr.Row():
                quantization = gr.Radio(
                    label="Quantization",
                    choices=[AUTO, *QUANTIZATIONS],
                    value=AUTO,
                    info="the transformer's weights in 8 bits: less memory, nearly the same picture",
                )
                offload = gr.Radio(
                    label="Offload (GPU memory)",
                    choices=[AUTO, *OFFLOADS],
                    value=AUTO,
                    info="keep parts of the model in RAM until they run: less GPU memory, slower"
                    if on_gpu
                    else GPU_ONLY,
                    interactive=on_gpu,
                )
                vae_tiling = gr.Radio(
                    label="VAE tiling",
                    choices=list(TILING),
                    value=AUTO,
                    info="decode the video in tiles: far less memory for large frames (auto: the profile's)",
                )
                fast = gr.Checkbox(
                    label="Fast",
                    value=False,
                    info="reuse cached transformer work between steps: faster, a little different",
                )
            with gr.Row():
                auto_duration, decoder = extras(d)
                has_upsampler = bool(studio.vault.entries(kind="upsampler"))
                upscale = gr.Checkbox(
                    label="Upscale 2×",
                    value=False,
                    interactive=has_upsampler,
                    info="two stages: the latent upsampler doubles width and height, then a short refine"
                    if has_upsampler
                    else "needs a latent upsampler in the vault (kind upsampler)",
                    elem_id="render-upscale",
                )
            pictures = picture_inputs.layout()
            with gr.Row():
                # (no minimum/maximum on the numbers: the recipe's check names the field and the range in words)
                # (empty: the model's value, shown as the placeholder)
                width = gr.Number(label="Width", placeholder=p["width"], precision=0, step=32, info="pixels, ×32")
                height = gr.Number(label="Height", placeholder=p["height"], precision=0, step=32, info="pixels, ×32")
                num_frames = gr.Number(
                    label="Frames", placeholder=p["num_frames"], precision=0, step=8, info="17, 25, 33 … (8·k + 1)"
                )
                fps = gr.Number(label="FPS", placeholder=p["fps"], precision=0, info="frames per second, 1 to 60")
            with gr.Row():
                steps = gr.Number(label="Steps", placeholder=p["steps"], precision=0, info="denoising steps, 1–200")
                guidance = gr.Number(
                    label="Guidance", placeholder=p["guidance"], step=0.5, info="how closely to follow the prompt"
                )
                seed = gr.Number(label="Seed", value=0, precision=0, info=f"0 to {MAX_SEED:,}: same seed, same clip")
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
            with gr.Row():  # (no precision: 1.5 is refused by name, not rounded to 2)
                takes = gr.Number(label="Takes", value=1, info="best of N: 1 to 8 seeds, the best one kept")
                retakes = gr.Number(
                    label="Retakes", value=0, info="0 to 4 more seeds, one at a time, while every take fails its QA"
                )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="render-generate")
                add = gr.Button("Add to queue")
                cancel = gr.Button("Cancel", variant="stop")
            budget = gr.Markdown(forecast_text(studio, {}), elem_id="render-budget")
            status = gr.Markdown("")
            restore = gr.File(
                label="Drop an MP4 made by the studio to restore its settings", file_types=[".mp4"], height=90
            )
        with gr.Column(scale=2):
            video = gr.Video(label="Result", interactive=False, autoplay=True, height=420)  # a 64×64 clip stays small
            recipe_view = gr.JSON(label="Recipe")

    form = RenderForm(
        [prompt, negative, model, quantization, offload, width, height, num_frames, fps, steps, guidance, seed, loras]
        + [profile, vae_tiling, fast, auto_duration, decoder, *pictures.fields, upscale]
    )
    return RenderTab(
        form,
        note,
        preset,
        profile,
        lock_seed,
        dice,
        generate,
        add,
        cancel,
        status,
        budget,
        restore,
        video,
        recipe_view,
        queue_panel.layout(services.worker),
        presets,
        takes,
        retakes,
        pictures,
        enhance,
    )


def on_preset(presets: dict[str, Preset], name: str) -> list[Any]:
    chosen = presets.get(name)
    return updates_from_recipe(chosen.settings if chosen else {})


def on_restore(services: Services, path: str | None) -> list[Any]:
    if not path:
        return updates_from_recipe({}) + [gr.update()]
    recipe = media.read_metadata_json(path)
    if recipe is None:
        return updates_from_recipe({}) + [
            shown(refused("file: it carries no AIPROD recipe (was it made by the studio?)"))
        ]
    store = services.studio.image_store().root  # (its pictures, when the store holds them)
    missing = stored_pictures(recipe.get("conditions"), store)[1]
    lost = f" {missing} of its pictures are not in the image store: add them again." if missing else ""
    return updates_from_recipe(recipe, store) + [f"Settings restored from `{recipe.get('prompt', '')[:60]}`.{lost}"]


def lora_choices(services: Services) -> Any:
    return gr.update(choices=[e.name for e in services.studio.vault.entries("lora")])


def random_seed() -> int:
    return random.randint(0, 2**32 - 1)


def next_seed(seed_value: float, locked: bool) -> Any:
    return seed_value if locked else random_seed()


def on_add(services: Services, *args: Any) -> str:
    try:
        job_id = enqueue(services, *args)
    except gr.Error as exc:
        return shown(exc)
    return f"Job {job_id} added to the queue (position {services.worker.status(job_id)['position'] or 'now running'})."


def wire(tab: RenderTab, services: Services) -> None:
    """Connect the tab's events; the queue panel's too."""
    followed = Followed()  # shared by the app's sessions, keyed by session hash
    private = {"api_visibility": "private"}
    inputs = tab.form.components
    sizes = [tab.field(k) for k in SIZE_FIELDS]
    seed = tab.field("seed")
    queue_panel.wire(tab.queue, services)
    follow_model(services, tab.field("model"), [tab.note, *sizes, tab.field("auto_duration"), tab.field("decoder")])
    tab.preset.change(bind(on_preset, tab.presets), inputs=tab.preset, outputs=inputs, **private)
    budget_fields = [tab.field(k) for k in BUDGET_FIELDS]
    for component in budget_fields:  # what the render needs, before Generate is pressed
        component.change(bind(on_forecast, services.studio), inputs=inputs, outputs=tab.budget, queue=False, **private)
    tab.restore.upload(bind(on_restore, services), inputs=tab.restore, outputs=inputs + [tab.status], **private)
    prompt_enhance.wire(tab.enhance, services, tab.field("prompt"), seed, tab.status)
    picture_inputs.wire(tab.pictures, services, tab.field("model"), tab.field("width"), tab.field("height"))
    tab.dice.click(random_seed, outputs=seed, **private)
    # an unlocked seed is drawn before the render starts, so the render uses it (and the field shows it)
    tab.generate.click(next_seed, inputs=[seed, tab.lock_seed], outputs=seed, queue=False, **private).then(
        bind(on_generate, services, followed),
        inputs=[*inputs, tab.takes, tab.retakes],
        outputs=[tab.video, tab.recipe_view, tab.status],
        concurrency_limit=None,
        **private,
    ).then(bind(on_forecast, services.studio), inputs=inputs, outputs=tab.budget, queue=False, **private)
    tab.add.click(next_seed, inputs=[seed, tab.lock_seed], outputs=seed, queue=False, **private).then(
        bind(on_add, services), inputs=inputs, outputs=tab.status, **private
    ).then(bind(queue_panel.refresh, services), outputs=[tab.queue.table], **private)
    # a LoRA trained or imported since the page was built shows when the menu is opened
    tab.field("loras").focus(bind(lora_choices, services), outputs=tab.field("loras"), queue=False, **private)
    tab.cancel.click(bind(on_cancel, services, followed), outputs=tab.status, queue=False, **private)
