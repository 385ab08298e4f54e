"""Rendering a storyboard shot by shot and assembling the film.

Each shot becomes a recipe (the shot's prompt and seed over the storyboard's settings,
its length rounded up to a valid clip). A shot's render is *current* while a finished job
with the same render key (what decides the pixels) exists and its MP4 is still there, so
changing one shot re-renders only that shot, and identical shots are never rendered twice.
The film is the shots' clips trimmed to their exact lengths and joined in order: video
frames end to end (or crossfaded), the audio continuous, with a few milliseconds of
overlap at each join so no click is heard; one chapter per shot; the storyboard JSON in
the film's metadata.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiprod_studio.files import atomic
from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.presets import load_presets
from aiprod_studio.recipe import Recipe
from aiprod_studio.storyboard.board import Storyboard, check_storyboard, render_frames, shot_frames
from engine.render import media

log = logging.getLogger(__name__)

STORYBOARD_TAG = "description"
JOIN_SAMPLES_S = 0.004  # audio overlap at a join: long enough to hide a click, too short to hear


@dataclass
class ShotPlan:
    index: int
    recipe: Recipe
    frames: int  # the shot's length in the film
    job: dict[str, Any] | None  # the done job that renders it, or a queued/running one

    @property
    def current(self) -> bool:
        return self.job is not None and self.job["status"] == "done"


def shot_recipe(studio: Any, board: Storyboard, index: int) -> Recipe:
    """The recipe of shot `index`: preset < storyboard settings < the shot's own values."""
    shot = board.shots[index]
    values: dict[str, Any] = {}
    if board.preset:
        presets = {p.id: p for p in load_presets()}
        if board.preset not in presets:
            raise BadInput(f"preset {board.preset!r} does not exist (known: {', '.join(presets)})", field="preset")
        values.update({k: v for k, v in presets[board.preset].settings.items() if k not in ("num_frames", "fps")})
    values.update({k: v for k, v in {"width": board.width, "height": board.height, "steps": board.steps,
                                     "guidance": board.guidance, "quantization": board.quantization}.items()
                   if v is not None})
    frames = shot_frames(shot.duration_s, board.fps)
    values.update(prompt=shot.prompt, negative_prompt=shot.negative_prompt or values.get("negative_prompt"),
                  model=board.model, seed=shot.seed, fps=board.fps, num_frames=render_frames(frames),
                  loras=list(shot.loras))
    try:
        return studio.build_recipe(values)  # (already carries the model's digest and the versions)
    except BadInput as exc:
        raise BadInput(f"shot {index + 1}: {exc}", field=exc.field) from None


def plan(studio: Any, board: Storyboard) -> list[ShotPlan]:
    """Each shot's recipe and the job that renders it (None: it needs a render)."""
    check_storyboard(board)
    plans = []
    for i, shot in enumerate(board.shots):
        recipe = shot_recipe(studio, board, i)
        key = recipe.render_key()
        job = (studio.history.latest_for_key(key, ("done",))
               or studio.history.latest_for_key(key, ("queued", "running")))
        plans.append(ShotPlan(i, recipe, shot_frames(shot.duration_s, board.fps), job))
    return plans


def enqueue(worker: Any, plans: list[ShotPlan]) -> list[int]:
    """Queue a job for every shot that has none; returns the job id of every shot."""
    ids = []
    for p in plans:
        if p.job is None:
            job_id = worker.enqueue(p.recipe)
            p.job = worker.studio.history.get(job_id)
        ids.append(p.job["id"])
    return ids


def render_now(studio: Any, plans: list[ShotPlan], progress: Callable[[int, int, int], None] | None = None) -> None:
    """Render (in this thread) every shot that is not current; `progress(shot, step, total)`."""
    for p in plans:
        if p.current:
            continue

        def on_step(step: int, total: int, index: int = p.index) -> None:
            if progress is not None:
                progress(index, step, total)

        p.job = studio.render(p.recipe, progress=on_step)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "storyboard"


def film_path(studio: Any, board: Storyboard) -> Path:
    name = f"{board.id:04d}-{_slug(board.title)}" if board.id is not None else _slug(board.title)
    return studio.settings.outputs_dir / "films" / f"{name}.mp4"


def assemble(board: Storyboard, plans: list[ShotPlan], out: Path) -> dict[str, Any]:
    """Join the shots' clips into the film at `out`; returns its facts (frames, seconds, chapters)."""
    # 1. Every shot must have a finished clip of the storyboard's size.
    missing = [p.index + 1 for p in plans if not p.current]
    if missing:
        raise BadInput(f"shots {missing} have no finished render yet: render them first", field="shots")
    fps = board.fps
    fade = min(round(board.crossfade_s * fps), *(p.frames - 1 for p in plans)) if len(plans) > 1 else 0
    total = sum(p.frames for p in plans) - fade * (len(plans) - 1)
    video: np.ndarray | None = None
    audio: np.ndarray | None = None
    rate = 0
    chapters = []
    pos = 0
    for i, p in enumerate(plans):
        path = Path(p.job["output_path"])
        frames = media.read_frames(path)
        if len(frames) < p.frames:
            raise IntegrityError(f"shot {i + 1}: {path} has {len(frames)} frames, the shot needs {p.frames}")
        frames = frames[:p.frames]
        if video is None:
            video = np.empty((total, *frames.shape[1:]), np.uint8)
        elif frames.shape[1:] != video.shape[1:]:
            raise BadInput(f"shot {i + 1} is {frames.shape[2]}×{frames.shape[1]}, the film "
                           f"{video.shape[2]}×{video.shape[1]}: give every shot the same size", field="width")
        start = pos - (fade if i else 0)
        if i and fade:
            w = np.linspace(0, 1, fade + 2, dtype=np.float32)[1:-1, None, None, None]
            video[start:pos] = (video[start:pos] * (1 - w) + frames[:fade] * w + 0.5).astype(np.uint8)
            video[pos:start + p.frames] = frames[fade:]
        else:
            video[start:start + p.frames] = frames
        chapters.append((f"Shot {i + 1}: {board.shots[i].prompt[:60]}", start, start + p.frames))
        pos = start + p.frames

        # 2. Audio: the same cut points, in samples, with a short overlap-add at each join.
        clip_audio, clip_rate = media.read_audio(path)
        if clip_rate:
            if audio is None:
                rate = clip_rate
                audio = np.zeros((clip_audio.shape[0], round(total / fps * rate)), np.float32)
            a0, a1 = round(start / fps * rate), round(pos / fps * rate)
            seg = np.zeros((audio.shape[0], a1 - a0 + round(JOIN_SAMPLES_S * rate)), np.float32)
            got = clip_audio[:audio.shape[0], :seg.shape[1]]
            seg[:got.shape[0], :got.shape[1]] = got
            overlap = round(fade / fps * rate) if i else 0
            join = max(overlap, round(JOIN_SAMPLES_S * rate)) if i else 0
            if join:
                ramp = np.sin(np.linspace(0, np.pi / 2, join, dtype=np.float32)) ** 2  # equal-power fade in
                seg[:, :join] *= ramp
                audio[:, a0:a0 + join] *= (1 - ramp)[: audio[:, a0:a0 + join].shape[1]]
                audio[:, a0:a0 + join] += seg[:, :join][:, : audio[:, a0:a0 + join].shape[1]]
                audio[:, a0 + join:a1] = seg[:, join:a1 - a0]
            else:
                audio[:, a0:a1] = seg[:, :a1 - a0]
            if i + 1 < len(plans):  # let the next shot fade in over this one's continuation
                tail = min(seg.shape[1] - (a1 - a0), audio.shape[1] - a1)
                audio[:, a1:a1 + tail] = seg[:, a1 - a0:a1 - a0 + tail]
    assert video is not None and pos == total

    # 3. Encode, with the storyboard (and the job behind each shot) in the metadata.
    record = board.model_dump(mode="json") | {"shot_jobs": [p.job["id"] for p in plans], "fps": fps}
    media.encode_mp4(out, video, fps, audio, rate or None,
                     metadata={"title": board.title, STORYBOARD_TAG: json.dumps(record, ensure_ascii=False)},
                     chapters=chapters)
    log.info("film %s: %d shots, %d frames (%.2fs)", out, len(plans), total, total / fps)
    return {"path": str(out), "frames": total, "seconds": total / fps, "shots": len(plans),
            "shot_jobs": record["shot_jobs"], "chapters": [{"title": t, "start_frame": a, "end_frame": b}
                                                           for t, a, b in chapters]}


def _timecode(frame: int, fps: int) -> str:
    s, f = divmod(frame, fps)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def export(board: Storyboard, plans: list[ShotPlan], film: Path, folder: Path | str) -> Path:
    """`<folder>/<title>/`: the film, every shot's clip, the storyboard JSON and a CMX 3600 EDL."""
    dest = Path(folder).expanduser() / _slug(board.title)
    if dest.exists():
        raise BadInput(f"{dest} already exists; choose another folder", field="folder")
    if not film.is_file():
        raise BadInput("the film has not been assembled yet: render the storyboard first", field="film")
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
            shots.append({"shot": p.index + 1, "clip": f"clips/{name}", "job": p.job["id"], "frames": p.frames,
                          "start_frame": record, "recipe": p.recipe.model_dump(mode="json"),
                          "prompt": board.shots[p.index].prompt})
            record += p.frames
        (tmp / "film.edl").write_text("\n".join(edl), encoding="utf-8")
        (tmp / "storyboard.json").write_text(json.dumps(board.model_dump(mode="json") | {"shots_rendered": shots},
                                                        ensure_ascii=False, indent=1), encoding="utf-8")
        atomic.fsync_tree(tmp)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


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


def render_queued(studio: Any, worker: Any, board: Storyboard, out: Path | None = None,
                  only: int | None = None, poll_s: float = 0.2):
    """Queue the shots that need it (all, or shot `only`), follow them, then assemble the film.

    Yields `ShotsQueued`, `ShotProgress`… and finally `FilmReady` — or only `ShotsQueued`
    and progress when `only` is given and other shots still miss a render. Raises
    `Cancelled` when a shot job was cancelled, `StudioError` when one failed.
    """
    from aiprod_studio.errors import Cancelled, StudioError

    plans = plan(studio, board)
    chosen = plans if only is None else [plans[only - 1]]
    ids = enqueue(worker, chosen)
    yield ShotsQueued(ids, [p.index + 1 for p in chosen if p.job["status"] != "done"])
    for p in chosen:
        last = None
        while True:
            row = worker.status(p.job["id"])
            if row["status"] == "done":
                p.job = row
                break
            if row["status"] in ("failed", "cancelled", "interrupted"):
                err = Cancelled if row["status"] != "failed" else StudioError
                raise err(f"shot {p.index + 1} (job {row['id']}) {row['status']}: {row.get('error') or ''}".strip())
            snapshot = (row["step"], row["status"])
            if snapshot != last:
                last = snapshot
                yield ShotProgress(p.index + 1, row["step"] or 0, row["total_steps"] or 0,
                                   sum(q.current for q in plans), len(plans))
            time.sleep(poll_s)
    if all(p.current for p in plans):
        yield FilmReady(assemble(board, plans, out or film_path(studio, board)))
