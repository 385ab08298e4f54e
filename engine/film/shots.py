"""Rendering a storyboard shot by shot, through the queue or in this thread.

Each shot becomes a recipe (the shot's prompt and seed over the storyboard's settings,
its length rounded up to a valid clip). A shot's render is *current* while a finished job
with the same render key (what decides the pixels) exists and its MP4 is still there, so
changing one shot re-renders only that shot, and identical shots are never rendered twice.
When every shot is current the film is assembled (`engine/film/assembly.py`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprod_studio.choices import ACTIVE_STATUSES
from aiprod_studio.errors import BadInput
from aiprod_studio.presets import load_presets
from aiprod_studio.recipe import Recipe
from aiprod_studio.storyboard.board import Storyboard, check_storyboard, render_frames, shot_frames

if TYPE_CHECKING:
    from engine.jobs.queue import QueueWorker
    from engine.studio import Studio

log = logging.getLogger(__name__)


@dataclass
class ShotPlan:
    index: int
    recipe: Recipe
    frames: int  # the shot's length in the film
    job: dict[str, Any] | None  # the done job that renders it, or a queued/running one

    @property
    def current(self) -> bool:
        return self.job is not None and self.job["status"] == "done"


def shot_recipe(studio: Studio, board: Storyboard, index: int) -> Recipe:
    """The recipe of shot `index`: preset < storyboard settings < the shot's own values."""
    shot = board.shots[index]
    values: dict[str, Any] = {}
    if board.preset:
        presets = {p.id: p for p in load_presets()}
        if board.preset not in presets:
            raise BadInput(f"preset {board.preset!r} does not exist (known: {', '.join(presets)})", field="preset")
        values.update({k: v for k, v in presets[board.preset].settings.items() if k not in ("num_frames", "fps")})
    values.update(
        {
            k: v
            for k, v in {
                "width": board.width,
                "height": board.height,
                "steps": board.steps,
                "guidance": board.guidance,
                "quantization": board.quantization,
            }.items()
            if v is not None
        }
    )
    frames = shot_frames(shot.duration_s, board.fps)
    values.update(
        prompt=shot.prompt,
        negative_prompt=shot.negative_prompt or values.get("negative_prompt"),
        model=board.model,
        seed=shot.seed,
        fps=board.fps,
        num_frames=render_frames(frames),
        loras=list(shot.loras),
    )
    if shot.image:  # the shot starts from its picture, prepared at the size the recipe settles on
        values["conditions"] = [{"source": shot.image, "frame": 0, "field": "image"}]
    try:
        return studio.build_recipe(values)  # (already carries the model's digest and the versions)
    except BadInput as exc:
        raise BadInput(f"shot {index + 1}: {exc}", field=exc.field) from None


def plan(studio: Studio, board: Storyboard) -> list[ShotPlan]:
    """Each shot's recipe and the job that renders it (None: it needs a render)."""
    check_storyboard(board)
    plans = []
    for i, shot in enumerate(board.shots):
        recipe = shot_recipe(studio, board, i)
        key = recipe.render_key()
        job = studio.history.latest_for_key(key, ("done",)) or studio.history.latest_for_key(key, ACTIVE_STATUSES)
        plans.append(ShotPlan(i, recipe, shot_frames(shot.duration_s, board.fps), job))
    return plans


def enqueue(worker: QueueWorker, plans: list[ShotPlan]) -> list[int]:
    """Queue a job for every shot that has none; returns the job id of every shot."""
    ids = []
    for p in plans:
        if p.job is None:
            job_id = worker.enqueue(p.recipe)
            p.job = worker.studio.history.get(job_id)
        ids.append(p.job["id"])
    return ids


def render_now(studio: Studio, plans: list[ShotPlan], progress: Callable[[int, int, int], None] | None = None) -> None:
    """Render (in this thread) every shot that is not current; `progress(shot, step, total)`."""
    for p in plans:
        if p.current:
            continue

        def on_step(step: int, total: int, index: int = p.index) -> None:
            if progress is not None:
                progress(index, step, total)

        p.job = studio.render(p.recipe, progress=on_step)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "storyboard"


def film_path(studio: Studio, board: Storyboard) -> Path:
    name = f"{board.id:04d}-{slug(board.title)}" if board.id is not None else slug(board.title)
    return studio.settings.outputs_dir / "films" / f"{name}.mp4"
