"""A storyboard through the queue: its shots queued, followed, and the film assembled at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprod_studio.errors import Cancelled, StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.storyboard.board import Storyboard
from engine.film.assembly import assemble
from engine.film.shots import enqueue, film_path, plan
from engine.jobs.events import watch
from engine.qa.gate import check_film

if TYPE_CHECKING:
    from engine.jobs.queue import QueueWorker
    from engine.studio import Studio


@dataclass(frozen=True)
class ShotsQueued:
    job_ids: list[int]
    to_render: list[int]  # shot numbers (1-based) that render now


@dataclass(frozen=True)
class ShotProgress:
    shot: int  # 1-based
    step: int
    total: int
    done: int  # shots finished so far
    shots: int


@dataclass(frozen=True)
class FilmReady:
    info: dict[str, Any]


def render_queued(
    studio: Studio,
    worker: QueueWorker,
    board: Storyboard,
    out: Path | None = None,
    only: int | None = None,
    poll_s: float = 0.2,
) -> Iterator[ShotsQueued | ShotProgress | FilmReady]:
    """Queue the shots that need it (all, or shot `only`), follow them, then assemble the film.

    Yields `ShotsQueued`, `ShotProgress`… and finally `FilmReady` — or only `ShotsQueued`
    and progress when `only` is given and other shots still miss a render. Raises
    `Cancelled` when a shot job was cancelled, `StudioError` when one failed.
    """
    plans = plan(studio, board)
    chosen = plans if only is None else [plans[only - 1]]
    ids = enqueue(worker, chosen)
    yield ShotsQueued(ids, [p.index + 1 for p in chosen if p.job["status"] != "done"])
    for p in chosen:
        job_id = p.job["id"]
        for row in watch(
            lambda job_id=job_id: worker.status(job_id), key=lambda r: (r["step"], r["status"]), poll_s=poll_s
        ):
            if row["status"] == "done":
                p.job = row
            elif row["status"] in FINAL_STATUSES:
                err = Cancelled if row["status"] != "failed" else StudioError
                raise err(f"shot {p.index + 1} (job {row['id']}) {row['status']}: {row.get('error') or ''}".strip())
            else:
                yield ShotProgress(
                    p.index + 1, row["step"] or 0, row["total_steps"] or 0, sum(q.current for q in plans), len(plans)
                )
    if all(p.current for p in plans):
        info = assemble(board, plans, out or film_path(studio, board))
        info["qa"] = check_film(studio.qa, info, plans[0].recipe if plans else None)
        yield FilmReady(info)
