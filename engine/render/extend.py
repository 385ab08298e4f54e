"""Extend a finished clip: N more frames rendered from its last ones, appended to it.

The new part is one render through the condition pipeline, `context + frames` long, that
starts held to the parent's last `context` frames (decoded from its MP4) as one video
condition; its first `context` frames are dropped and the rest appended to the parent's
own video packets (`engine.render.splice`), with the sound continued from the same moment.
The recipe says all of it (`edit`), so the result re-renders to the same bytes.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import av
import numpy as np

from aiprod_studio.edits import MAX_EXTEND_FRAMES, Edit
from aiprod_studio.errors import BadInput
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_SEED, Recipe
from aiprod_studio.vault.manifest import sha256_file
from engine.models.limits import read_grid
from engine.render import media
from engine.render.splice import joined_audio

CONTEXT_LATENT_FRAMES = 2  # the new part continues from the parent's last two latent frames (and one frame)
# what an extension does not take from its parent's recipe (its own size, length and edit are set here)
NOT_INHERITED = ("model_digest", "versions", "upsampler", "upsampler_digest", "conditions", "edit", "auto_duration")


def extend_recipe(studio: Any, job_id: Any, frames: Any, prompt: str | None = None, seed: Any = None) -> Recipe:
    """The recipe that extends finished clip `job_id` by `frames` frames (its prompt and seed unless
    others are given); refusals name `job_id`, `frames`, `prompt` or `seed`."""
    row = studio.finished_clip(job_id, "be extended")
    count = whole_number(frames, "frames", low=8, high=MAX_EXTEND_FRAMES)
    if count % 8:
        raise BadInput(f"frames must be a multiple of 8 (8, 16, 24, …), got {count}", field="frames")
    parent = Path(row["output_path"])
    data = dict(row["recipe"])
    entry = studio.vault.get(data["model"], kind="pipeline", field="model")
    if entry.family != "ltx2":
        raise BadInput(f"job_id {row['id']}: only LTX-2 clips can be extended, not {entry.family}", field="job_id")
    info = media.require_video(parent, "job_id")[1]["video"]
    try:  # (a clip whose header reads but whose frames do not cannot be continued either)
        if media.count_frames(parent) != info["frames"]:
            raise ValueError(f"{info['frames']} frames declared, fewer decoded")
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable clip"
        raise BadInput(f"job_id {row['id']}: its clip {parent.name} cannot be decoded: {exc}", field="job_id") from None
    ratio = read_grid(studio.vault.entry_dir(entry), entry.family).temporal
    context = (min(CONTEXT_LATENT_FRAMES * ratio + 1, info["frames"]) - 1) // ratio * ratio + 1
    values = {k: v for k, v in data.items() if k not in NOT_INHERITED}
    values.update(
        width=info["width"],
        height=info["height"],
        num_frames=info["frames"] + count,
        upscale=1,
        prompt=prompt if prompt else data["prompt"],
        seed=data["seed"] if seed in (None, "") else whole_number(seed, "seed", low=0, high=MAX_SEED),
        edit={"kind": "extend", "parent": sha256_file(parent), "parent_job": row["id"], "frames": count,
              "context": context},
    )  # fmt: skip
    return studio.build_recipe(values)


def find_parent(studio: Any, edit: Edit) -> Path:
    """The parent clip's MP4: its job's file, unchanged since (by sha256); else `BadInput` (field `edit`)."""
    if edit.parent_job is not None:
        try:
            path = Path(studio.history.get(edit.parent_job)["output_path"] or "")
        except KeyError:
            path = Path("")
        if path.is_file() and sha256_file(path) == edit.parent:
            return path
    raise BadInput(
        f"edit: the parent clip (job {edit.parent_job}, sha256 {edit.parent[:12]}…) is no longer on disk as it was",
        field="edit",
    )


def context_frames(parent: Path, edit: Edit) -> np.ndarray:
    """The parent's last `edit.context` frames, (K, H, W, 3) uint8 (decoded in one pass, only those kept)."""
    last: deque[np.ndarray] = deque(maxlen=edit.context)
    with av.open(str(parent)) as container:
        for frame in container.decode(video=0):
            last.append(frame.to_ndarray(format="rgb24"))
    if len(last) < edit.context:
        raise BadInput(f"edit: the parent clip has {len(last)} frames, fewer than {edit.context}", field="edit")
    return np.stack(last)


def joined_sound(
    parent: Path, parent_frames: int, edit: Edit, audio: np.ndarray | None, rate: int | None, fps: int
) -> tuple[np.ndarray | None, int | None, int]:
    """The extended clip's whole sound (the parent's `parent_frames` frames' sound, then the new render's
    from the same moment on), its rate, and the sample up to which it is the parent's own."""
    before, parent_rate = media.read_audio(parent)
    if audio is None or not rate or before.size == 0:
        return (audio, rate, 0) if before.size == 0 else (before, parent_rate, before.shape[1])
    if parent_rate != rate:
        raise BadInput(f"edit: the parent's sound is {parent_rate} Hz, the model's {rate} Hz", field="edit")
    # the join is the parent's last frame's end; a parent whose sound ends a little early joins where it
    # ends, taking the new sound from that same moment (so the sound never drifts from the picture)
    wanted = round(parent_frames / fps * rate)
    join = min(wanted, before.shape[1])
    new_join = round(edit.context / fps * rate) - (wanted - join)
    if new_join < 1 or new_join > audio.shape[1]:
        return before, rate, before.shape[1]  # (no new sound to continue with: the parent's alone)
    return joined_audio(before, audio, rate, join, new_join), rate, join
