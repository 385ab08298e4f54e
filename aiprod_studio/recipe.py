"""The recipe: everything that determines a render, in one typed, validated object.

A recipe is stored in the history row and embedded as JSON in the MP4's metadata, so
any output can be re-rendered and compared. Validation never rounds silently: every
error names the field and the value (`num_frames must be 8k+1 (…), got 20`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from aiprod_studio import choices
from aiprod_studio.choices import FAST_ON, Decoder, FastMode, Offload, Quantization
from aiprod_studio.conditions import Condition, check_conditions
from aiprod_studio.edits import Edit, check_edit
from aiprod_studio.errors import BadInput
from aiprod_studio.text import echo, text_fields
from aiprod_studio.validation import field_error, format_validation_error

QUANTIZATIONS = choices.QUANTIZATIONS  # (engine and ui offer these from here)
OFFLOADS = choices.OFFLOADS
MAX_PROMPT_CHARS = 2000
MAX_SEED = 2**63 - 1
MAX_KEYINT = 1000  # frames between keyframes, at most

# Expert pipeline settings a recipe may carry (LTX-2 guidance variants and text length).
# Anything else is refused by name, so a typo never silently does nothing.
ADVANCED_KEYS = {
    "stg_scale": float,
    "modality_scale": float,
    "guidance_rescale": float,
    "audio_guidance_scale": float,
    "audio_stg_scale": float,
    "audio_modality_scale": float,
    "audio_guidance_rescale": float,
    "spatio_temporal_guidance_blocks": list,
    "use_cross_timestep": bool,
    "max_sequence_length": int,
    "decode_timestep": float,
    "decode_noise_scale": float,
    "noise_scale": float,
    "motion_speed": float,
    "sigmas": "floats",  # a fixed noise schedule (a distilled model's); as many values as steps
}

# What a recipe falls back to when neither the user nor the model entry says otherwise
# (the LTX-2 pipeline's own defaults).
RECIPE_DEFAULTS: dict[str, Any] = {
    "negative_prompt": "",
    "seed": 0,
    "width": 768,
    "height": 512,
    "num_frames": 121,
    "fps": 24,
    "steps": 40,
    "guidance": 4.0,
    "quantization": "none",
    "offload": "none",
    "vae_tiling": False,
    "fast": "off",
    "profile": "custom",
    "auto_duration": False,
    "decoder": "vae",
    "conditions": [],
    "upscale": 1,
    "upsampler": None,
    "upsampler_digest": None,
    "edit": None,
    "keyint": 0,
}


# Settings the render key holds only when they differ from their defaults (so the keys of
# recipes written before these settings existed do not change).
KEYED_WHEN_SET = (
    "vae_tiling",
    "fast",
    "auto_duration",
    "decoder",
    "conditions",
    "upscale",
    "upsampler",
    "upsampler_digest",
    "keyint",
)

# Fields older recipes carry that no longer exist, with the one value they always held
# (`scheduler`: the engine never read it; it was dropped from the recipe and from its render key).
RETIRED_FIELDS: dict[str, Any] = {"scheduler": {}}


class LoraRef(BaseModel):
    """A LoRA applied to a render: vault name, its file's sha256, its strength."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str = ""
    scale: float = 1.0

    _text_fields = text_fields("name", "sha256")

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, v: float) -> float:
        if not -2.0 <= v <= 2.0:
            raise ValueError(f"must be between -2 and 2, got {v}")
        return v


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    negative_prompt: str = RECIPE_DEFAULTS["negative_prompt"]
    model: str
    model_digest: str | None = None
    loras: list[LoraRef] = Field(default_factory=list)
    seed: int = RECIPE_DEFAULTS["seed"]
    width: int = RECIPE_DEFAULTS["width"]
    height: int = RECIPE_DEFAULTS["height"]
    num_frames: int = RECIPE_DEFAULTS["num_frames"]
    fps: int = RECIPE_DEFAULTS["fps"]
    steps: int = RECIPE_DEFAULTS["steps"]
    guidance: float = RECIPE_DEFAULTS["guidance"]
    quantization: Quantization = RECIPE_DEFAULTS["quantization"]
    offload: Offload = RECIPE_DEFAULTS["offload"]
    vae_tiling: StrictBool = RECIPE_DEFAULTS["vae_tiling"]  # decode the video in tiles: less memory, seams blended
    fast: FastMode = RECIPE_DEFAULTS["fast"]  # a step cache: some steps skip the transformer's blocks
    profile: str = RECIPE_DEFAULTS["profile"]  # the hardware profile that chose quantization, offload and tiling
    generation: str | None = None  # the model's LTX-2 generation, read from its configs ("2.3", "2.3-distilled")
    # the model's duration head picks the frame count, at most `num_frames`; a finished clip's
    # recipe holds the count it picked (rendered again, the head picks the same one)
    auto_duration: StrictBool = RECIPE_DEFAULTS["auto_duration"]
    decoder: Decoder = RECIPE_DEFAULTS["decoder"]  # "diffusion": LTX-2.5's diffusion decoder ("quality decode")
    conditions: list[Condition] = Field(default_factory=list)  # a start image and keyframes (aiprod_studio.conditions)
    # 2: the two-stage upscale (the vault's latent upsampler doubles width and height, then a short refine);
    # `width` and `height` are the first stage's, the clip is twice as wide and high
    upscale: Literal[1, 2] = RECIPE_DEFAULTS["upscale"]
    upsampler: str | None = None  # the latent upsampler's vault entry and its digest (with upscale 2)
    upsampler_digest: str | None = None
    edit: Edit | None = None  # how a finished clip was edited into this one (aiprod_studio.edits)
    # a keyframe every `keyint` frames of the MP4 (the studio's: one a second, so a time range can be
    # retaken); 0: the encoder's own choice, as clips made before had
    keyint: int = Field(default=RECIPE_DEFAULTS["keyint"], ge=0, le=MAX_KEYINT)
    advanced: dict[str, Any] = Field(default_factory=dict)
    deterministic: StrictBool = False  # render in CUDA's deterministic mode (slower; no effect on the CPU)
    versions: dict[str, str] = Field(default_factory=dict)

    _text_fields = text_fields(
        "prompt", "negative_prompt", "model", "model_digest", "versions", "profile", "generation", "upsampler"
    )

    @model_validator(mode="before")
    @classmethod
    def _retired_fields(cls, data: Any) -> Any:
        """Recipes written before a field was retired (history rows, MP4 metadata) still load.

        Such a field is dropped when it holds the value every recipe then carried; any other
        value asked for something no render ever did, and is refused by the field's name.
        """
        if not isinstance(data, dict) or not RETIRED_FIELDS.keys() & data.keys():
            return data
        for name, old_default in RETIRED_FIELDS.items():
            if name in data and data[name] != old_default:
                message = (
                    "is no longer a recipe setting (renders never used it); only "
                    f"{old_default!r} is accepted in an old recipe, got {echo(data[name])}"
                )
                raise field_error(cls.__name__, name, message, data[name])
        return {k: v for k, v in data.items() if k not in RETIRED_FIELDS}

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty, got ''" if not v else f"must not be blank, got {v!r}")
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters, got {len(v)}")
        return v

    @field_validator("negative_prompt")
    @classmethod
    def _negative(cls, v: str) -> str:
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"must be at most {MAX_PROMPT_CHARS} characters, got {len(v)}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a model of the vault, got ''")
        return v

    @field_validator("upscale", mode="before")
    @classmethod
    def _upscale_number(cls, v: Any) -> Any:
        if isinstance(v, bool):  # (true would read as 1: no upscale, silently)
            raise ValueError(f"must be 1 or 2, got {v!r}")
        return v

    @field_validator("keyint", mode="before")
    @classmethod
    def _keyint_number(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"must be a number of frames (0: the encoder's choice), got {v!r}")
        return v

    @field_validator("fast", mode="before")
    @classmethod
    def _fast_switch(cls, v: Any) -> Any:
        """Fast as a switch (true/false, "on") means the cache that measured best, recorded by name."""
        word = v.strip().lower() if isinstance(v, str) else v
        if v is True or word in ("on", "true"):
            return FAST_ON
        if v is False or word in ("off", "false"):
            return "off"
        return word

    @model_validator(mode="after")
    def _offload_with_quantization(self) -> Recipe:
        """8-bit weights cannot be moved piecewise: accelerate's sequential offload fails on
        optimum-quanto's tensors, and diffusers' group offloading leaves their inner data on the CPU."""
        if self.quantization != "none" and self.offload in ("group", "sequential"):
            message = (
                f"{self.offload!r} cannot move {self.quantization} weights (only whole components move when "
                "quantized): choose offload 'model' or 'none', or quantization 'none'"
            )
            raise field_error(type(self).__name__, "offload", message, self.offload)
        return self

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", v):
            raise ValueError(f"must name a hardware profile (lowercase letters, digits, '.', '_', '-'), got {echo(v)}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v <= MAX_SEED:
            raise ValueError(f"must be between 0 and {MAX_SEED}, got {v}")
        return v

    @field_validator("width", "height")
    @classmethod
    def _size(cls, v: int) -> int:
        if v % 32 or not 32 <= v <= 4096:
            raise ValueError(f"must be a multiple of 32 between 32 and 4096, got {v}")
        return v

    @field_validator("num_frames")
    @classmethod
    def _frames(cls, v: int) -> int:
        if v < 1 or (v - 1) % 8 or v > 1025:
            raise ValueError(f"must be 8k+1 (1, 9, 17, 25, …, 1025), got {v}")
        return v

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: int) -> int:
        if not 1 <= v <= 60:
            raise ValueError(f"must be between 1 and 60, got {v}")
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if not 1 <= v <= 200:
            raise ValueError(f"must be between 1 and 200, got {v}")
        return v

    @field_validator("guidance")
    @classmethod
    def _guidance(cls, v: float) -> float:
        if not v >= 1.0 or v > 100:
            raise ValueError(f"must be at least 1 (and at most 100), got {v}")
        return v

    @field_validator("advanced")
    @classmethod
    def _advanced(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            kind = ADVANCED_KEYS.get(key)
            if kind is None:
                raise ValueError(f"has unknown setting {key!r} (known: {', '.join(sorted(ADVANCED_KEYS))})")
            if value is None:
                continue
            if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                continue
            if kind is list and isinstance(value, list) and all(_is_int(i) for i in value):
                continue
            if kind == "floats" and isinstance(value, list) and value and all(_is_number(i) for i in value):
                if not all(0.0 <= float(i) <= 1.0 for i in value) or any(
                    a <= b for a, b in zip(value, value[1:], strict=False)
                ):
                    raise ValueError(
                        f"setting 'sigmas' must fall from 1 towards 0 (each below the last), got {value!r}"
                    )
                continue
            if kind in (int, bool) and type(value) is kind:
                continue
            kind_name = "a list of numbers" if kind == "floats" else getattr(kind, "__name__", str(kind))
            raise ValueError(f"setting {key!r} must be {kind_name}, got {echo(value)}")
        return v

    @model_validator(mode="after")
    def _auto_duration_room(self) -> Recipe:
        """With auto duration the frame count is the longest clip allowed: it must leave a choice."""
        if self.auto_duration and self.num_frames < 9:
            message = f"must be at least 9 with auto_duration (it is the longest clip allowed), got {self.num_frames}"
            raise field_error(type(self).__name__, "num_frames", message, self.num_frames)
        return self

    @model_validator(mode="after")
    def _upscaled_size(self) -> Recipe:
        """Upscaled, the clip must stay within 4096 pixels a side."""
        if self.upscale > 1 and max(self.width, self.height) * self.upscale > 4096:
            message = (
                f"2 makes the clip {self.width * 2}×{self.height * 2}; at most 4096 a side: "
                f"render at most 2048×2048 and upscale that"
            )
            raise field_error(type(self).__name__, "upscale", message, 2)
        return self

    @model_validator(mode="after")
    def _conditions_fit(self) -> Recipe:
        """Every picture on a frame of the clip, one per frame (keyframes need a fixed length)."""
        problem = check_conditions(self.conditions, self.num_frames, self.auto_duration)
        edit = check_edit(self.edit, self.num_frames, bool(self.conditions), self.upscale, self.auto_duration)
        if edit:
            raise field_error(type(self).__name__, "edit", edit, self.edit)
        if problem:
            raise field_error(type(self).__name__, "conditions", problem, self.conditions)
        return self

    @model_validator(mode="after")
    def _schedule_length(self) -> Recipe:
        """A fixed schedule has one sigma per step: 8 sigmas and 30 steps cannot both be meant."""
        sigmas = self.advanced.get("sigmas")
        if sigmas and len(sigmas) != self.steps:
            message = (
                f"must equal the number of sigmas in advanced.sigmas ({len(sigmas)}) when a fixed schedule "
                f"is set, got {self.steps}"
            )
            raise field_error(type(self).__name__, "steps", message, self.steps)
        return self

    # -- serialisation -------------------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): what goes into the MP4 and the DB."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def render_key(self) -> str:
        """Hash of what decides the pixels (not the library versions, not where weights wait, not
        the deterministic switch: the same recipe, asked to repeat itself exactly; not the
        profile's name: the settings it chose are in the key)."""
        data = self.model_dump(mode="json", exclude={"versions", "offload", "deterministic", "profile", "generation"})
        for name in KEYED_WHEN_SET:  # settings added later: a recipe that leaves them off keeps its old key
            if data[name] == RECIPE_DEFAULTS[name]:
                del data[name]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def random_seed() -> int:
    """A fresh seed (32 bits, as `--seed random` gives), recorded in the recipe it goes into."""
    return random.SystemRandom().randint(0, 2**32 - 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def make_recipe(data: dict[str, Any]) -> Recipe:
    """Build a recipe from plain values; any problem becomes `BadInput` naming the field."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0].get("loc", ("recipe",))
        raise BadInput(format_validation_error(exc), field=str(first[0]) if first else None) from None


def recipe_from_json(text: str) -> Recipe:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"recipe is not valid JSON: {exc}", field="recipe") from None
    if not isinstance(data, dict):
        raise BadInput(f"recipe must be a JSON object, got {type(data).__name__}", field="recipe")
    return make_recipe(data)
