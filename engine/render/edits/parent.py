"""The parent of an edit: its MP4 found again (unchanged, by sha256), checked to decode, its
keyframes, and the frames an edit holds to."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np

from aiprod_studio.edits import Edit
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe
from aiprod_studio.vault.manifest import sha256_file
from engine.render import media
from engine.render.edits.splice import kept_packets


def parent_clip(studio: Any, job_id: Any, purpose: str) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """The row, MP4 and video facts of finished LTX-2 clip `job_id`, checked to decode whole; refusals name
    `job_id` (`purpose`: "be extended", "be retaken")."""
    row = studio.finished_clip(job_id, purpose)
    entry = studio.vault.get(row["recipe"]["model"], kind="pipeline", field="model")
    if entry.family != "ltx2":
        raise BadInput(f"job_id {row['id']}: only LTX-2 clips can {purpose}, not {entry.family}", field="job_id")
    path = Path(row["output_path"])
    info = media.require_video(path, "job_id")[1]["video"]
    try:  # (a clip whose header reads but whose frames do not cannot be edited either)
        if media.count_frames(path) != info["frames"]:
            raise ValueError(f"{info['frames']} frames declared, fewer decoded")
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable clip"
        raise BadInput(f"job_id {row['id']}: its clip {path.name} cannot be decoded: {exc}", field="job_id") from None
    return row, path, info


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


def video_packets(path: Path) -> tuple[list[Any], Any, tuple[bytes | None, int, int]]:
    """`path`'s video packets in decode order, the time-base ticks per frame, and its H.264 headers
    (extradata), width and height."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.dts is not None]
        codec = stream.codec_context
        return packets, 1 / (stream.time_base * stream.average_rate), (codec.extradata, codec.width, codec.height)


def keyframes(path: Path) -> list[int]:
    """The frames of `path`'s video that are keyframes (where a piece of it can be cut out), in order."""
    packets, ticks, _ = video_packets(path)
    return sorted(round(p.pts / ticks) for p in packets if p.is_keyframe and p.pts is not None)


def held_frames(parent: Path, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """The parent's frames for each (first, count) of `spans`, each (count, H, W, 3) uint8 (read in one
    streamed pass, only those kept)."""
    found = media.read_frames_at(parent, [i for first, count in spans for i in range(first, first + count)])
    held = []
    for first, count in spans:
        if any(i not in found for i in range(first, first + count)):
            raise BadInput(f"edit: the parent clip has no frames {first}…{first + count - 1}", field="edit")
        held.append(np.stack([found[i] for i in range(first, first + count)]))
    return held


def check_parent(parent: Path, recipe: Recipe) -> None:
    """Refuse (field `edit`) an edit its parent cannot take, before anything renders: a parent whose frame
    count is not the recipe's, whose video cannot be cut where the edit cuts it, or whose H.264 settings are
    not the ones the new frames will be encoded with."""
    edit = recipe.edit
    assert edit is not None
    packets, ticks, (extradata, width, height) = video_packets(parent)
    start, end = edit.span(recipe.num_frames)
    total = recipe.num_frames - edit.frames if edit.kind == "extend" else recipe.num_frames
    if len(packets) != total or ticks.denominator != 1:
        raise BadInput(
            f"edit: the parent clip {parent.name} has {len(packets)} frames, the recipe's {edit.kind} needs {total}",
            field="edit",
        )
    kept_packets(packets, int(ticks), start, end, parent.name)
    with tempfile.TemporaryDirectory(prefix="aiprod-check-") as folder:  # one frame, as the new ones will be
        probe = media.encode_mp4(
            Path(folder) / "probe.mp4", np.zeros((1, height, width, 3), np.uint8), recipe.fps, keyint=recipe.keyint
        )
        with av.open(str(probe)) as container:
            same = container.streams.video[0].codec_context.extradata == extradata
    if not same:
        raise BadInput(
            f"edit: the parent clip {parent.name} was encoded with other H.264 settings than this studio's; its "
            "frames cannot be kept bit for bit",
            field="edit",
        )
