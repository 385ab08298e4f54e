"""Edits of a finished clip, as a recipe records them: `extend` continues the parent clip by
`frames` new frames, rendered from its last `context` frames.

The recipe of an extended clip is the parent's size and rate with the total length
(`num_frames` = the parent's frames + `frames`); its prompt and seed are the new part's.
The parent is named by the sha256 of its MP4 (and its job, when the history has it): the
result keeps the parent's video bit for bit and appends the new part.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiprod_studio.conditions import sha256_name

MAX_EXTEND_FRAMES = 512


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["extend"]
    parent: str  # the sha256 of the parent clip's MP4
    parent_job: int | None = Field(default=None, ge=1)  # its job in the history that made this clip
    frames: int  # new frames after the parent's last
    context: int  # the parent's last frames the new part is rendered from

    @field_validator("parent")
    @classmethod
    def _parent(cls, v: str) -> str:
        return sha256_name(v, "the parent clip")

    @field_validator("frames")
    @classmethod
    def _frames(cls, v: int) -> int:
        if v < 8 or v % 8 or v > MAX_EXTEND_FRAMES:
            raise ValueError(f"must be a multiple of 8 from 8 to {MAX_EXTEND_FRAMES}, got {v}")
        return v

    @field_validator("context")
    @classmethod
    def _context(cls, v: int) -> int:
        if v < 1 or (v - 1) % 4:
            raise ValueError(f"must be 4k+1 frames of the parent (1, 5, 9, 17, …), got {v}")
        return v


def check_edit(edit: Edit | None, num_frames: int, has_pictures: bool, upscale: int, auto: bool) -> str | None:
    """Why this edit cannot go with these recipe settings (a message for field `edit`), or None."""
    if edit is None:
        return None
    parent_frames = num_frames - edit.frames
    if parent_frames < edit.context:
        return f"context {edit.context} is more frames than the parent's {parent_frames}"
    if has_pictures or upscale != 1 or auto:
        return "an extension takes no pictures, upscale or auto duration of its own"
    return None
