"""The render form: the Render tab's recipe inputs, which the History and Vault tabs fill too.

`FIELDS` is the order of the form's components and of the `/render` and `/enqueue`
parameters; `values` turns widget values into recipe values, `updates_from_recipe` a stored
recipe (or a preset's settings) into widget updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from aiprod_studio.conditions import Condition, parse_at, split_specs
from aiprod_studio.errors import BadInput

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
    "image",
    "end_image",
    "end_strength",
    "keyframes",
    "keyframe_frames",
    "upscale",
)
PICTURE_FIELDS = ("image", "end_image", "end_strength", "keyframes", "keyframe_frames")
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


def file_path(value: Any, field: str = "image") -> str | None:
    """An upload as its path: a path already (a form's image), or a file record (`{"path": …}`, an API's);
    None or "" is no picture. Anything else is refused by `field` (never taken as "no picture")."""
    if value is None or value == "":
        return None
    path = value if isinstance(value, str) else value.get("path") if isinstance(value, dict) else None
    if path is None and not isinstance(value, (str, dict)):
        path = getattr(value, "path", None)
    if not isinstance(path, str) or not path:
        shown = type(value).__name__ if not isinstance(value, dict) else f"a record without a path ({list(value)[:4]})"
        raise BadInput(f"{field}: give a PNG, JPEG or WebP upload, got {shown}", field=field)
    return path


def pictures(form: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The form's start image, end image and keyframes as a recipe's loose `conditions` (None: no picture)."""
    found = []
    if path := file_path(form.get("image"), "image"):
        found.append({"path": path, "frame": 0, "strength": 1.0, "field": "image"})
    if path := file_path(form.get("end_image"), "end_image"):
        strength = form.get("end_strength")
        frame, strength = parse_at(f"last:{1.0 if strength in (None, '') else strength}", "end_strength")
        found.append({"path": path, "frame": frame, "strength": strength, "field": "end_image"})
    files = form.get("keyframes") or []
    files = [file_path(f, "keyframes") for f in (files if isinstance(files, list) else [files])]
    specs = split_specs(form.get("keyframe_frames"), "keyframe_frames")
    if len(specs) != len(files):
        raise BadInput(
            f"keyframe_frames must give one FRAME[:STRENGTH] per keyframe picture ({len(files)}), got {len(specs)}",
            field="keyframe_frames",
        )
    if any(not f for f in files):
        raise BadInput("keyframes: an empty entry; give a PNG, JPEG or WebP file for each keyframe", field="keyframes")
    for path, spec in zip(files, specs, strict=True):
        frame, strength = parse_at(spec, "keyframe_frames")
        found.append({"path": path, "frame": frame, "strength": strength, "field": "keyframes"})
    return found or None


def values(*args: Any) -> dict[str, Any]:
    """Widget values (in `FIELDS` order) → recipe values; Gradio numbers arrive as floats."""
    out: dict[str, Any] = {}
    given = dict(zip(FIELDS, args, strict=False))
    out["conditions"] = pictures(given)
    for name, value in given.items():
        if name in PICTURE_FIELDS:
            continue
        if name == "loras":
            out[name] = [v for v in ([value] if isinstance(value, str) else value or []) if str(v).strip()]
            continue
        if name == "vae_tiling":
            out[name] = tiling_value(value)
            continue
        if name == "upscale":  # the checkbox (on: 2×, off: none) or a script's factor
            if isinstance(value, bool) or value in (None, ""):
                value = 2 if value is True else None
            out[name] = int(value) if isinstance(value, float) and value.is_integer() else value
            continue
        if isinstance(value, float) and value.is_integer() and name != "guidance":
            value = int(value)
        out[name] = None if value == "" and name not in ("prompt", "negative_prompt") else value
    return out


def updates_from_recipe(recipe: dict[str, Any], store: Path | None = None) -> list[Any]:
    """One update per field (in `FIELDS` order): the recipe's value, or no change where it has none
    (its pictures are looked up in the image store `store`)."""
    shown = dict(recipe)
    if "model_digest" in shown:  # a whole recipe (a clip's, a history row's): settings it predates are off
        shown = {"vae_tiling": False, "fast": "off", "auto_duration": False, "decoder": "vae", "upscale": 1, **shown}
        # its profile may not exist here (another machine, a deleted file): its settings are restored as they are
        shown["profile"] = "custom"
    if "loras" in shown:  # [{"name", "scale", …}] → ["name:scale"] for the LoRA menu
        shown["loras"] = [lora_label(r) for r in shown["loras"]]
    if isinstance(shown.get("fast"), str):  # the cache's name → the Fast checkbox
        shown["fast"] = shown["fast"] != "off"
    if "upscale" in shown:  # the factor → the Upscale checkbox
        shown["upscale"] = shown["upscale"] == 2
    if isinstance(shown.get("vae_tiling"), bool):
        shown["vae_tiling"] = "on" if shown["vae_tiling"] else "off"
    if "model_digest" in shown or "conditions" in shown:  # its pictures, from the image store
        shown.update(picture_fields(shown.get("conditions") or [], int(shown.get("num_frames") or 0), store))
    return [gr.update(value=shown[f]) if f in shown else gr.update() for f in FIELDS]


def picture_fields(conditions: Any, num_frames: int, store: Path | None) -> dict[str, Any]:
    """A recipe's pictures back in the form: frame 0 at full strength the start image, the last frame the end
    image, the rest keyframes (each found in the image store `store`; one not there, or not a valid picture
    entry, is left out: `stored_pictures` counts them)."""
    fields: dict[str, Any] = {"image": None, "end_image": None, "end_strength": 1.0, "keyframes": []}
    specs = []
    for cond, path in stored_pictures(conditions, store)[0]:
        if cond.frame == 0 and cond.strength == 1.0 and fields["image"] is None:
            fields["image"] = str(path)
        elif cond.frame == num_frames - 1 and fields["end_image"] is None and round(cond.strength, 2) == cond.strength:
            fields["end_image"], fields["end_strength"] = str(path), cond.strength
        else:
            fields["keyframes"].append(str(path))
            specs.append(f"{cond.frame}:{cond.strength!r}")
    fields["keyframe_frames"] = ", ".join(specs)
    fields["keyframes"] = fields["keyframes"] or None
    return fields


def stored_pictures(conditions: Any, store: Path | None) -> tuple[list[tuple[Condition, Path]], int]:
    """The recipe's valid picture entries found in `store`, and how many were not."""
    found, missing = [], 0
    for item in conditions if isinstance(conditions, list) else []:
        try:
            cond = Condition.model_validate(item)
        except ValidationError:
            missing += 1
            continue
        path = store / f"{cond.image}.png" if store is not None else None
        if path is None or not path.is_file():
            missing += 1
            continue
        found.append((cond, path))
    return found, missing


@dataclass
class RenderForm:
    """The form's components, in `FIELDS` order, so other tabs can fill them."""

    components: list[Any]

    def component(self, field: str) -> Any:
        return self.components[FIELDS.index(field)]
