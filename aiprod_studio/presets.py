"""Render presets and hardware profiles: JSON or TOML files in `presets/`.

A render preset fills the size, length and sampling fields; a hardware profile picks the
quantization, the offload mode and VAE tiling, for a GPU of `memory_gb` (or the CPU). The
profile `auto` (the default) is not a file: the engine's memory budget picks the fastest
profile that fits the job (`engine/budget/`). Every file is validated when it is read, and an error
names the file and the field.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from aiprod_studio.choices import AUTO, PresetKind
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import make_recipe
from aiprod_studio.settings import PROJECT_ROOT
from aiprod_studio.validation import format_validation_error

log = logging.getLogger(__name__)

RENDER_KEYS = {"width", "height", "num_frames", "fps", "steps", "guidance", "negative_prompt"}
HARDWARE_KEYS = {"quantization", "offload", "vae_tiling"}


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    kind: PresetKind
    description: str = ""
    memory_gb: float | None = None  # hardware: the GPU memory this profile is made for
    device: Literal["cuda", "cpu"] = "cuda"  # hardware: where it renders
    settings: dict[str, Any]

    @property
    def speed_rank(self) -> float:
        """Hardware profiles sort fastest first: the most memory asked for first."""
        return -(self.memory_gb or 0.0)


def presets_dir() -> Path:
    return Path(os.environ.get("AIPROD_PRESETS_DIR") or PROJECT_ROOT / "presets")


def load_preset(path: Path) -> Preset:
    try:
        raw = tomllib.loads(path.read_text("utf-8")) if path.suffix == ".toml" else json.loads(path.read_text("utf-8"))
        preset = Preset.model_validate({"id": path.stem, **raw})
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise BadInput(f"preset {path.name}: {detail}", field="preset") from None
    if preset.id == AUTO:
        raise BadInput(f"preset {path.name}: {AUTO!r} is the automatic choice and cannot be a file", field="preset")
    allowed = RENDER_KEYS if preset.kind == "render" else HARDWARE_KEYS
    unknown = sorted(set(preset.settings) - allowed)
    if unknown:
        raise BadInput(
            f"preset {path.name}: unknown {preset.kind} setting(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})",
            field="preset",
        )
    try:  # the values must be ones a recipe accepts
        make_recipe({"prompt": "check", "model": "check", **preset.settings})
    except BadInput as exc:
        raise BadInput(f"preset {path.name}: {exc}", field="preset") from None
    return preset


def load_presets(folder: Path | None = None) -> list[Preset]:
    folder = folder or presets_dir()
    if not folder.is_dir():
        return []
    return [load_preset(p) for p in sorted(folder.iterdir()) if p.suffix in (".json", ".toml")]


def hardware_profiles(device: str, folder: Path | None = None) -> list[Preset]:
    """The hardware profiles for `device` ("cuda" or "cpu"), fastest (most memory) first. A file
    that does not load is left out with a warning: one bad preset must not stop every render."""
    folder = folder or presets_dir()
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix not in (".json", ".toml"):
            continue
        try:
            preset = load_preset(path)
        except BadInput as exc:
            log.warning("%s", exc)
            continue
        if preset.kind == "hardware" and preset.device == device:
            found.append(preset)
    return sorted(found, key=lambda p: (p.speed_rank, p.id))
