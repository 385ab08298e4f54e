"""Assembling the film: the shots' clips joined into one MP4 with continuous sound.

The clips are trimmed to their shots' exact lengths and joined in order: video frames end
to end (or crossfaded), the audio continuous, with a few milliseconds of overlap at each
join so no click is heard; one chapter per shot; the storyboard JSON in the film's metadata.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.storyboard.board import Storyboard
from engine.film.shots import ShotPlan
from engine.render import media

log = logging.getLogger(__name__)

STORYBOARD_TAG = media.STORYBOARD_TAG
JOIN_SAMPLES_S = 0.004  # audio overlap at a join: long enough to hide a click, too short to hear


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
        frames = frames[: p.frames]
        if video is None:
            video = np.empty((total, *frames.shape[1:]), np.uint8)
        elif frames.shape[1:] != video.shape[1:]:
            raise BadInput(
                f"shot {i + 1} is {frames.shape[2]}×{frames.shape[1]}, the film "
                f"{video.shape[2]}×{video.shape[1]}: give every shot the same size",
                field="width",
            )
        start = pos - (fade if i else 0)
        if i and fade:
            w = np.linspace(0, 1, fade + 2, dtype=np.float32)[1:-1, None, None, None]
            video[start:pos] = (video[start:pos] * (1 - w) + frames[:fade] * w + 0.5).astype(np.uint8)
            video[pos : start + p.frames] = frames[fade:]
        else:
            video[start : start + p.frames] = frames
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
            got = clip_audio[: audio.shape[0], : seg.shape[1]]
            seg[: got.shape[0], : got.shape[1]] = got
            overlap = round(fade / fps * rate) if i else 0
            join = max(overlap, round(JOIN_SAMPLES_S * rate)) if i else 0
            if join:
                ramp = np.sin(np.linspace(0, np.pi / 2, join, dtype=np.float32)) ** 2  # equal-power fade in
                seg[:, :join] *= ramp
                audio[:, a0 : a0 + join] *= (1 - ramp)[: audio[:, a0 : a0 + join].shape[1]]
                audio[:, a0 : a0 + join] += seg[:, :join][:, : audio[:, a0 : a0 + join].shape[1]]
                audio[:, a0 + join : a1] = seg[:, join : a1 - a0]
            else:
                audio[:, a0:a1] = seg[:, : a1 - a0]
            if i + 1 < len(plans):  # let the next shot fade in over this one's continuation
                tail = min(seg.shape[1] - (a1 - a0), audio.shape[1] - a1)
                audio[:, a1 : a1 + tail] = seg[:, a1 - a0 : a1 - a0 + tail]
    assert video is not None and pos == total

    # 3. Encode, with the storyboard (and the job behind each shot) in the metadata.
    record = board.model_dump(mode="json") | {"shot_jobs": [p.job["id"] for p in plans], "fps": fps}
    media.encode_mp4(
        out,
        video,
        fps,
        audio,
        rate or None,
        metadata={"title": board.title, STORYBOARD_TAG: json.dumps(record, ensure_ascii=False)},
        chapters=chapters,
    )
    log.info("film %s: %d shots, %d frames (%.2fs)", out, len(plans), total, total / fps)
    return {
        "path": str(out),
        "frames": total,
        "seconds": total / fps,
        "shots": len(plans),
        "shot_jobs": record["shot_jobs"],
        "chapters": [{"title": t, "start_frame": a, "end_frame": b} for t, a, b in chapters],
    }
