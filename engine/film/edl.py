"""Handing a film to an editor: the film, every shot's clip, the storyboard and a CMX 3600 EDL."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from aiprod_studio.errors import BadInput
from aiprod_studio.files import atomic
from aiprod_studio.files.folders import writable_folder
from aiprod_studio.storyboard.board import Storyboard
from engine.film.shots import ShotPlan, slug


def _timecode(frame: int, fps: int) -> str:
    s, f = divmod(frame, fps)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def export(board: Storyboard, plans: list[ShotPlan], film: Path, folder: Path | str) -> Path:
    """`<folder>/<title>/`: the film, every shot's clip, the storyboard JSON and a CMX 3600 EDL."""
    if not film.is_file():
        raise BadInput("the film has not been assembled yet: render the storyboard first", field="film")
    dest = writable_folder(folder, "folder") / slug(board.title)
    if dest.exists():
        raise BadInput(f"{dest} already exists; choose another folder", field="folder")
    tmp = dest.with_name(f".{dest.name}.exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "clips").mkdir(parents=True)
    try:
        shutil.copy2(film, tmp / "film.mp4")
        edl = [f"TITLE: {board.title[:70]}", "FCM: NON-DROP FRAME", ""]
        shots = []
        record = 0
        for p in plans:
            name = f"shot-{p.index + 1:02d}.mp4"
            shutil.copy2(p.job["output_path"], tmp / "clips" / name)
            n = f"{p.index + 1:03d}"
            src_in, src_out = _timecode(0, board.fps), _timecode(p.frames, board.fps)
            rec_in, rec_out = _timecode(record, board.fps), _timecode(record + p.frames, board.fps)
            for track in ("V", "A"):
                edl.append(f"{n}  SHOT{p.index + 1:02d}   {track}     C        {src_in} {src_out} {rec_in} {rec_out}")
            edl.append(f"* FROM CLIP NAME: clips/{name}")
            edl.append("")
            shots.append(
                {
                    "shot": p.index + 1,
                    "clip": f"clips/{name}",
                    "job": p.job["id"],
                    "frames": p.frames,
                    "start_frame": record,
                    "recipe": p.recipe.model_dump(mode="json"),
                    "prompt": board.shots[p.index].prompt,
                }
            )
            record += p.frames
        (tmp / "film.edl").write_text("\n".join(edl), encoding="utf-8")
        (tmp / "storyboard.json").write_text(
            json.dumps(board.model_dump(mode="json") | {"shots_rendered": shots}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
        atomic.fsync_tree(tmp)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
