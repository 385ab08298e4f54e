"""Storyboards in the studio's database: the `storyboards` and `shots` tables (migration 2).

A storyboard row holds the title, the script and the shared settings; its shots are rows
in order (`position`), each with its data as JSON. (The shots table's `job_id` column,
from the first schema, is no longer written or read: a shot finds its render by its
recipe's render key.)
"""

from __future__ import annotations

import json
from typing import Any

from aiprod_studio.errors import BadInput
from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.rows import now, row_id
from aiprod_studio.numbers import whole_number
from aiprod_studio.storyboard.board import MAX_ID, Shot, Storyboard, check_storyboard

_SETTINGS_EXCLUDE = {"id", "title", "script", "shots"}


def _check_id(board_id: object) -> int:
    return whole_number(board_id, "id", high=MAX_ID, strict=True, what="storyboard id")


def _missing(board_id: int) -> BadInput:
    return BadInput(
        f"storyboard id {board_id} does not exist; remove the id to save it as a new storyboard", field="id"
    )


class StoryboardStore:
    def __init__(self, history: History):
        self.history = history

    def save(self, board: Storyboard) -> Storyboard:
        """Insert or update the storyboard and replace its shots; returns it with its id.

        A storyboard with an id that is not in the database is refused (`BadInput`, field `id`).
        """
        check_storyboard(board)
        if board.id is not None:
            _check_id(board.id)
        settings = json.dumps(board.model_dump(mode="json", exclude=_SETTINGS_EXCLUDE), sort_keys=True)
        with self.history.transaction() as db:
            if board.id is None:
                cur = db.execute(
                    "INSERT INTO storyboards (title, script, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [board.title, board.script, settings, now(), now()],
                )
                board = board.model_copy(update={"id": row_id(cur.lastrowid)})
            else:
                cur = db.execute(
                    "UPDATE storyboards SET title = ?, script = ?, settings = ?, updated_at = ? WHERE id = ?",
                    [board.title, board.script, settings, now(), board.id],
                )
                if cur.rowcount != 1:
                    raise _missing(board.id)
            db.execute("DELETE FROM shots WHERE storyboard_id = ?", [board.id])
            for position, shot in enumerate(board.shots):
                db.execute(
                    "INSERT INTO shots (storyboard_id, position, data) VALUES (?, ?, ?)",
                    [board.id, position, shot.model_dump_json()],
                )
        return board

    def check_exists(self, board_id: int) -> None:
        """`BadInput` (field `id`) unless a storyboard with this id is saved."""
        _check_id(board_id)
        with self.history.locked() as db:
            if db.execute("SELECT 1 FROM storyboards WHERE id = ?", [board_id]).fetchone() is None:
                raise _missing(board_id)

    def load(self, board_id: int) -> Storyboard:
        _check_id(board_id)
        with self.history.locked() as db:
            row = db.execute("SELECT title, script, settings FROM storyboards WHERE id = ?", [board_id]).fetchone()
            if row is None:
                raise BadInput(f"storyboard id {board_id} does not exist", field="id")
            shots = [
                Shot.model_validate_json(r[0])
                for r in db.execute(
                    "SELECT data FROM shots WHERE storyboard_id = ? ORDER BY position", [board_id]
                ).fetchall()
            ]
        return Storyboard(id=board_id, title=row[0], script=row[1] or "", shots=shots, **json.loads(row[2] or "{}"))

    def list(self) -> list[dict[str, Any]]:
        with self.history.locked() as db:
            rows = db.execute(
                "SELECT s.id, s.title, s.updated_at, s.film_path, count(h.id) FROM storyboards s "
                "LEFT JOIN shots h ON h.storyboard_id = s.id GROUP BY s.id ORDER BY s.updated_at DESC"
            ).fetchall()
        return [{"id": r[0], "title": r[1], "updated_at": r[2], "film_path": r[3], "shots": r[4]} for r in rows]

    def set_film(self, board_id: int, path: str) -> None:
        with self.history.locked() as db:
            db.execute("UPDATE storyboards SET film_path = ?, updated_at = ? WHERE id = ?", [path, now(), board_id])

    def delete(self, board_id: int) -> None:
        with self.history.locked() as db:
            db.execute("DELETE FROM shots WHERE storyboard_id = ?", [board_id])
            db.execute("DELETE FROM storyboards WHERE id = ?", [board_id])
