"""The storyboard's shot table: a storyboard shown as rows, edited rows read back (with the form's
settings: `current`), thumbnails of rendered shots."""

from __future__ import annotations

from typing import Any

from aiprod_studio.errors import StudioError
from aiprod_studio.storyboard.board import Shot, Storyboard
from engine.film import shots as sb
from engine.models.loras import parse_lora_spec
from engine.render import media
from engine.studio import Studio
from ui.components.render_form import lora_label
from ui.errors import refused

COLUMNS = ["#", "prompt", "duration (s)", "seed", "LoRAs", "status"]


def table_rows(studio: Studio, board: Storyboard) -> list[list[Any]]:
    rows = []
    try:
        plans = sb.plan(studio, board)
    except StudioError:
        plans = []
    for i, shot in enumerate(board.shots):
        p = plans[i] if i < len(plans) else None
        status = (
            "rendered" if p and p.current else f"job {p.job['id']} {p.job['status']}" if p and p.job else "to render"
        )
        rows.append(
            [
                i + 1,
                shot.prompt,
                round(shot.duration_s, 3),
                shot.seed,
                ", ".join(lora_label(r) for r in shot.loras),
                status,
            ]
        )
    return rows


def read_table(board: Storyboard, table: Any) -> Storyboard:
    """The storyboard with the table's (possibly edited) prompts, durations and seeds."""
    values = table.values.tolist() if hasattr(table, "values") else list(table or [])
    shots = []
    for row in values:
        if not row or all(v in ("", None) for v in row[1:4]):
            continue
        try:
            number = int(float(row[0])) if str(row[0]).strip() not in ("", "nan") else 0
            base = board.shots[number - 1] if 1 <= number <= len(board.shots) else None
            specs = [x for x in str(row[4] if len(row) > 5 and row[4] is not None else "").split(",") if x.strip()]
            data = {
                "prompt": str(row[1]),
                "duration_s": float(row[2]),
                "seed": int(float(row[3])),
                "loras": [parse_lora_spec(x) for x in specs],
            }
            shot = base.model_copy(update=data) if base else Shot(**data)
            shots.append(Shot.model_validate(shot.model_dump()))  # a copy is not validated: check it here
        except (ValueError, TypeError, OverflowError, StudioError) as exc:
            raise refused(f"shot {len(shots) + 1}: {exc}") from None
    return board.model_copy(update={"shots": shots})


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
            "fps": int(fps_v or 24),
            "crossfade_s": float(crossfade_v or 0),
        }
    )
    return read_table(board, table_value)


def thumbnails(studio: Studio, board: Storyboard) -> list[tuple[Any, str]]:
    out = []
    for p in sb.plan(studio, board):
        if p.current:
            out.append((media.read_frames(p.job["output_path"])[0], f"Shot {p.index + 1}"))
    return out
