"""Extend a finished clip: N more frames rendered from its last ones, appended to it.

The new part is one render through the condition pipeline, `context + frames` long, that
starts held to the parent's last `context` frames (decoded from its MP4) as one video
condition; its first `context` frames are dropped and the rest appended to the parent's
own video packets (`engine.render.edits.splice`), with the sound continued from the same moment.
The recipe says all of it (`edit`), so the result re-renders to the same bytes.
"""

from __future__ import annotations

from typing import Any

from aiprod_studio.edits import MAX_EXTEND_FRAMES
from aiprod_studio.errors import BadInput
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_SEED, Recipe
from aiprod_studio.vault.manifest import sha256_file
from engine.models.limits import read_grid
from engine.render.edits.parent import check_parent, parent_clip

CONTEXT_LATENT_FRAMES = 2  # the new part continues from the parent's last two latent frames (and one frame)
# what an edit does not take from its parent's recipe (its own size, length and edit are set here)
NOT_INHERITED = ("model_digest", "versions", "upsampler", "upsampler_digest", "conditions", "edit", "auto_duration")


def held_count(wanted_latents: int, available: int, ratio: int) -> int:
    """Frames of the parent an edit holds to on one side: `wanted_latents` latent frames' worth (and one
    frame), at most `available`, a whole number of latent frames (k·n + 1; 0 when none are there)."""
    return (min(wanted_latents * ratio + 1, available) - 1) // ratio * ratio + 1 if available else 0


def extend_recipe(studio: Any, job_id: Any, frames: Any, prompt: str | None = None, seed: Any = None) -> Recipe:
    """The recipe that extends finished clip `job_id` by `frames` frames (its prompt and seed unless
    others are given); refusals name `job_id`, `frames`, `prompt` or `seed`."""
    row, parent, info = parent_clip(studio, job_id, "be extended")
    count = whole_number(frames, "frames", low=8, high=MAX_EXTEND_FRAMES)
    if count % 8:
        raise BadInput(f"frames must be a multiple of 8 (8, 16, 24, …), got {count}", field="frames")
    data = dict(row["recipe"])
    entry = studio.vault.get(data["model"], kind="pipeline", field="model")
    ratio = read_grid(studio.vault.entry_dir(entry), entry.family).temporal
    context = held_count(CONTEXT_LATENT_FRAMES, info["frames"], ratio)
    values = {k: v for k, v in data.items() if k not in NOT_INHERITED}
    values.update(
        width=info["width"],
        height=info["height"],
        num_frames=info["frames"] + count,
        upscale=1,
        prompt=prompt if prompt else data["prompt"],
        seed=data["seed"] if seed in (None, "") else whole_number(seed, "seed", low=0, high=MAX_SEED),
        edit={"kind": "extend", "parent": sha256_file(parent), "parent_job": row["id"], "frames": count,
              "context": context},
    )  # fmt: skip
    recipe = studio.build_recipe(values)
    check_parent(parent, recipe)  # (joined as it will be, before any device time is spent)
    return recipe
