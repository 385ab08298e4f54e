"""The storyboard's shot table: a storyboard shown as rows, edited rows read back (with the form's
settings: `current`), thumbnails of rendered shots."""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from aiprod_studio.errors import StudioError
from aiprod_studio.recipe import MAX_SEED
from aiprod_studio.storyboard.board import Shot, Storyboard
from aiprod_studio.validation import format_validation_error
from engine.film import shots as sb
from engine.models.loras import parse_lora_spec
from engine.render import media
from engine.studio import Studio
from ui.components.render_form import lora_label
from ui.errors import refused

STOPPED = ("cancelled", "failed", "interrupted")  # a shot whose last job ended so is still to render
COLUMNS = ["#", "prompt", "duration (s)", "seed", "LoRAs", "start image", "status"]
IMAGE_CELL = 12  # the start image cell shows the first characters of its sha256 (empty it to drop the image)


def shot_status(studio: Studio, p: sb.ShotPlan | None) -> str:
    """A shot's status cell: rendered, its job's status, or "to render", saying why when its last
    job stopped (cancelled, failed or interrupted)."""
    if p is None:
        return "to render"
    if p.job is not None:
        return "rendered" if p.current else f"job {p.job['id']} {p.job['status']}"
    last = studio.history.latest_for_key(p.recipe.render_key(), STOPPED)
    if last is None:
        return "to render"
    return f"to render (job {last['id']} {'paused' if last.get('paused') else last['status']})"


def table_rows(studio: Studio, board: Storyboard) -> list[list[Any]]:
    rows = []
    try:
        plans = sb.plan(studio, board)
    except StudioError:
        plans = []
    for i, shot in enumerate(board.shots):
        p = plans[i] if i < len(plans) else None
        status = shot_status(studio, p)
        rows.append(
            [
                i + 1,
                shot.prompt,
                round(shot.duration_s, 3),
                shot.seed,
                ", ".join(lora_label(r) for r in shot.loras),
                shot.image[:IMAGE_CELL],
                status,
            ]
        )
    return rows


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text == "nan" else text


def _number(shot: int, column: str, value: Any, *, whole: bool, lo: float, hi: float | None = None) -> float:
    """The cell's number, or a refusal naming the shot, the column and the value as typed."""
    kind = "a whole number" if whole else "a number of seconds"
    bounds = f"from {lo:g} to {hi:g}" if hi is not None else (f"> {lo:g}" if not whole else f">= {lo:g}")
    try:
        number = float(_cell(value))
    except ValueError:
        number = math.nan
    ok = math.isfinite(number) and (number >= lo if whole else number > lo) and (hi is None or number <= hi)
    if not ok or (whole and number != int(number)):
        raise refused(f"shot {shot}: {column} must be {kind} {bounds}, got {_cell(value)!r}")
    return number


def read_table(board: Storyboard, table: Any) -> Storyboard:
    """The storyboard with the table's (possibly edited) prompts, durations, seeds and LoRAs.

    A bad cell is refused with the shot's number, the column and the value as typed."""
    values = table.values.tolist() if hasattr(table, "values") else list(table or [])
    shots = []
    for row in values:
        if not row or all(_cell(v) == "" for v in row[1:4]):
            continue
        n = len(shots) + 1
        number = _cell(row[0])
        try:
            index = int(float(number)) if number else 0
        except ValueError:
            index = 0
        base = board.shots[index - 1] if 1 <= index <= len(board.shots) else None
        prompt = _cell(row[1])
        if not prompt:
            raise refused(f"shot {n}: prompt must not be empty")
        data: dict[str, Any] = {
            "prompt": prompt,
            "duration_s": _number(n, "duration", row[2], whole=False, lo=0),
            "seed": int(_number(n, "seed", row[3], whole=True, lo=0, hi=MAX_SEED)),
        }
        try:
            specs = [x for x in _cell(row[4] if len(row) > 5 else "").split(",") if x.strip()]
            data["loras"] = [parse_lora_spec(x) for x in specs]
            if len(row) > 6 and not _cell(row[5]):  # the start image's cell emptied: the shot has none
                data["image"] = ""
            shot = base.model_copy(update=data) if base else Shot(**data)
            shots.append(Shot.model_validate(shot.model_dump()))  # a copy is not validated: check it here
        except ValidationError as exc:
            raise refused(f"shot {n}: {format_validation_error(exc)}") from None
        except StudioError as exc:
            raise refused(f"shot {n}: {exc}") from None
    return board.model_copy(update={"shots": shots})


def form_number(label: str, value: Any, default: float, lo: float, hi: float | None, *, whole: bool) -> float:
    """A storyboard setting from its field (empty: `default`), or a refusal naming the field and its range."""
    if value is None or _cell(value) == "":
        return default
    kind = "a whole number" if whole else "a number"
    bounds = f"from {lo:g} to {hi:g}" if hi is not None else f"of {lo:g} or more"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and lo <= number and (hi is None or number <= hi)) or (
        whole and number != int(number)
    ):
        raise refused(f"{label} must be {kind} {bounds}, got {_cell(value)}")
    return int(number) if whole else number


def current(
    board_json: Any,
    table_value: Any,
    title_text: str,
    model_name: str,
    preset_id: str,
    fps_v: float,
    crossfade_v: float,
) -> Storyboard:
    """The page's storyboard: the state's, with the form's settings and the table's shots."""
    if not board_json:
        raise refused("shots: split a script first")
    board = Storyboard.model_validate(board_json)
    board = board.model_copy(
        update={
            "title": title_text or board.title,
            "model": model_name or None,
            "preset": preset_id or None,
            "fps": int(form_number("fps", fps_v, 24, 1, 60, whole=True)),
            "crossfade_s": form_number("crossfade (s)", crossfade_v, 0, 0, 2, whole=False),
        }
    )
    return read_table(board, table_value)


def thumbnails(studio: Studio, board: Storyboard) -> list[tuple[Any, str]]:
    out = []
    for p in sb.plan(studio, board):
        if p.current:
            out.append((media.read_frames(p.job["output_path"])[0], f"Shot {p.index + 1}"))
    return out
