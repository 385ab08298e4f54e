"""The render form: the Render tab's recipe inputs, which the History and Vault tabs fill too.

`FIELDS` is the order of the form's components and of the `/render` and `/enqueue`
parameters; `values` turns widget values into recipe values, `updates_from_recipe` a stored
recipe (or a preset's settings) into widget updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

FIELDS = (
    "prompt",
    "negative_prompt",
    "model",
    "quantization",
    "offload",
    "width",
    "height",
    "num_frames",
    "fps",
    "steps",
    "guidance",
    "seed",
    "loras",
    "profile",
    "vae_tiling",
    "fast",
    "auto_duration",
    "decoder",
)
TILING = {"auto": None, "on": True, "off": False}  # the VAE tiling radio's choices → recipe values


def tiling_value(value: Any) -> bool | None:
    """The VAE tiling radio ("auto", "on", "off") or a script's true/false/null → the recipe's value."""
    if value is None or isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    choices = {**TILING, "true": True, "false": False, "null": None}
    if word not in choices:
        raise gr.Error(f"vae_tiling must be auto, on or off (or true, false, null), got {value!r}"[:200])
    return choices[word]


def lora_label(ref: Any) -> str:
    """A LoRA reference (a dict or an object with name and scale) as the menu shows it: `name` or `name:scale`."""
    name, scale = (ref["name"], ref.get("scale", 1.0)) if isinstance(ref, dict) else (ref.name, ref.scale)
    return name if float(scale) == 1.0 else f"{name}:{float(scale):g}"


def values(*args: Any) -> dict[str, Any]:
    """Widget values (in `FIELDS` order) → recipe values; Gradio numbers arrive as floats."""
    out = {}
    for name, value in zip(FIELDS, args, strict=False):
        if name == "loras":
            out[name] = [v for v in ([value] if isinstance(value, str) else value or []) if str(v).strip()]
            continue
        if name == "vae_tiling":
            out[name] = tiling_value(value)
            continue
        if isinstance(value, float) and value.is_integer() and name != "guidance":
            value = int(value)
        out[name] = None if value == "" and name not in ("prompt", "negative_prompt") else value
    return out


def updates_from_recipe(recipe: dict[str, Any]) -> list[Any]:
    """One update per field (in `FIELDS` order): the recipe's value, or no change where it has none."""
    shown = dict(recipe)
    if "model_digest" in shown:  # a whole recipe (a clip's, a history row's): settings it predates are off
        shown = {"vae_tiling": False, "fast": "off", "auto_duration": False, "decoder": "vae", **shown}
        # its profile may not exist here (another machine, a deleted file): its settings are restored as they are
        shown["profile"] = "custom"
    if "loras" in shown:  # [{"name", "scale", …}] → ["name:scale"] for the LoRA menu
        shown["loras"] = [lora_label(r) for r in shown["loras"]]
    if isinstance(shown.get("fast"), str):  # the cache's name → the Fast checkbox
        shown["fast"] = shown["fast"] != "off"
    if isinstance(shown.get("vae_tiling"), bool):
        shown["vae_tiling"] = "on" if shown["vae_tiling"] else "off"
    return [gr.update(value=shown[f]) if f in shown else gr.update() for f in FIELDS]


@dataclass
class RenderForm:
    """The form's components, in `FIELDS` order, so other tabs can fill them."""

    components: list[Any]

    def component(self, field: str) -> Any:
        return self.components[FIELDS.index(field)]
