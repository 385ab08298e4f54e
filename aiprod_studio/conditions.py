"""Picture conditions: a start image (image-to-video) and keyframes, as a recipe records them.

A condition names its image by the sha256 of the prepared PNG (resized and cropped to the
recipe's size) kept in the studio's image store beside the outputs, so the recipe alone
re-renders the clip anywhere the store travels. `frame` is a frame of the clip (0 is the
first); `strength` how firmly the picture holds there (1: exactly).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from aiprod_studio.errors import BadInput
from aiprod_studio.text import echo

MAX_CONDITIONS = 8  # a start image and up to seven keyframes
LAST = "last"  # a keyframe frame given as "last": the clip's last frame
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def sha256_name(value: str, of_what: str) -> str:
    """`value` when it is a sha256 (64 lowercase hex digits), else a `ValueError` saying what it names."""
    if not SHA256_RE.fullmatch(value):
        raise ValueError(f"must be the sha256 of {of_what} (64 lowercase hex digits), got {echo(value)}")
    return value


class Condition(BaseModel):
    """One picture a render holds to: the prepared image's sha256, the frame, the strength."""

    model_config = ConfigDict(extra="forbid")

    image: str
    frame: int = 0
    strength: float = 1.0

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return sha256_name(v, "a prepared image")

    @field_validator("frame", "strength", mode="before")
    @classmethod
    def _numbers_only(cls, v: Any) -> Any:
        """A frame or strength is a number in a recipe: true, "8" or 8.5 are refused, not coerced."""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be a number, got {echo(v)}")
        return v

    @field_validator("frame")
    @classmethod
    def _frame(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be a frame of the clip (0 or more), got {v}")
        return v

    @field_validator("strength")
    @classmethod
    def _strength(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"must be above 0 and at most 1, got {v}")
        return v


def check_conditions(conditions: list[Condition], num_frames: int, auto_duration: bool) -> str | None:
    """Why these conditions cannot go with this clip (a message for field `conditions`), or None."""
    if len(conditions) > MAX_CONDITIONS:
        return f"holds at most {MAX_CONDITIONS} pictures (a start image and keyframes), got {len(conditions)}"
    seen: set[int] = set()
    for i, cond in enumerate(conditions):
        if cond.frame >= num_frames:
            last = num_frames - 1
            return f"entry {i}: frame must be a frame of the {num_frames}-frame clip (0 to {last}), got {cond.frame}"
        if cond.frame in seen:
            return f"entry {i}: frame {cond.frame} already holds a picture; give each frame one"
        seen.add(cond.frame)
        if auto_duration and cond.frame:
            return (
                f"entry {i}: frame {cond.frame}: keyframes after the first frame need a fixed clip length; "
                "switch auto_duration off"
            )
    return None


def latent_slot(frame: int, temporal_ratio: int) -> int:
    """The latent frame that holds pixel frame `frame` (frame 0 alone in slot 0; then k frames a slot)."""
    return 0 if frame == 0 else math.ceil(frame / temporal_ratio)


def check_slots(conditions: list[Condition], temporal_ratio: int) -> str | None:
    """Why two pictures cannot both be held (they share one latent frame of the model), or None."""
    slots: dict[int, int] = {}
    for cond in sorted(conditions, key=lambda c: c.frame):
        slot = latent_slot(cond.frame, temporal_ratio)
        if slot in slots:
            return (
                f"frames {slots[slot]} and {cond.frame} fall in the same latent frame of this model (it holds "
                f"{temporal_ratio} frames); keep pictures at least {temporal_ratio} frames apart"
            )
        slots[slot] = cond.frame
    return None


def parse_keyframe(text: str, field: str = "keyframe") -> tuple[str, int | str, float]:
    """`PATH@FRAME[:STRENGTH]` (FRAME a number or `last`) → (path, frame, strength)."""
    path, at, spec = str(text).rpartition("@")
    if not at or not path:
        raise BadInput(f"{field} must be PATH@FRAME[:STRENGTH] (e.g. end.png@last:0.8), got {echo(text)}", field=field)
    return (path, *parse_at(spec, field))


def parse_at(spec: Any, field: str = "keyframe") -> tuple[int | str, float]:
    """`FRAME[:STRENGTH]` (FRAME a number or `last`, STRENGTH above 0 and at most 1, default 1)."""
    frame_text, _, strength_text = str(spec).partition(":")
    frame: int | str
    if frame_text.strip().lower() == LAST:
        frame = LAST
    elif re.fullmatch(r"[0-9]{1,5}", frame_text.strip()):
        frame = int(frame_text)
    else:
        raise BadInput(f"{field} frame must be a frame number or 'last', got {echo(frame_text)}", field=field)
    try:
        strength = float(strength_text) if strength_text.strip() else 1.0
    except ValueError:
        raise BadInput(f"{field} strength must be a number, got {echo(strength_text)}", field=field) from None
    if not 0.0 < strength <= 1.0:
        raise BadInput(f"{field} strength must be above 0 and at most 1, got {strength_text.strip()}", field=field)
    return frame, strength


def split_specs(text: Any, field: str) -> list[str]:
    """Keyframe positions as a list: a list of `FRAME[:STRENGTH]`, or one text of them separated by commas."""
    if text is None:
        return []
    if isinstance(text, str):
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(text, list) and all(isinstance(t, (str, int)) and not isinstance(t, bool) for t in text):
        return [str(t).strip() for t in text]
    raise BadInput(f"{field} must be FRAME[:STRENGTH] values (e.g. 8, last:0.7), got {echo(text)}", field=field)


def frame_number(frame: Any, num_frames: int, field: str = "keyframes") -> int:
    """A keyframe's frame as a number: `last` is the clip's last frame; anything else must be a whole number."""
    if isinstance(frame, str) and frame.strip().lower() == LAST:
        return num_frames - 1
    if isinstance(frame, bool) or not isinstance(frame, (int, float, str)):
        raise BadInput(f"{field} frame must be a frame number or 'last', got {echo(frame)}", field=field)
    try:
        number = float(frame)
    except ValueError:
        raise BadInput(f"{field} frame must be a frame number or 'last', got {echo(frame)}", field=field) from None
    if not math.isfinite(number) or number != int(number):
        raise BadInput(f"{field} frame must be a whole number, got {echo(frame)}", field=field)
    return int(number)
