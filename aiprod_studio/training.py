"""LoRA training settings: one typed object, validated before anything runs.

Defaults follow the issue's (rank 32, alpha = rank, lr 1e-4, 1500 steps, a checkpoint every
250); a wizard or a CLI flag overrides them. The config is stored with the run (the jobs
table's `recipe` column for a `train` job), so a run can be resumed exactly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiprod_studio.choices import LrSchedule, Optimizer, Quantization
from aiprod_studio.errors import BadInput
from aiprod_studio.text import text_fields
from aiprod_studio.validation import format_validation_error
from aiprod_studio.vault.manifest import check_name

VIDEO_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
FEED_FORWARD = ("ff.net.0.proj", "ff.net.2")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    name: str
    model: str | None = None  # None: the studio's default pipeline
    rank: int = Field(default=32, ge=1, le=256)
    alpha: float | None = Field(default=None, gt=0)  # None: = rank
    lr: float = Field(default=1e-4, gt=0, le=1e-1)
    steps: int = Field(default=1500, ge=1, le=100_000)
    save_every: int = Field(default=250, ge=1)
    warmup_steps: int = Field(default=50, ge=0)
    schedule: LrSchedule = "constant"
    batch_size: int = Field(default=1, ge=1, le=64)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    width: int | None = None  # the bucket; None: proposed from the data and the device
    height: int | None = None
    num_frames: int | None = None
    fps: int = Field(default=24, ge=1, le=60)
    trigger: str = ""
    train_feed_forward: bool = False
    gradient_checkpointing: bool = False
    quantization: Quantization = "none"
    optimizer: Optimizer = "adamw"
    timestep_shift: float = Field(default=1.0, gt=0, le=20)
    max_grad_norm: float = Field(default=1.0, gt=0)

    _text_fields = text_fields("dataset", "name", "model", "trigger")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v)
        except ValueError as exc:
            raise ValueError(str(exc).replace("name must", "must", 1)) from None

    @field_validator("width", "height")
    @classmethod
    def _size(cls, v: int | None) -> int | None:
        if v is not None and (v % 32 or not 32 <= v <= 2048):
            raise ValueError(f"must be a multiple of 32 between 32 and 2048, got {v}")
        return v

    @field_validator("num_frames")
    @classmethod
    def _frames(cls, v: int | None) -> int | None:
        if v is not None and (v < 1 or (v - 1) % 8 or v > 257):
            raise ValueError(f"must be 8k+1 (1 for images, 9, 17, …, 257), got {v}")
        return v

    @model_validator(mode="after")
    def _save_every(self) -> TrainConfig:
        self.save_every = min(self.save_every, self.steps)
        return self

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)

    @property
    def targets(self) -> tuple[str, ...]:
        return VIDEO_ATTENTION + (FEED_FORWARD if self.train_feed_forward else ())


def train_default(field: str) -> Any:
    """A training setting's default, as `TrainConfig` declares it (the CLI and the UI show these)."""
    return TrainConfig.model_fields[field].default


def make_train_config(data: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else None
        raise BadInput(format_validation_error(exc), field=field) from None
