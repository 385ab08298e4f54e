"""Edits of a finished clip, as a recipe records them.

- `extend` continues the parent clip by `frames` new frames, rendered from its last `context`
  frames. The recipe's `num_frames` is the parent's frames + `frames`.
- `retake` renders the parent's frames `start` … `start + frames - 1` again, held to its
  `context` frames before them and its `after` frames after them; every other frame stays the
  parent's. The recipe's `num_frames` is the parent's. `start` and `start + frames` are keyframes
  of the parent's video (or its end), so the frames around the range are kept bit for bit.

In both, the prompt and seed are the new part's. The parent is named by the sha256 of its MP4
(and its job, when the history has it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiprod_studio.conditions import sha256_name

MAX_EXTEND_FRAMES = 512


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["extend", "retake"]
    parent: str  # the sha256 of the parent clip's MP4
    parent_job: int | None = Field(default=None, ge=1)  # its job in the history that made this clip
    frames: int  # extend: new frames after the parent's last; retake: the frames rendered again
    context: int  # the parent's frames just before the new ones that the render holds to
    start: int = Field(default=0, ge=0)  # retake: the first frame rendered again
    after: int = Field(default=0, ge=0)  # retake: the parent's frames just after the range the render holds to

    @field_validator("parent")
    @classmethod
    def _parent(cls, v: str) -> str:
        return sha256_name(v, "the parent clip")

    @field_validator("context", "after")
    @classmethod
    def _held(cls, v: int) -> int:
        if v < 0 or (v and (v - 1) % 4):
            raise ValueError(f"must be 0 or 4k+1 frames of the parent (1, 5, 9, 17, …), got {v}")
        return v

    @model_validator(mode="after")
    def _by_kind(self) -> Edit:
        if self.kind == "extend":
            if self.frames < 8 or self.frames % 8 or self.frames > MAX_EXTEND_FRAMES:
                raise ValueError(f"frames must be a multiple of 8 from 8 to {MAX_EXTEND_FRAMES}, got {self.frames}")
            if self.context < 1 or self.start or self.after:
                raise ValueError("an extension holds to at least one frame of its parent and has no start or after")
        elif self.frames < 1:
            raise ValueError(f"frames must be at least 1 for a retake, got {self.frames}")
        elif self.context > self.start:
            raise ValueError(f"context {self.context} is more frames than the {self.start} before the retake")
        return self

    def span(self, num_frames: int) -> tuple[int, int]:
        """The parent's frames (start, end) the new ones take the place of, for a clip of `num_frames`:
        an extension's is empty, at the parent's end."""
        if self.kind == "extend":
            return num_frames - self.frames, num_frames - self.frames
        return self.start, self.start + self.frames

    def render_frames(self) -> int:
        """How many frames the render of the new part runs (8k+1): the held frames and the new ones,
        a retake's padded at its end (frames rendered and left out)."""
        needed = self.context + self.frames + self.after
        return needed if self.kind == "extend" else -(-(needed - 1) // 8) * 8 + 1


def check_edit(edit: Edit | None, num_frames: int, has_pictures: bool, upscale: int, auto: bool) -> str | None:
    """Why this edit cannot go with these recipe settings (a message for field `edit`), or None."""
    if edit is None:
        return None
    if has_pictures or upscale != 1 or auto:
        return f"a {edit.kind} takes no pictures, upscale or auto duration of its own"
    if edit.kind == "extend":
        parent_frames = num_frames - edit.frames
        if parent_frames < edit.context:
            return f"context {edit.context} is more frames than the parent's {parent_frames}"
        return None
    end = edit.start + edit.frames
    if end > num_frames:
        return f"the retake's frames {edit.start}…{end - 1} run past the clip's {num_frames}"
    if edit.after > num_frames - end:
        return f"after {edit.after} is more frames than the {num_frames - end} after the retake"
    if edit.start == 0 and end == num_frames:
        return "a retake of every frame keeps nothing of its parent; render the clip again instead"
    return None
