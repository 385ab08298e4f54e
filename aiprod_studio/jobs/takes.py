"""Best of N: several takes of one recipe, one seed each, grouped and ranked.

The takes of a group share `take_of`, the id of the group's first job. A take whose file passed
its technical check comes before one that failed it; then they are ranked by the semantic
prompt match of their QA report (best first), then by fewer errors and warnings; a take that
did not finish comes last. The best finished take is marked `best`; the
others stay in the history, browsable like any clip.
"""

from __future__ import annotations

from typing import Any

from aiprod_studio.jobs.history import History
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_SEED

MAX_TAKES = 8  # more is a batch, not a choice: queue them as separate jobs
MAX_RETAKES = 4  # extra seeds tried, one at a time, when no take passes its technical check


def check_takes(value: object) -> int:
    return whole_number(value, "takes", low=1, high=MAX_TAKES)


def check_retakes(value: object) -> int:
    return whole_number(value, "retakes", low=0, high=MAX_RETAKES)


def passed(row: dict[str, Any]) -> bool:
    """A finished take whose file passed its technical check."""
    return row["status"] == "done" and (row.get("qa") or {}).get("ok") is True


def next_seed(rows: list[dict[str, Any]]) -> int:
    """The seed of one more take of a group: the one after the largest so far."""
    return (max(int(r["seed"]) for r in rows) + 1) % (MAX_SEED + 1)


def take_seeds(seed: int, takes: int) -> list[int]:
    """The seeds of `takes` takes: the recipe's, then the next ones (wrapping past the largest)."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(takes)]


def group(history: History, job_ids: list[int]) -> None:
    """Mark `job_ids` as the takes of one group, named after the first."""
    if len(job_ids) < 2:
        return
    marks = ",".join("?" * len(job_ids))
    with history.locked() as db:
        db.execute(f"UPDATE jobs SET take_of = ? WHERE id IN ({marks})", [job_ids[0], *job_ids])


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    qa = row.get("qa") or {}
    score = (qa.get("semantic") or {}).get("prompt_mean")
    scored = score if isinstance(score, int | float) else -2.0  # below any cosine
    failed = qa.get("ok") is not True  # a take whose file failed its technical check never wins on score
    return (row["status"] != "done", failed, -scored, qa.get("errors", 99), qa.get("warnings", 99), row["id"])


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The takes best first, each with its `rank` and whether it is the `best`."""
    out = sorted(rows, key=_key)
    return [r | {"rank": i + 1, "best": i == 0 and r["status"] == "done"} for i, r in enumerate(out)]


def takes_of(history: History, job_id: int) -> list[dict[str, Any]]:
    """The ranked takes of the group `job_id` belongs to (just that job when it is alone)."""
    row = history.get(job_id)
    group_id = row.get("take_of")
    if group_id is None:
        return ranked([row])
    with history.locked() as db:
        ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE take_of = ? ORDER BY id", [group_id]).fetchall()]
    return ranked([history.get(i) for i in ids])


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """One take as a ranking lists it."""
    qa = row.get("qa") or {}
    return {
        "id": row["id"],
        "seed": row["seed"],
        "status": row["status"],
        "rank": row.get("rank"),
        "best": row.get("best", False),
        "prompt_match": (qa.get("semantic") or {}).get("prompt_mean"),
        "errors": qa.get("errors"),
        "warnings": qa.get("warnings"),
        "output_path": row.get("output_path"),
    }


def take_line(take: dict[str, Any]) -> str:
    score = f"prompt match {take['prompt_match']:.3f}" if take["prompt_match"] is not None else "not scored"
    found = f"{take['errors']} errors, {take['warnings']} warnings" if take["errors"] is not None else "not checked"
    mark = " ← best" if take["best"] else ""
    return f"  take {take['rank']}: job {take['id']}, seed {take['seed']}, {take['status']}, {score}, {found}{mark}"
