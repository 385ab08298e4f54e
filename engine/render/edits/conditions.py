"""What the render of an edit holds to: the parent's frames around the new ones.

An extension's render starts with the parent's last `context` frames (one video condition on
the first latent frames). A retake's starts with the `context` frames before the range and holds
the `after` frames after it as keyframe tokens placed at their exact frame, so the new frames
lead into the parent's on both sides. The render runs `Edit.render_frames()` frames; the new
ones are `[context, context + frames)` of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiprod_studio.conditions import latent_slot
from aiprod_studio.recipe import Recipe
from engine.render.conditioned import PIXEL_FRAMES
from engine.render.edits.parent import held_frames


def edit_conditions(runner: Any, recipe: Recipe, parent: Path) -> list[Any]:
    """The diffusers conditions of `recipe.edit`'s render (on the condition pipeline `runner`)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    edit = recipe.edit
    assert edit is not None
    start, end = edit.span(recipe.num_frames)
    spans = [(start - edit.context, edit.context), (end, edit.after)]  # (an extension has nothing after)
    held = held_frames(parent, [(first, count) for first, count in spans if count])
    conditions, pixel_frames = [], {}
    if edit.context:
        conditions.append(LTX2VideoCondition(frames=held.pop(0), index=0))
    if edit.kind == "retake" and edit.after:
        ratio = int(runner.vae_temporal_compression_ratio)
        frame = edit.context + edit.frames  # where the parent's frames after the range sit in the render
        slot = latent_slot(frame, ratio)
        pixel_frames[(slot - 1) * ratio + 1] = frame
        conditions.append(LTX2VideoCondition(frames=held.pop(0), index=slot))
    PIXEL_FRAMES.set(pixel_frames)  # (per thread of work, as for a recipe's own keyframes)
    return conditions
