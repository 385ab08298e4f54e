"""Renders that hold to pictures: a start image (image-to-video) and keyframes.

They run through diffusers' `LTX2ConditionPipeline`, built around the warm text-to-video
pipeline's own components (same weights, LoRAs, cancel points; nothing loaded twice). A
picture on frame 0 replaces the first latent frame (held exactly at strength 1); a picture
on a later frame is appended as keyframe tokens whose positions say which frame it is.

diffusers places a keyframe by latent index, at pixel frame `(index - 1) × k + 1` (k the
VAE's temporal compression). The studio takes any frame of the clip, as LTX-2's own
keyframe conditioning does: each picture goes to the latent frame that holds its frame
(`ceil(frame / k)`) and its positions are those of the frame asked for. Two pictures in
one latent frame are refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from aiprod_studio.conditions import latent_slot
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe
from engine.render.images import ImageStore

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

CACHE_ATTR = "_aiprod_conditioned"
# diffusers' pixel frame of a keyframe's latent slot → the frame the recipe asked for, for the render
# this thread (context) is running
PIXEL_FRAMES: ContextVar[dict[int, int] | None] = ContextVar("keyframe_pixel_frames", default=None)


def conditioned_pipeline(pipe: Pipeline) -> Any:
    """The keyframe-capable pipeline sharing `pipe`'s components, built once per warm pipeline."""
    cached = getattr(pipe, CACHE_ATTR, None)
    if cached is not None:
        return cached
    if type(pipe).__name__ != "LTX2Pipeline":
        raise BadInput(
            f"start images and keyframes need an LTX-2 model; {type(pipe).__name__} renders from text only",
            field="conditions",
        )
    from diffusers import LTX2ConditionPipeline

    class KeyframePipeline(LTX2ConditionPipeline):  # type: ignore[misc]
        """diffusers' condition pipeline, with each keyframe at the pixel frame it was given for."""

        def _prepare_keyframe_coords(self, *args: Any, pixel_frame_idx: int, **kwargs: Any) -> Any:
            frame = (PIXEL_FRAMES.get() or {}).get(pixel_frame_idx, pixel_frame_idx)
            return super()._prepare_keyframe_coords(*args, pixel_frame_idx=frame, **kwargs)

    accepted = set(inspect.signature(LTX2ConditionPipeline.__init__).parameters)
    components = {k: v for k, v in pipe.components.items() if k in accepted}
    runner = KeyframePipeline(**components)
    runner.set_progress_bar_config(disable=True)
    setattr(pipe, CACHE_ATTR, runner)
    return runner


def load_pictures(store: ImageStore, recipe: Recipe) -> dict[str, np.ndarray]:
    """Each picture the recipe names, read once from `store` (checked against its sha256 and the clip's
    size): what the render holds to, so nothing is read again while the device waits."""
    return {cond.image: store.load(cond.image, recipe.width, recipe.height) for cond in recipe.conditions}


def pipeline_conditions(runner: Any, recipe: Recipe, pictures: Mapping[str, np.ndarray], scale: int = 1) -> list[Any]:
    """The recipe's pictures (`pictures`: by sha256, as `load_pictures` reads them) as diffusers
    conditions, each on its latent slot; `scale` 2: each enlarged to the doubled size (a two-stage
    upscale's second stage). The spacing was checked with the recipe (`engine.models.limits`)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    ratio = int(runner.vae_temporal_compression_ratio)
    pixel_frames: dict[int, int] = {}
    conditions = []
    for cond in recipe.conditions:
        slot = latent_slot(cond.frame, ratio)
        if slot:
            pixel_frames[(slot - 1) * ratio + 1] = cond.frame
        image = pictures[cond.image]
        if scale != 1:
            size = (recipe.width * scale, recipe.height * scale)
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        conditions.append(LTX2VideoCondition(frames=image, index=slot, strength=cond.strength))
    PIXEL_FRAMES.set(pixel_frames)  # (per thread of work: a render running beside it keeps its own)
    return conditions
