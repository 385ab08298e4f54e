"""Storyboards: a titled list of shots, each with its own prompt, duration, seed and LoRAs.

A shot's film length is `frames = round(duration_s × fps)`; it is rendered with the
smallest valid clip length `8k+1 ≥ frames` and trimmed when the film is assembled.

A storyboard JSON (a file, the API's argument) is bounded before it is parsed: size and
nesting depth. The output of `storyboard split --json` (and any `--json` envelope holding a
`storyboard`) is accepted as it is, so what the CLI prints can be rendered again. Scripts
become storyboards in `aiprod_studio.storyboard.scenarist`.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiprod_studio.conditions import sha256_name
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import MAX_PROMPT_CHARS, MAX_SEED, RECIPE_DEFAULTS, LoraRef
from aiprod_studio.text import echo, text_fields
from aiprod_studio.validation import describe_error

MAX_SHOTS = 100
MAX_CLIP_FRAMES = 1025
MIN_SHOT_FRAMES = 1
MAX_SHOT_S = 60.0  # a plain bound; the clip frame limit at the storyboard's fps may be lower
MAX_FILM_S = 3600.0
MAX_STORYBOARD_CHARS = 5_000_000  # a storyboard JSON, script included, is well under 1 MB
MAX_JSON_DEPTH = 32  # a storyboard nests 5 deep (board, shots, shot, loras, lora), an envelope one more
MAX_ID = 2**63 - 1  # SQLite's largest row id
ENVELOPE_KEYS = {"ok"}  # what the CLI's `--json` adds around a command's result


class Shot(BaseModel):
    """One shot: its own prompt, duration, seed and LoRAs."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    duration_s: float
    seed: int = Field(ge=0, le=MAX_SEED)
    text: str = ""  # the script's words for this shot, before the style line was added
    title: str = ""  # a scene heading or marker label
    negative_prompt: str = ""
    loras: list[LoraRef] = Field(default_factory=list)
    image: str = ""  # a start image: the sha256 of the picture in the studio's image store ("": none)

    _text_fields = text_fields("prompt", "text", "title", "negative_prompt")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return sha256_name(v, "a picture in the image store") if v else v

    @field_validator("duration_s")
    @classmethod
    def _duration(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):  # the upper bound depends on the fps: `check_storyboard`
            raise ValueError(f"must be a number of seconds more than 0, got {v}")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters, got {len(v)}")
        return v


class Storyboard(BaseModel):
    """A titled, ordered list of shots with the settings they share."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    title: str = "Untitled"
    script: str = ""
    style: str = ""
    model: str | None = None  # None: the studio's default model
    preset: str | None = None
    fps: int = Field(default=RECIPE_DEFAULTS["fps"], ge=1, le=60)
    width: int | None = None  # None: the model's default
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    quantization: str = RECIPE_DEFAULTS["quantization"]  # checked when its shots become recipes
    base_seed: int = Field(default=0, ge=0, le=MAX_SEED)
    crossfade_s: float = Field(default=0.0, ge=0, le=2.0)
    shots: list[Shot] = Field(default_factory=list)

    _text_fields = text_fields("title", "script", "style", "model", "preset", "quantization")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        if v is not None and (type(v) is not int or not 1 <= v <= MAX_ID):
            raise ValueError(
                f"must be a whole number from 1 to {MAX_ID} (a storyboard saved in this studio; "
                f"leave it out for a new one), got {echo(v)}"
            )
        return v

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=1)


def shot_frames(duration_s: float, fps: int) -> int:
    """The shot's length in the film, in frames."""
    return max(MIN_SHOT_FRAMES, round(duration_s * fps))


def render_frames(frames: int) -> int:
    """The shortest valid clip (8k+1 frames, at least 9) that covers `frames`."""
    return max(9, 8 * math.ceil((frames - 1) / 8) + 1)


def check_storyboard(board: Storyboard) -> None:
    """Refuse what cannot be rendered, naming the shot and the value."""
    if not board.shots:
        raise BadInput("shots: the storyboard has no shots", field="shots")
    if len(board.shots) > MAX_SHOTS:
        raise BadInput(f"shots: at most {MAX_SHOTS} per storyboard, got {len(board.shots)}", field="shots")
    for i, shot in enumerate(board.shots, start=1):
        if not (
            isinstance(shot.duration_s, (int, float))
            and math.isfinite(shot.duration_s)
            and 0 < shot.duration_s <= MAX_SHOT_S
        ):  # (checked again: a shot can be changed in place)
            raise BadInput(
                f"shot {i}: duration_s must be at most {MAX_SHOT_S:g} seconds (and more than 0), "
                f"got {shot.duration_s!r}",
                field="duration_s",
            )
        n = render_frames(shot_frames(shot.duration_s, board.fps))
        if n > MAX_CLIP_FRAMES:
            longest = (MAX_CLIP_FRAMES - 1) / board.fps
            raise BadInput(
                f"shot {i}: duration_s must be at most {longest:.1f}s at {board.fps} fps, got {shot.duration_s}",
                field="duration_s",
            )
    total = sum(shot_frames(s.duration_s, board.fps) for s in board.shots) / board.fps
    if total > MAX_FILM_S:
        raise BadInput(
            f"the film would last {total:.1f}s; at most {MAX_FILM_S:g}s per storyboard: shorten the shots' "
            "duration_s or split it",
            field="duration_s",
        )


def validation_error(exc: ValidationError) -> BadInput:
    """A storyboard's validation errors, each naming its shot (`shot 2: duration_s …`)."""
    parts, fields = [], []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if len(loc) >= 3 and loc[0] == "shots" and isinstance(loc[1], int):
            parts.append(f"shot {loc[1] + 1}: {describe_error(err | {'loc': loc[2:]})}")
            fields.append("duration_s" if loc[2] == "duration_s" else "storyboard")
        else:
            parts.append(describe_error(err))
            fields.append(str(loc[0]) if loc and loc[0] in Storyboard.model_fields else "storyboard")
    return BadInput(f"storyboard {'; '.join(parts)}", field=fields[0] if fields else "storyboard")


def _json_depth(text: str) -> int:
    """How deep the JSON arrays and objects of `text` nest (brackets inside strings do not count)."""
    brackets = re.sub(r"[^\[\]{}]+", "", re.sub(r'"(?:[^"\\]++|\\.)*+"', "", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _unwrap(data: Any) -> Any:
    """The storyboard inside what the CLI's `--json` printed; anything else as it is."""
    if not isinstance(data, dict) or not ENVELOPE_KEYS & data.keys():
        return data
    if data.get("ok") is not True:
        raise BadInput(
            f"storyboard: this is the output of a command that failed ({echo(data.get('error'))}), not a storyboard",
            field="storyboard",
        )
    if isinstance(data.get("storyboard"), dict):  # `storyboard enhance --json`, `inspect FILM --json`
        return data["storyboard"]
    return {k: v for k, v in data.items() if k not in ENVELOPE_KEYS}  # `storyboard split --json`


def storyboard_from_json(text: str | dict[str, Any]) -> Storyboard:
    """A storyboard from its JSON (or the CLI's `--json` output around it), checked; else `BadInput`."""
    # 1. Bound the text before parsing it.
    if isinstance(text, str):
        if len(text) > MAX_STORYBOARD_CHARS:
            raise BadInput(
                f"storyboard is {len(text):,} characters; at most {MAX_STORYBOARD_CHARS:,}", field="storyboard"
            )
        if (depth := _json_depth(text)) > MAX_JSON_DEPTH:
            raise BadInput(
                f"storyboard nests {depth} levels deep; a storyboard needs at most {MAX_JSON_DEPTH}", field="storyboard"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"storyboard is not valid JSON: {exc}", field="storyboard") from None
    else:
        data = text
    # 2. The storyboard itself (taken out of a CLI envelope), strictly.
    data = _unwrap(data)
    if not isinstance(data, dict):
        raise BadInput(f"storyboard must be a JSON object, got {type(data).__name__}", field="storyboard")
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    check_storyboard(board)
    return board


def read_storyboard_file(path: str | Path) -> Storyboard:
    """A storyboard JSON file (or what `storyboard split --json` printed), read within the size bound."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_STORYBOARD_CHARS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadInput(f"storyboard file {str(path)!r} cannot be read: {reason}", field="file") from None
    if len(text) > MAX_STORYBOARD_CHARS:
        raise BadInput(
            f"storyboard file {str(path)!r} is over {MAX_STORYBOARD_CHARS:,} characters: not a storyboard", field="file"
        )
    return storyboard_from_json(text)
