"""One render: a validated recipe and a loaded pipeline in, an MP4 with sound out."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aiprod_studio.errors import BadInput, Cancelled
from aiprod_studio.recipe import Recipe
from aiprod_studio.vault.manifest import sha256_file
from engine.models.interrupt import cancel_points
from engine.models.speed import apply_fast
from engine.render import media
from engine.render.conditioned import conditioned_pipeline, pipeline_conditions
from engine.render.decode import decode_latents, decoder_for
from engine.render.edits.conditions import edit_conditions
from engine.render.edits.sound import edited_sound
from engine.render.edits.splice import splice_mp4
from engine.render.schedule import schedule
from engine.render.upscale import STAGE_2_SIGMAS, stage_two_kwargs, upsample

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


class RenderNotFinite(BadInput):
    """The pipeline finished but its frames or audio hold NaN/Inf values (nothing is written).

    Exit 2: the recipe (steps, seed, size) does not render on this model; a different one may.
    """

    def __init__(self, message: str):
        super().__init__(message, field="recipe")


def pipeline_kwargs(pipe: Pipeline, recipe: Recipe) -> dict[str, Any]:
    """The pipeline call arguments a recipe stands for; unsupported settings are refused."""
    kwargs: dict[str, Any] = {
        "prompt": recipe.prompt,
        "negative_prompt": recipe.negative_prompt,
        "width": recipe.width,
        "height": recipe.height,
        "num_frames": recipe.num_frames,
        "frame_rate": float(recipe.fps),
        "num_inference_steps": recipe.steps,
        "guidance_scale": recipe.guidance,
    }
    if recipe.auto_duration:  # the duration head picks; `num_frames` is the longest clip allowed
        # (bounds that depend on nothing but the recipe: rendered again with the count it picked,
        # the head picks that same count, so the clip re-renders identically)
        kwargs["num_frames"] = None
        kwargs["min_seconds"] = 1.0 / recipe.fps
        kwargs["max_seconds"] = recipe.num_frames / recipe.fps
    accepted = inspect.signature(pipe.__call__).parameters
    for key, value in recipe.advanced.items():
        if key not in accepted:
            raise BadInput(f"advanced setting {key!r} is not supported by {type(pipe).__name__}", field="advanced")
        kwargs[key] = value
    if recipe.auto_duration and "max_seconds" not in accepted:
        raise BadInput(f"auto_duration is not supported by {type(pipe).__name__}", field="auto_duration")
    return {k: v for k, v in kwargs.items() if k in accepted}


def set_vae_tiling(pipe: Pipeline, on: bool) -> None:
    """Decode the video in tiles (512×512 pixels, 16 frames, blended overlaps) or whole, as the
    recipe says: set on every render, so a warm pipeline never keeps the last render's choice."""
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "use_tiling"):
        return
    vae.use_tiling = on  # spatial tiles
    if hasattr(vae, "use_framewise_decoding"):
        vae.use_framewise_decoding = on  # temporal tiles


def run_pipeline(
    pipe: Pipeline,
    recipe: Recipe,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    pictures: Mapping[str, np.ndarray] | None = None,
    upsampler: Any = None,
    parent: Path | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """Denoise and decode; returns (frames F×H×W×3 float, audio C×S or None, sample rate).

    A set `cancel` stops the render with `Cancelled` at the next block of any component
    (text encoder, transformer, VAE decode, vocoder), not only at the end of a step.
    A recipe with pictures (start image, keyframes) runs the condition pipeline around the
    same components, holding to `pictures` (`conditioned.load_pictures`); one with `upscale` 2 runs the
    second stage (`engine.render.upscale`) with `upsampler`; one with an `edit` (extend, retake) renders
    only the new part, held to the `parent` clip's frames around it (the frames returned are the new ones).
    """
    refine = len(STAGE_2_SIGMAS) if recipe.upscale > 1 else 0
    done = 0  # steps of the stages before the one running

    def on_step_end(_pipe: Pipeline, step: int, _t: Any, callback_kwargs: dict) -> dict:
        if progress is not None:
            progress(done + step + 1, recipe.steps + refine)
        if cancel is not None and cancel.is_set():
            _pipe._interrupt = True  # diffusers' own flag, in case the exception below is swallowed
            raise Cancelled("render cancelled")
        return callback_kwargs

    # Noise comes from a CPU generator, so a seed gives the same start on any device.
    generator = torch.Generator("cpu").manual_seed(recipe.seed)
    if cancel is not None and cancel.is_set():
        raise Cancelled("render cancelled before it started")
    if recipe.upscale > 1 and upsampler is None:
        raise BadInput("upscale 2 needs the vault's latent upsampler; none was given to this render", field="upscale")
    runner, held = pipe, {}
    if recipe.conditions or recipe.edit:  # the same weights through the condition pipeline
        runner = conditioned_pipeline(pipe)
    if recipe.conditions:
        if pictures is None:
            raise BadInput("conditions: this render was not given its pictures", field="conditions")
        held["conditions"] = pipeline_conditions(runner, recipe, pictures)
    components = [*getattr(pipe, "components", {}).values(), upsampler]
    set_vae_tiling(pipe, recipe.vae_tiling)
    apply_fast(pipe, recipe.fast, recipe.steps)  # on, off or reset: a warm pipeline keeps no state between renders
    last_type = "latent" if recipe.decoder == "diffusion" else "np"
    kwargs = pipeline_kwargs(runner, recipe)
    if recipe.edit is not None:  # extend, retake: the new part, held to the parent's frames around it
        if parent is None:
            raise BadInput("edit: this render was not given its parent clip", field="edit")
        kwargs["num_frames"] = recipe.edit.render_frames()
        held["conditions"] = edit_conditions(runner, recipe, parent)
    with torch.inference_mode(), cancel_points([c for c in components if c is not None], cancel):
        with schedule(runner, recipe.steps):
            out = runner(
                **kwargs,
                **held,
                generator=generator,
                output_type="latent" if refine else last_type,
                callback_on_step_end=on_step_end,
                return_dict=True,
            )
        if refine:  # 2×: upsample the latents, then refine them at the doubled size (the stage-1 render is the
            done = recipe.steps  # very one a plain render of the recipe makes: a clip upscaled later is that clip)
            latents = upsample(pipe, upsampler, out.frames)
            runner = conditioned_pipeline(pipe)  # (it takes stage 1's latents and sound as they come out)
            frames_made = (out.frames.shape[2] - 1) * runner.vae_temporal_compression_ratio + 1
            if recipe.conditions:
                held["conditions"] = pipeline_conditions(runner, recipe, pictures or {}, scale=recipe.upscale)
            size = {"width": recipe.width * recipe.upscale, "height": recipe.height * recipe.upscale}
            with schedule(runner, len(STAGE_2_SIGMAS), stage_two=True):
                out = runner(
                    **stage_two_kwargs(kwargs, **size, num_frames=frames_made),
                    **held,
                    latents=latents,
                    audio_latents=out.audio,
                    generator=generator,
                    output_type=last_type,
                    callback_on_step_end=on_step_end,
                    return_dict=True,
                )
        if recipe.decoder == "diffusion":  # the quality decode: the diffusion decoder, then sound as always
            with cancel_points(decoder_for(pipe).diffusion_decoder, cancel):
                frames, audio = decode_latents(pipe, out.frames, getattr(out, "audio", None), generator)
        else:
            frames, audio = np.asarray(out.frames[0]), getattr(out, "audio", None)
    if recipe.edit is not None:  # (the parent's frames stay the parent's own)
        frames = frames[recipe.edit.context : recipe.edit.context + recipe.edit.frames]
    sample_rate = None
    if audio is not None:
        audio = audio[0].float().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio[0], dtype=np.float32)
        vocoder = getattr(pipe, "vocoder", None)
        sample_rate = int(getattr(vocoder.config, "output_sampling_rate", 0) or pipe.audio_sampling_rate)
    return frames, audio, sample_rate


def check_finite(frames: np.ndarray, audio: np.ndarray | None) -> None:
    """Refuse a render whose frames (F×H×W×3) or audio hold NaN/Inf, naming how much."""
    problems = []
    bad_frames = int((~np.isfinite(frames.reshape(frames.shape[0], -1))).any(axis=1).sum()) if frames.size else 0
    if bad_frames:
        problems.append(f"{bad_frames} of {frames.shape[0]} frames (video)")
    if audio is not None and audio.size:
        bad_samples = int((~np.isfinite(audio)).sum())
        if bad_samples:
            problems.append(f"{bad_samples} of {audio.size} audio samples")
    if problems:
        raise RenderNotFinite(
            f"the render produced NaN/Inf values in {' and '.join(problems)}; nothing was written. "
            "Try more steps, another seed or another model"
        )


def render_to_file(
    pipe: Pipeline,
    recipe: Recipe,
    out_path: Path,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    pictures: Mapping[str, np.ndarray] | None = None,
    upsampler: Any = None,
    parent: Path | None = None,
) -> Recipe:
    """Render `recipe` with `pipe` and write the MP4 (recipe JSON in its `comment` tag); returns the
    recipe as rendered (with auto duration: the frame count the model picked)."""
    frames, audio, sample_rate = run_pipeline(pipe, recipe, progress, cancel, pictures, upsampler, parent)
    if cancel is not None and cancel.is_set():
        raise Cancelled("render cancelled")
    check_finite(frames, audio)
    if recipe.auto_duration:  # (a pick below 9 frames leaves no choice to repeat: recorded as a fixed count)
        picked = int(frames.shape[0])
        recipe = Recipe.model_validate({**recipe.model_dump(), "num_frames": picked, "auto_duration": picked >= 9})
    metadata = {media.RECIPE_TAG: recipe.to_json(), "title": recipe.prompt[:200]}
    edit = recipe.edit
    if edit is not None and parent is not None:  # the parent's video kept bit for bit, the new part in it
        audio, sample_rate, kept = edited_sound(parent, recipe, audio, sample_rate)
        span = edit.span(recipe.num_frames)
        splice_mp4(out_path, parent, frames, recipe.fps, audio, sample_rate, metadata, span, kept, recipe.keyint)
        if sha256_file(parent) != edit.parent:  # (replaced while it was read: the clip is not what the recipe says)
            Path(out_path).unlink(missing_ok=True)
            raise BadInput("edit: the parent clip changed on disk during the render; nothing was kept", field="edit")
    else:
        media.encode_mp4(out_path, frames, recipe.fps, audio, sample_rate, metadata=metadata, keyint=recipe.keyint)
    return recipe
