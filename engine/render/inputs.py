"""The loose render inputs a recipe is built from, checked and resolved: pictures prepared and
stored (named by sha256), and the latent upsampler an upscale runs with."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from aiprod_studio.conditions import MAX_CONDITIONS, Condition, check_conditions, check_slots, frame_number
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe
from aiprod_studio.validation import format_validation_error
from aiprod_studio.vault.store import Vault
from engine.models.limits import check_limits
from engine.render.images import ImageStore, open_image, prepare
from engine.render.upscale import check_upsampler


def prepared_pictures(store: ImageStore, given: Any, recipe: Recipe, temporal: int) -> list[dict[str, Any]]:
    """A recipe's conditions from loose values: each `{"path", "frame", "strength"}` (a picture
    file, prepared to the clip's size and stored), `{"source": sha256, …}` (a stored picture of any
    size, prepared the same way: a storyboard shot's) or `{"image": sha256, …}` (one already prepared).
    How many, which frames and how far apart (`temporal`: the model's frames per latent frame) are
    checked before any picture is read."""
    if not isinstance(given, list):
        raise BadInput(f"conditions must be a list of pictures, got {type(given).__name__}", field="conditions")
    if len(given) > MAX_CONDITIONS:
        named = {str(g.get("field")) for g in given if isinstance(g, dict)} - {"None"}
        field = named.pop() if len(named) == 1 else "conditions"
        raise BadInput(f"{field}: at most {MAX_CONDITIONS} pictures in all, got {len(given)}", field=field)
    items, fields = [], []
    for i, item in enumerate(given):
        if not isinstance(item, dict):
            raise BadInput(f"conditions entry {i} must be an object, got {type(item).__name__}", field="conditions")
        item = dict(item)
        fields.append(str(item.pop("field", "conditions")))  # the option or parameter the picture came from
        item["frame"] = frame_number(item.get("frame", 0), recipe.num_frames, fields[-1])
        items.append(item)
    try:  # (every check a picture's content plays no part in, with a stand-in name)
        stand_in = [Condition(image="0" * 64, frame=c["frame"], strength=c.get("strength", 1.0)) for c in items]
    except ValidationError as exc:
        raise BadInput(f"conditions {format_validation_error(exc)}", field="conditions") from None
    problem = check_conditions(stand_in, recipe.num_frames, recipe.auto_duration) or check_slots(stand_in, temporal)
    if problem:  # said of the option the picture came from, by its place there (a keyframe's own index)
        entry = re.match(r"entry (\d+): ", problem)
        if entry and int(entry.group(1)) < len(fields):
            i = int(entry.group(1))
            field, place = fields[i], fields[: i + 1].count(fields[i]) - 1
            raise BadInput(f"{field} {place}: {problem[entry.end() :]}", field=field)
        field = fields[0] if len(set(fields)) == 1 else "conditions"  # (pictures all from one option: that one)
        raise BadInput(f"{field}: {problem}", field=field)
    for item, field in zip(items, fields, strict=True):
        if "path" in item:
            image = open_image(item.pop("path"), field)
            item["image"] = store.put(prepare(image, recipe.width, recipe.height))
        elif isinstance(item.get("source"), str):
            item["image"] = store.prepared(item.pop("source"), recipe.width, recipe.height, field)
        elif isinstance(item.get("image"), str):  # one already stored: there, unchanged, at this size
            store.load(item["image"], recipe.width, recipe.height, field)
    return items


def with_upsampler(vault: Vault, recipe: Recipe, name: Any = None) -> Recipe:
    """`recipe` naming the latent upsampler its upscale runs with (the one asked for, else the vault's
    first that suits the model: real weights for a real model), and its digest; without an upscale, none.
    Its second stage must fit the model too."""
    if recipe.upscale == 1:
        return recipe.model_copy(update={"upsampler": None, "upsampler_digest": None})
    pipeline = vault.get(recipe.model, kind="pipeline")
    if pipeline.family != "ltx2":
        raise BadInput(f"upscale 2 needs an LTX-2 model; {pipeline.name!r} is {pipeline.family}", field="upscale")
    if name:
        entry = vault.get(str(name), kind="upsampler", field="upsampler")
    else:
        suited = [e for e in vault.entries(kind="upsampler") if pipeline.test_model or not e.test_model]
        if not suited:
            raise BadInput(
                "upscale 2 needs a latent upsampler in the vault (kind `upsampler`): provision `ltx-2-upsampler`"
                + (", or run `aiprod-studio vault make-tiny` for the test one" if pipeline.test_model else ""),
                field="upscale",
            )
        entry = sorted(suited, key=lambda e: (e.test_model, e.name))[0]
    check_upsampler(vault, entry, pipeline)
    bigger = recipe.model_copy(update={"width": recipe.width * 2, "height": recipe.height * 2, "conditions": []})
    check_limits(vault, pipeline, bigger)  # (the second stage renders at the doubled size)
    return recipe.model_copy(update={"upsampler": entry.name, "upsampler_digest": entry.digest})


EDIT_NAMES = {"extend": "an extension", "retake": "a retake"}


def upscaled_recipe(studio: Any, job_id: Any) -> Recipe:
    """A finished clip's recipe with the two-stage 2× upscale (the same seed renders the same first
    stage, so the result is that clip, upsampled and refined); refused for a clip already upscaled."""
    row = studio.finished_clip(job_id, "be upscaled")
    data = {k: v for k, v in row["recipe"].items() if k not in ("model_digest", "versions", "upsampler_digest")}
    if data.get("edit"):
        raise BadInput(
            f"job_id {row['id']} is {EDIT_NAMES.get(data['edit'].get('kind'), 'an edit')} of another clip; "
            "upscale that clip, then edit the upscaled one",
            field="job_id",
        )
    if data.get("upscale", 1) > 1:
        raise BadInput(
            f"job {row['id']} is already upscaled ({data['width'] * 2}×{data['height'] * 2})", field="job_id"
        )
    return studio.build_recipe({**data, "upscale": 2})
