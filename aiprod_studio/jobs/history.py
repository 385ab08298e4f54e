"""Render history and job queue in one SQLite file.

WAL journal, `synchronous=FULL`, one connection shared behind a lock (the design's
single writer). The schema changes only through the numbered migrations of
`aiprod_studio/jobs/migrations.py`, applied in order when the file is opened. The `jobs` table is also the render
queue: queued → running → done | failed | cancelled | interrupted.

A row is `running` only while its owner lives (`aiprod_studio/jobs/owner.py`): the process
that claims or creates a running row records itself on it, and every reader turns a
running row whose owner is gone into `interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from aiprod_studio import choices
from aiprod_studio.choices import ACTIVE_STATUSES, RESUMABLE_STATUSES, FinalStatus, JobStatus
from aiprod_studio.jobs import migrations, search
from aiprod_studio.jobs.owner import Owner, is_alive, owner_of
from aiprod_studio.jobs.rows import CANCEL, OWNER_COLUMNS, PAUSE, RELEASED, decode, now, row_id
from aiprod_studio.recipe import Recipe
from aiprod_studio.training import TrainConfig

STATUSES = choices.JOB_STATUSES  # (ui and engine read them from here)
FINAL_STATUSES = choices.FINAL_STATUSES
MIGRATIONS = migrations.MIGRATIONS  # what `History` applies (a test shortens it to build an old database)


class History:
    """The studio's database. Safe to share between threads."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        """Apply pending migrations, each in its own write transaction.

        The version is read inside `BEGIN IMMEDIATE`, so two processes opening a new
        database at once (the UI and a CLI render) never both apply the same step.
        """
        for number, migration in enumerate(MIGRATIONS, start=1):
            with self.transaction() as db:
                if db.execute("PRAGMA user_version").fetchone()[0] < number:
                    migration(db)
                    db.execute(f"PRAGMA user_version={number}")

    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite_utils.Database]:
        """The database, to this thread alone for the block (the one connection is shared)."""
        with self._lock:
            yield self.db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction (`BEGIN IMMEDIATE`) for the block: committed at its end, rolled
        back if it raises. Other processes' writers wait for it; their readers see it whole."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # -- writes ----------------------------------------------------------------------------
    def _update(self, job_id: int, **values: Any) -> None:
        with self._lock:
            self.db.table("jobs").update(job_id, values)

    def _insert_job(self, values: dict[str, Any], status: JobStatus) -> int:
        owner = Owner.me().columns() if status == "running" else {}
        with self._lock:
            table = self.db.table("jobs")
            table.insert({**values, "status": status, "created_at": now(), **owner})
            return row_id(table.last_pk)

    def create_job(self, recipe: Recipe, status: JobStatus = "queued") -> int:
        """Insert a job for a validated recipe (a `Recipe`); returns its id. A job created
        `running` is owned by this process from the first instant."""
        return self._insert_job(
            {
                "prompt": recipe.prompt,
                "model": recipe.model,
                "model_digest": recipe.model_digest,
                "seed": recipe.seed,
                "recipe": recipe.to_json(),
                "render_key": recipe.render_key(),
                "total_steps": recipe.steps,
                "parent_id": recipe.edit.parent_job if recipe.edit is not None else None,
            },
            status,
        )

    def create_train_job(self, config: TrainConfig, status: JobStatus = "queued") -> int:
        """Insert a LoRA training run (a `TrainConfig`) into the queue; returns its id."""
        return self._insert_job(
            {
                "kind": "train",
                "prompt": f"Train LoRA {config.name}",
                "model": config.model,
                "model_digest": "",
                "seed": config.seed,
                "recipe": config.model_dump_json(),
                "total_steps": config.steps,
            },
            status,
        )

    def add_metrics(self, job_id: int, rows: list[tuple[int, float, float, float]]) -> None:
        """(step, loss, lr, seconds) rows of a training run (a resumed run rewrites its later steps)."""
        with self._lock:
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO train_metrics (job_id, step, loss, lr, seconds) VALUES (?, ?, ?, ?, ?)",
                [(job_id, *r) for r in rows],
            )

    def metrics(self, job_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self.db.query(
                    "SELECT step, loss, lr, seconds FROM train_metrics WHERE job_id = ? ORDER BY step", [job_id]
                )
            ]

    def mark_running(self, job_id: int, target: str | None = None) -> None:
        """The job starts now, owned by this process; `target` is the file it will write."""
        # (a cancel asked meanwhile stays asked: the flag is cleared only when the job is queued again)
        self._update(
            job_id, status="running", started_at=now(), step=0, error=None, target_path=target, **Owner.me().columns()
        )

    def set_progress(self, job_id: int, step: int, total: int) -> None:
        self._update(job_id, step=step, total_steps=total, heartbeat=time.time())

    def beat(self, job_id: int) -> bool:
        """The owner is alive: refresh the heartbeat. Returns True when the job should stop: a
        cancel was asked from elsewhere, or the row is no longer this process's (deleted, or
        queued again and taken by another process)."""
        me = Owner.me()
        with self._lock:
            self.db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND owner_pid = ? AND owner_host = ?",
                [time.time(), job_id, me.pid, me.host],
            )
            row = self.db.execute(
                "SELECT cancel_requested, owner_pid, owner_host, status FROM jobs WHERE id = ?", [job_id]
            ).fetchone()
        if row is None:
            return True
        cancel, pid, host, status = row
        taken = status in ACTIVE_STATUSES and (pid, host) != (me.pid, me.host)
        return bool(cancel) or taken

    def request_cancel(self, job_id: int, pause: bool = False) -> bool:
        """Ask the owner of a running job to stop (it sees this at its next heartbeat); a pause is
        a cancel the row remembers as one (`paused` on the row), so it reads so after a restart."""
        with self._lock:
            cur = self.db.execute(
                "UPDATE jobs SET cancel_requested = ? WHERE id = ? AND status = 'running'",
                [PAUSE if pause else CANCEL, job_id],
            )
            return cur.rowcount == 1

    def forget_pause(self, job_id: int) -> None:
        """A paused job is now simply cancelled (cancelled for good, or discarded)."""
        with self._lock:
            self.db.execute(
                "UPDATE jobs SET cancel_requested = ? WHERE id = ? AND cancel_requested = ?", [CANCEL, job_id, PAUSE]
            )

    def set_qa(self, job_id: int, report: dict[str, Any]) -> None:
        """The clip's QA report (technical findings, semantic scores), stored as JSON on its row."""
        self._update(job_id, qa=json.dumps(report, allow_nan=False))

    def set_recipe(self, job_id: int, recipe: Recipe) -> None:
        self._update(job_id, recipe=recipe.to_json(), model_digest=recipe.model_digest, render_key=recipe.render_key())

    def mark_done(self, job_id: int, output_path: str, wall_s: float, step_s: float | None = None) -> None:
        """Done; `step_s`, the seconds one step took (loading excluded), times the next like it."""
        columns = {"output_path": output_path, "wall_s": wall_s, "step_s": step_s}
        self._update(job_id, status="done", finished_at=now(), **columns, **RELEASED)

    def mark_failed(self, job_id: int, error: str, status: FinalStatus = "failed") -> None:
        """The job ended (by its owner, or discarded): the row no longer belongs to a process."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        self._update(job_id, status=status, finished_at=now(), error=error, **RELEASED)

    def claim(self, job_id: int) -> bool:
        """queued → running (owned by this process), only if nobody cancelled or claimed it meanwhile."""
        me = Owner.me()
        with self._lock:
            cur = self.db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, step = 0, error = NULL, cancel_requested = 0, "
                "owner_pid = ?, owner_host = ?, owner_start = ?, heartbeat = ? WHERE id = ? AND status = 'queued'",
                [now(), me.pid, me.host, me.start, time.time(), job_id],
            )
            return cur.rowcount == 1

    def cancel_if_queued(self, job_id: int, pause: bool = False) -> bool:
        reason = "paused before it started" if pause else "cancelled before it started"
        with self._lock:
            cur = self.db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = ?, cancel_requested = ? "
                "WHERE id = ? AND status = 'queued'",
                [now(), reason, PAUSE if pause else CANCEL, job_id],
            )
            return cur.rowcount == 1

    def requeue(self, job_id: int) -> bool:
        """interrupted | failed | cancelled → queued again with the same recipe."""
        marks = ",".join("?" * len(RESUMABLE_STATUSES))
        with self._lock:
            cur = self.db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, finished_at = NULL, error = NULL, "
                "output_path = NULL, wall_s = NULL, step = 0, cancel_requested = 0, target_path = NULL, "
                "owner_pid = NULL, owner_host = NULL, owner_start = NULL, heartbeat = NULL "
                f"WHERE id = ? AND status IN ({marks})",
                [job_id, *RESUMABLE_STATUSES],
            )
            return cur.rowcount == 1

    def set_model_digest(self, job_id: int, digest: str) -> None:
        self._update(job_id, model_digest=digest)

    def next_queued(self) -> int | None:
        with self._lock:
            row = self.db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
        return int(row[0]) if row else None

    def queue_position(self, job_id: int) -> int | None:
        """1 for the next job to run; None when the job is not queued."""
        with self._lock:
            row = self.db.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()
            if not row or row[0] != "queued":
                return None
            ahead = self.db.execute("SELECT count(*) FROM jobs WHERE status = 'queued' AND id <= ?", [job_id])
            return int(ahead.fetchone()[0])

    def delete(self, job_id: int) -> dict[str, Any]:
        row = self.get(job_id)
        with self._lock:
            self.db.execute("DELETE FROM jobs WHERE id = ?", [job_id])
        return row

    def recover_interrupted(self) -> list[int]:
        """Rows left `running` by a process that is gone become `interrupted`; returns their ids.

        A row whose owner still lives (a CLI render beside the studio) is left alone."""
        with self._lock:
            rows = [
                dict(r)
                for r in self.db.query(
                    "SELECT id, owner_pid, owner_host, owner_start, heartbeat FROM jobs WHERE status = 'running'"
                )
            ]
            orphaned = []
            for row in rows:
                if is_alive(row):
                    continue
                owner = owner_of(row)
                who = f" ({owner.describe()})" if owner else ""
                cur = self.db.execute(  # only if nothing changed since it was read (no new owner, no beat)
                    "UPDATE jobs SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ? AND "
                    "status = 'running' AND owner_pid IS ? AND owner_host IS ? AND owner_start IS ? "
                    "AND heartbeat IS ?",
                    [
                        now(),
                        f"the process running this job stopped{who}",
                        row["id"],
                        row["owner_pid"],
                        row["owner_host"],
                        row["owner_start"],
                        row["heartbeat"],
                    ],
                )
                if cur.rowcount:
                    orphaned.append(row["id"])
            return orphaned

    def stale_targets(self) -> list[str]:
        """The files that jobs stopped by a crash were writing (their partial files may remain)."""
        with self._lock:
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT target_path FROM jobs WHERE target_path IS NOT NULL AND status != 'running'"
                ).fetchall()
            ]

    def owner_alive(self, job_id: int) -> bool:
        """Does the process recorded on this job (running, or marked interrupted too early) still live?"""
        with self._lock:
            row = self.db.execute(
                "SELECT owner_pid, owner_host, owner_start, heartbeat FROM jobs WHERE id = ?", [job_id]
            ).fetchone()
        return bool(row) and is_alive(dict(zip(OWNER_COLUMNS, row, strict=True)))

    # -- reads -----------------------------------------------------------------------------
    def get(self, job_id: int) -> dict[str, Any]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
            if rows and rows[0]["status"] == "running" and not is_alive(rows[0]):
                self.recover_interrupted()
                rows = list(self.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
        if not rows:
            raise KeyError(job_id)
        return decode(rows[0])

    def jobs(self, limit: int = 50, offset: int = 0, **filters: Any) -> list[dict[str, Any]]:
        """Rows newest first (or best semantic score first); `filters` as `search.select` takes them:
        status, text, model, kind, findings, order."""
        sql, params = search.select(**filters)
        with self._lock:
            self.recover_interrupted()  # a reader never shows a job running whose owner is gone
            return [decode(r) for r in self.db.query(sql, [*params, limit, offset])]

    def latest_for_key(self, render_key: str, statuses: tuple[str, ...] = ("done",)) -> dict[str, Any] | None:
        """The newest job with this render key in one of `statuses` (done: whose MP4 still exists)."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = list(
                self.db.query(
                    f"SELECT * FROM jobs WHERE render_key = ? AND status IN ({marks}) ORDER BY id DESC LIMIT 20",
                    [render_key, *statuses],
                )
            )
        for row in rows:
            if row["status"] != "done" or (row["output_path"] and Path(row["output_path"]).is_file()):
                return decode(row)
        return None

    def count(self, status: str | None = None) -> int:
        with self._lock:
            if status in (None, "running", "interrupted"):
                self.recover_interrupted()
            if status:
                return int(self.db.execute("SELECT count(*) FROM jobs WHERE status = ?", [status]).fetchone()[0])
            return int(self.db.execute("SELECT count(*) FROM jobs").fetchone()[0])
