"""Best of N rendered now (the command line's `render --takes N`): each take in turn, in this
process, then grouped and ranked like the queue's takes (`aiprod_studio/jobs/takes.py`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from aiprod_studio.errors import StudioError
from aiprod_studio.files.atomic import replace_durably
from aiprod_studio.files.partials import temp_path_for
from aiprod_studio.jobs import takes as best_of
from aiprod_studio.recipe import Recipe
from engine.render.clip import ProgressFn


def render_takes(
    studio: Any, recipe: Recipe, count: int, progress: ProgressFn | None = None, retakes: int = 0
) -> list[dict[str, Any]]:
    """Render `count` takes of `recipe` (its seed, then the next ones), then, while none passed its
    technical check, up to `retakes` more seeds; returns them ranked, best first."""
    count, retakes = best_of.check_takes(count), best_of.check_retakes(retakes)
    seeds = iter(best_of.take_seeds(recipe.seed, count + retakes))
    ids: list[int] = []
    for n, seed in enumerate(seeds):
        if n >= count and any(best_of.passed(studio.history.get(i)) for i in ids):
            break  # a take passed: no retake needed
        take = studio.stamp(recipe.model_copy(update={"seed": seed}))
        ids.append(studio.history.create_job(take, status="running"))  # as Studio.render does
        best_of.group(studio.history, ids)  # grouped as they come: an interruption keeps the group
        try:
            studio.run_job(ids[-1], progress=progress)
        except StudioError:  # this take failed (its row says why): the others still count
            continue
    return best_of.takes_of(studio.history, ids[0])


def copy_best(best: dict[str, Any], out: Path) -> Path:
    """The best take's clip also at `out` (complete or not at all)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    try:
        shutil.copyfile(best["output_path"], tmp)
        replace_durably(tmp, out)
    finally:
        if tmp.exists():
            os.unlink(tmp)
    return out
