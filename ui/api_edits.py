"""The scripting API's endpoints that work on a clip rather than render a new one: `/upscale`,
`/extend` and `/retake` (a finished clip made into a new job) and `/enhance_prompt` (the local LLM's
rewrite).
Registered by `ui.api.build` with the others; the same contract rules apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiprod_studio.errors import StudioError
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_SEED
from engine.jobs.queue import QueueWorker
from engine.studio import Studio
from ui.errors import refused


def endpoints(studio: Studio, worker: QueueWorker, queued: Callable[[int], dict[str, Any]]) -> list[Callable]:
    """The typed functions (`queued(job_id)`: a new job's record, as the other endpoints return it)."""

    def upscale(job_id: int) -> dict:
        """Queue a finished clip again with the two-stage 2× upscale (its recipe and seed render the same first
        stage; the vault's latent upsampler doubles it, a short refine follows); returns the new job's record."""
        from engine.render.inputs import upscaled_recipe

        try:
            return queued(worker.enqueue(upscaled_recipe(studio, job_id)))
        except StudioError as exc:
            raise refused(exc) from None

    def extend(job_id: int, frames: int = 24, prompt: str = "", seed: int | None = None) -> dict:
        """Queue the continuation of a finished clip: `frames` new frames (a multiple of 8) rendered from its last
        ones and appended, its own frames kept bit for bit; `prompt` and `seed` default to the clip's. Returns the
        new job's record (`parent_id` names the clip's job)."""
        from engine.render.edits.extend import extend_recipe

        try:
            return queued(worker.enqueue(extend_recipe(studio, job_id, frames, prompt or None, seed)))
        except StudioError as exc:
            raise refused(exc) from None

    def retake(job_id: int, start: float, end: float, prompt: str = "", seed: int | None = None) -> dict:
        """Queue a retake of a finished clip: its seconds `start` to `end` rendered again (widened to the clip's
        keyframes, one a second; `edit.start` and `edit.frames` in the new job's recipe say which frames), held to
        its frames on both sides, every other frame kept bit for bit; `prompt` defaults to the clip's, `seed` to a
        new one. Returns the new job's record (`parent_id` names the clip's job)."""
        from engine.render.edits.retake import retake_recipe

        try:
            return queued(worker.enqueue(retake_recipe(studio, job_id, start, end, prompt or None, seed)))
        except StudioError as exc:
            raise refused(exc) from None

    def enhance_prompt(prompt: str, seed: int = 0, scenarist: str = "") -> dict:
        """Rewrite a short prompt into a detailed one (subject, action, camera, light, sound) with the vault's local
        LLM (`scenarist`: its entry, default the first), seeded; returns `prompt` (the rewrite, or yours when `used`
        is `kept`, with the `reason`), `output` (the model's raw text) and `scenarist`. Nothing renders."""
        from engine.film.scenarist import enhance_prompt as rewrite

        try:
            return rewrite(studio.vault, prompt, whole_number(seed, "seed", low=0, high=MAX_SEED), scenarist or None)
        except StudioError as exc:
            raise refused(exc) from None

    return [upscale, extend, retake, enhance_prompt]
