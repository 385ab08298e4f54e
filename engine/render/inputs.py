"""The loose render inputs a recipe is built from, checked and resolved: pictures prepared and
stored (named by sha256), and the latent upsampler an upscale runs with."""

from __future__ import annotations

from typing import Any

from aiprod_studio.conditions import frame_number
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe
from aiprod_studio.vault.store import Vault
from engine.models.limits import check_limits
from engine.render.images import ImageStore, open_image, prepare
from engine.render.upscale import check_upsampler


def prepared_pictures(store: ImageStore, given: Any, recipe: Recipe) -> list[dict[str, Any]]:
    """A recipe's conditions from loose values: each `{"path", "frame", "strength"}` (a picture
    file, prepared to the clip's size and stored) or `{"image": sha256, …}` (one already stored)."""
    if not isinstance(given, list):
        raise BadInput(f"conditions must be a list of pictures, got {type(given).__name__}", field="conditions")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(given):
        if not isinstance(item, dict):
            raise BadInput(f"conditions entry {i} must be an object, got {type(item).__name__}", field="conditions")
        item = dict(item)
        field = str(item.pop("field", "conditions"))  # the option or parameter the picture came from
        item["frame"] = frame_number(item.get("frame", 0), recipe.num_frames, field)
        if "path" in item:
            image = open_image(item.pop("path"), field)
            item["image"] = store.put(prepare(image, recipe.width, recipe.height))
        elif isinstance(item.get("image"), str):  # one already stored: there, unchanged, at this size
            store.load(item["image"], recipe.width, recipe.height, field)
        out.append(item)
    return out


def with_upsampler(vault: Vault, recipe: Recipe, name: Any = None) -> Recipe:
    """`recipe` naming the latent upsampler its upscale runs with (the one asked for, else the vault's
    first), and its digest; without an upscale, none. Its second stage must fit the model too."""
    if recipe.upscale == 1:
        return recipe.model_copy(update={"upsampler": None, "upsampler_digest": None})
    entries = sorted(vault.entries(kind="upsampler"), key=lambda e: (e.test_model, e.name))
    if name:
        entry = vault.get(str(name), kind="upsampler", field="upsampler")
    elif entries:
        entry = entries[0]
    else:
        raise BadInput(
            "upscale 2 needs a latent upsampler in the vault (kind `upsampler`): provision `ltx-2-upsampler`, "
            "or run `aiprod-studio vault make-tiny` for the test one",
            field="upscale",
        )
    check_upsampler(vault, entry)
    pipeline = vault.get(recipe.model, kind="pipeline")
    bigger = recipe.model_copy(update={"width": recipe.width * 2, "height": recipe.height * 2, "conditions": []})
    check_limits(vault, pipeline, bigger)  # (the second stage renders at the doubled size)
    return recipe.model_copy(update={"upsampler": entry.name, "upsampler_digest": entry.digest})


def upscaled_recipe(studio: Any, job_id: Any) -> Recipe:
    """A finished clip's recipe with the two-stage 2× upscale (the same seed renders the same first
    stage, so the result is that clip, upsampled and refined); refused for a clip already upscaled."""
    row = studio.finished_clip(job_id, "be upscaled")
    data = {k: v for k, v in row["recipe"].items() if k not in ("model_digest", "versions", "upsampler_digest")}
    if data.get("upscale", 1) > 1:
        raise BadInput(
            f"job {row['id']} is already upscaled ({data['width'] * 2}×{data['height'] * 2})", field="job_id"
        )
    return studio.build_recipe({**data, "upscale": 2})
