"""The history's schema: numbered migrations, applied in order by `History` and remembered
in `PRAGMA user_version`. A schema change is a new migration at the end; a migration that
shipped is never edited.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import recipe_from_json


def _m001_jobs(db: sqlite_utils.Database) -> None:
    db.table("jobs").create(
        {
            "id": int,
            "status": str,
            "prompt": str,
            "model": str,
            "model_digest": str,
            "seed": int,
            "recipe": str,
            "created_at": str,
            "started_at": str,
            "finished_at": str,
            "output_path": str,
            "error": str,
            "wall_s": float,
            "step": int,
            "total_steps": int,
        },
        pk="id",
        not_null={"status", "recipe", "created_at"},
        defaults={"status": "queued", "step": 0, "total_steps": 0},
    )
    db.table("jobs").create_index(["status"])
    db.table("jobs").create_index(["created_at"])


def _m002_storyboards(db: sqlite_utils.Database) -> None:
    """Jobs learn their render key (what decides the pixels); storyboards and their shots."""
    db.table("jobs").add_column("render_key", str)
    for job_id, text in db.execute("SELECT id, recipe FROM jobs").fetchall():
        try:
            key = recipe_from_json(text).render_key()
        except Exception:  # noqa: BLE001 - an old unreadable recipe simply has no key
            continue
        db.execute("UPDATE jobs SET render_key = ? WHERE id = ?", [key, job_id])
    db.table("jobs").create_index(["render_key", "status"])
    db.table("storyboards").create(
        {
            "id": int,
            "title": str,
            "script": str,
            "settings": str,
            "film_path": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"title", "created_at"},
    )
    db.table("shots").create(
        {"id": int, "storyboard_id": int, "position": int, "data": str, "job_id": int},
        pk="id",
        not_null={"storyboard_id", "position", "data"},
        foreign_keys=[("storyboard_id", "storyboards", "id")],
    )
    db.execute("CREATE INDEX idx_shots_board ON shots (storyboard_id, position)")


def _m003_training(db: sqlite_utils.Database) -> None:
    """Jobs get a kind (`render` or `train`: a LoRA training run shares the queue and the GPU);
    training runs record their loss curve."""
    db.table("jobs").add_column("kind", str, not_null_default="render")
    db.table("train_metrics").create(
        {"job_id": int, "step": int, "loss": float, "lr": float, "seconds": float},
        pk=("job_id", "step"),
        foreign_keys=[("job_id", "jobs", "id")],
    )


def _m004_owners(db: sqlite_utils.Database) -> None:
    """A running job records its owner (process, host, start token, heartbeat), the file it
    is writing (so a crash's partial file can be found), and a cancel asked from elsewhere."""
    table = db.table("jobs")
    table.add_column("owner_pid", int)
    table.add_column("owner_host", str)
    table.add_column("owner_start", str)
    table.add_column("heartbeat", float)
    table.add_column("target_path", str)
    table.add_column("cancel_requested", int, not_null_default=0)


def _m005_render_keys(db: sqlite_utils.Database) -> None:
    """Render keys computed again, now that recipes no longer carry the retired `scheduler` field
    (always `{}`): a storyboard still finds the shots it rendered before the upgrade. A recipe
    that no longer loads keeps its old key, which simply never matches again."""
    for job_id, text in db.execute("SELECT id, recipe FROM jobs WHERE render_key IS NOT NULL").fetchall():
        try:
            key = recipe_from_json(text).render_key()
        except BadInput:
            continue
        db.execute("UPDATE jobs SET render_key = ? WHERE id = ?", [key, job_id])


def _m006_step_times(db: sqlite_utils.Database) -> None:
    """A finished job records the seconds one step took, loading excluded: the time left of the
    next job of the same model and size is estimated from this machine's own past jobs."""
    db.table("jobs").add_column("step_s", float)


def _m007_qa(db: sqlite_utils.Database) -> None:
    """A finished clip carries its QA report (technical findings, semantic scores) as JSON."""
    db.table("jobs").add_column("qa", str)


def _m008_takes(db: sqlite_utils.Database) -> None:
    """The takes of one best-of-N render share `take_of`: the id of the group's first job."""
    db.table("jobs").add_column("take_of", int)


def _m009_parents(db: sqlite_utils.Database) -> None:
    """An edited clip (an extension) names the job of the clip it was made from: `parent_id`."""
    db.table("jobs").add_column("parent_id", int)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_jobs,
    _m002_storyboards,
    _m003_training,
    _m004_owners,
    _m005_render_keys,
    _m006_step_times,
    _m007_qa,
    _m008_takes,
    _m009_parents,
]
