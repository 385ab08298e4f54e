"""A job row as the studio reads it: decoded JSON columns, derived flags, and the values
`History` writes when a job changes hands."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def now() -> str:
    """The time a row records (created, started, finished, updated): UTC, ISO 8601, milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


OWNER_COLUMNS = ("owner_pid", "owner_host", "owner_start", "heartbeat")
# an ended job has no owner, and no partial file of its own left (the writer removed it on failure)
RELEASED = {"owner_pid": None, "owner_host": None, "owner_start": None, "target_path": None}
CANCEL, PAUSE = 1, 2  # `cancel_requested`: how the stop was asked (a paused run is cancelled, resumable)


def row_id(value: object) -> int:
    """The id SQLite gave the row just inserted (sqlite-utils and sqlite3 type it as optional)."""
    if not isinstance(value, int):
        raise RuntimeError(f"an insert returned no row id (got {value!r})")
    return value


def decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["recipe"] = json.loads(row["recipe"]) if row.get("recipe") else None
    row["qa"] = json.loads(row["qa"]) if row.get("qa") else None
    row["paused"] = row["status"] == "cancelled" and row.get("cancel_requested") == PAUSE
    return row


def qa_summary(qa: dict[str, Any] | None) -> str:
    """A clip's QA in a few characters: clean or its findings, and its prompt match when scored."""
    if not qa:
        return "-"
    verdict = "ok" if qa.get("ok") and not qa.get("warnings") else f"{qa.get('errors', 0)}E {qa.get('warnings', 0)}W"
    score = (qa.get("semantic") or {}).get("prompt_mean")
    return f"{verdict} {score:+.3f}" if isinstance(score, float) else verdict
