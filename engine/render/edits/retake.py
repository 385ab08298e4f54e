"""Retake a time range of a finished clip: those frames rendered again, every other frame kept.

The range is widened to the parent's keyframes (the studio's clips have one a second), so the
parent's packets before and after it are copied as they are and its frames there decode bit for
bit as before. The new frames are one render through the condition pipeline, held to the
parent's frames just before the range (at its start) and just after it (as keyframe tokens at
their exact frame), so they lead into the parent's on both sides; the sound is the new render's
over the range, crossfaded into the parent's at both joins. The recipe says all of it (`edit`).
"""

from __future__ import annotations

import math
from typing import Any

from aiprod_studio.errors import BadInput
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_SEED, Recipe, random_seed
from aiprod_studio.text import echo
from aiprod_studio.vault.manifest import sha256_file
from engine.models.limits import read_grid
from engine.render.edits.extend import CONTEXT_LATENT_FRAMES, NOT_INHERITED, held_count
from engine.render.edits.parent import check_parent, keyframes, parent_clip


def moment(value: Any, field: str) -> float:
    """A time in the clip, in seconds (a number ≥ 0), else `BadInput` naming `field`."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:  # (an integer too large for a float is no time either)
            value = float(value.strip() if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            raise BadInput(f"{field} must be a time in seconds, got {echo(value)}", field=field) from None
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value) or value < 0:
        raise BadInput(f"{field} must be a time in seconds from 0, got {echo(value)}", field=field)
    return value


def retake_range(keys: list[int], frames: int, fps: int, start_s: Any, end_s: Any) -> tuple[int, int]:
    """The frames (first, end) a retake from `start_s` to `end_s` seconds renders again: widened to the
    keyframes `keys` around it (or the clip's end); refusals name `start` or `end`."""
    start, end = moment(start_s, "start"), moment(end_s, "end")
    duration = frames / fps
    if start >= duration:
        raise BadInput(f"start must be before the clip's end ({duration:.3f} s), got {start:g}", field="start")
    if end <= start or end > duration + 1e-6:
        raise BadInput(f"end must be after start ({start:g} s) and at most {duration:.3f} s, got {end:g}", field="end")
    first_frame = min(math.floor(start * fps + 1e-6), frames - 1)
    end_frame = max(math.ceil(end * fps - 1e-6), first_frame + 1)  # (at least the frame `start` falls in)
    first = max([k for k in keys if k <= first_frame] or [0])
    last = min([k for k in keys if k >= end_frame] + [frames])
    if first == 0 and last == frames:
        cuts = ", ".join(f"{k / fps:g} s" for k in keys[1:11]) or "none after its first frame"
        raise BadInput(
            f"start: the clip can only be cut at its keyframes ({cuts}), so a retake from {start:g} to {end:g} s "
            "would render every frame again; choose a shorter range, or render the clip again with another seed",
            field="start",
        )
    return first, last


def retake_recipe(
    studio: Any, job_id: Any, start: Any, end: Any, prompt: str | None = None, seed: Any = None
) -> Recipe:
    """The recipe that renders the frames of finished clip `job_id` from `start` to `end` seconds again
    (the clip's prompt unless another is given; a new seed unless one is given); refusals name `job_id`,
    `start`, `end`, `prompt` or `seed`."""
    row, parent, info = parent_clip(studio, job_id, "be retaken")
    data = dict(row["recipe"])
    fps = int(data["fps"])
    keys = keyframes(parent)
    if not [k for k in keys if 0 < k < info["frames"]]:
        raise BadInput(
            f"job_id {row['id']}: its clip has no keyframe after its first frame (it was rendered before clips had "
            "one a second, or it lasts a second or less), so it cannot be retaken in part; render it again with "
            "another seed instead",
            field="job_id",
        )
    first, last = retake_range(keys, info["frames"], fps, start, end)
    entry = studio.vault.get(data["model"], kind="pipeline", field="model")
    ratio = read_grid(studio.vault.entry_dir(entry), entry.family).temporal
    values = {k: v for k, v in data.items() if k not in NOT_INHERITED}
    values.update(
        width=info["width"],
        height=info["height"],
        num_frames=info["frames"],
        upscale=1,
        prompt=prompt if prompt else data["prompt"],
        seed=random_seed() if seed in (None, "") else whole_number(seed, "seed", low=0, high=MAX_SEED),
        edit={
            "kind": "retake",
            "parent": sha256_file(parent),
            "parent_job": row["id"],
            "start": first,
            "frames": last - first,
            "context": held_count(CONTEXT_LATENT_FRAMES, first, ratio),
            "after": held_count(CONTEXT_LATENT_FRAMES, info["frames"] - last, ratio),
        },
    )
    recipe = studio.build_recipe(values)
    check_parent(parent, recipe)  # (cut and joined as it will be, before any device time is spent)
    return recipe
