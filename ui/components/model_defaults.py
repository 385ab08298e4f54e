"""The Render form's fields that follow the chosen model.

Sizes, steps and guidance left empty are the model's: its entry's defaults over its
generation's recommended ones (LTX-2.0, 2.3, 2.5, distilled), shown as the fields'
placeholders. The generation's extras (auto duration, the diffusion decoder) can be
switched on only where the model has them.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.context import Context

from aiprod_studio.vault.manifest import Entry
from ui.components.start_panel import start_note
from ui.context import Services, bind

SIZE_FIELDS = ("width", "height", "num_frames", "fps", "steps", "guidance")
FALLBACK_SIZES = {"width": 768, "height": 512, "num_frames": 121, "fps": 24, "steps": 40, "guidance": 4.0}
DECODERS = [("VAE", "vae"), ("Quality decode (diffusion decoder)", "diffusion")]


def model_defaults(services: Services, entry: Entry | None) -> dict[str, Any]:
    """What a render on `entry` uses where the form is empty (the fallback sizes without a model)."""
    return services.studio.model_defaults(entry) if entry else {**FALLBACK_SIZES, "generation": None}


def placeholder(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def offers(defaults: dict[str, Any], feature: str) -> bool:
    generation = defaults.get("generation") or {}
    needs = {"auto_duration": "duration_head", "decoder": "diffusion_decoder"}[feature]
    return needs in generation.get("components", [])


def note(entry: Entry | None, defaults: dict[str, Any]) -> str:
    """The start note, with the model's generation and the defaults it renders with."""
    text = start_note(entry)
    generation = defaults.get("generation")
    if entry is None or not generation:
        return text
    return text + (
        f"\n\n{generation['label']} (read from its configs): renders {defaults['width']}×{defaults['height']}, "
        f"{defaults['num_frames']} frames at {defaults['fps']} fps, {defaults['steps']} steps, guidance "
        f"{placeholder(defaults['guidance'])} unless you set them."
    )


def extras(defaults: dict[str, Any]) -> tuple[Any, Any]:
    """The generation's extras: Auto duration and the decoder."""
    auto_duration = gr.Checkbox(
        label="Auto duration",
        value=False,
        interactive=offers(defaults, "auto_duration"),
        info="LTX-2.5: the model picks the length, at most Frames",
        elem_id="render-auto-duration",
    )
    decoder = gr.Radio(
        label="Decoder",
        choices=DECODERS,
        value="vae",
        interactive=offers(defaults, "decoder"),
        info="LTX-2.5's diffusion decoder: finer detail, slower",
        elem_id="render-decoder",
    )
    return auto_duration, decoder


def on_model(services: Services, name: str) -> list[Any]:
    """The chosen model's note, its defaults as the size fields' placeholders (the fields emptied, so
    they follow the model), and its extras switched on or off."""
    entry = next((e for e in services.studio.pipelines() if e.name == name), None)
    if entry is None:
        return [gr.update()] * (len(SIZE_FIELDS) + 3)
    defaults = model_defaults(services, entry)
    sizes = [gr.update(value=None, placeholder=placeholder(defaults[k])) for k in SIZE_FIELDS]
    auto_ok, decoder_ok = offers(defaults, "auto_duration"), offers(defaults, "decoder")
    return [
        gr.update(value=note(entry, defaults)),
        *sizes,
        gr.update(interactive=auto_ok, **({} if auto_ok else {"value": False})),
        gr.update(interactive=decoder_ok, **({} if decoder_ok else {"value": "vae"})),
    ]


def on_extras(services: Services, name: str) -> list[Any]:
    """The extras switched on or off for the model now chosen (its sizes untouched)."""
    return on_model(services, name)[-2:]


def follow_model(services: Services, model: Any, outputs: list[Any]) -> None:
    """`on_model` when the model changes, and when the page loads (Gradio shows a number field
    built without a value as 0; emptied by an update, it shows its placeholder)."""
    private: dict[str, Any] = {"api_visibility": "private"}
    # (`input`, not `change`: a recipe restored or re-used sets the model and its sizes together, and
    # must keep them; the extras still follow any change)
    model.input(bind(on_model, services), inputs=model, outputs=outputs, **private)
    model.change(bind(on_extras, services), inputs=model, outputs=outputs[-2:], **private)
    if Context.root_block is not None:
        Context.root_block.load(bind(on_model, services), inputs=model, outputs=outputs, **private)
