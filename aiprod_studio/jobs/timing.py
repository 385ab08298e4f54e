"""How long a step takes on this machine: the basis of a job's "about N s left" before it has
timed enough steps of its own.

A finished job records the seconds one denoising step took, model loading excluded
(`jobs.step_s`). A new job of the same model (digest), size, length, quantization and offload
is estimated from the median of the last few of those, because the same work on the same
machine takes about the same time; a job unlike any before says "estimating" until its own
steps give a basis.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from aiprod_studio.jobs.history import History

SAMPLE = 5  # past jobs in the median: recent enough to follow a driver or setting change
ALIKE = ("width", "height", "num_frames", "quantization", "offload", "fast")  # what a step's cost depends on
UNSET = {"fast": "off"}  # what a recipe written before a field existed meant by leaving it out


def typical_step_s(history: History, row: dict[str, Any]) -> float | None:
    """The median seconds per step of the last finished jobs like `row` (a render), or None."""
    recipe = row.get("recipe") or {}
    if row.get("kind", "render") != "render" or not row.get("model_digest") or not recipe:
        return None
    where = " AND ".join(f"coalesce(json_extract(recipe, '$.{name}'), ?) IS ?" for name in ALIKE)
    with history.locked() as db:
        found = db.execute(
            "SELECT step_s FROM jobs WHERE kind = 'render' AND status = 'done' AND step_s > 0 "
            f"AND model_digest = ? AND id != ? AND {where} ORDER BY id DESC LIMIT ?",
            [
                row["model_digest"],
                row.get("id") or 0,
                *(v for name in ALIKE for v in (UNSET.get(name), recipe.get(name, UNSET.get(name)))),
                SAMPLE,
            ],
        ).fetchall()
    return statistics.median(r[0] for r in found) if found else None


class StepClock:
    """The seconds per step of one running job, measured from the first step it finished (the
    steps before carry the loading time)."""

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if step >= 1 and self._first is None:
            self._first = (step, now)
        elif self._first is not None and step > self._first[0]:
            self._last = (step, now)

    @property
    def step_s(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        return (self._last[1] - self._first[1]) / (self._last[0] - self._first[0])
