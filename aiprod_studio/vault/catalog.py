"""The catalogue of models the studio knows (`models/catalog.json`, or the vault's own copy)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiprod_studio.choices import DEFAULT_FAMILY, DEFAULT_KIND
from aiprod_studio.errors import StudioError
from aiprod_studio.generations import VARIANTS, Version
from aiprod_studio.settings import PROJECT_ROOT
from aiprod_studio.vault.store import Vault

CATALOG_NAME = "catalog.json"


class MemoryNeed(BaseModel):
    """What one hardware profile needs for a generation's default render, in GiB (CPU: RAM only)."""

    model_config = ConfigDict(extra="forbid")
    gpu: float | None = Field(default=None, gt=0)
    ram: float = Field(gt=0)


class CatalogItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    repo: str
    revision: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    kind: str = DEFAULT_KIND
    family: str = DEFAULT_FAMILY
    generation: Version | None = None  # shown to people only; the studio reads it from the configs
    variant: str | None = None  # "distilled": recorded in the manifest entry, picks the variant's defaults
    gated: bool = False  # the hub serves it only to accounts that accepted its licence: needs a token
    license: str = "unknown"
    allow: list[str] = Field(default_factory=list)
    description: str = ""
    approx_size_gb: float | None = None  # on disk, 10^9 bytes
    min_memory_gb: dict[str, MemoryNeed] = Field(default_factory=dict)  # by hardware profile id

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, v: str | None) -> str | None:
        if v is not None and v not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {v!r}")
        return v


def catalog_path(vault: Vault) -> Path:
    """The vault's own catalogue if it has one, else the one shipped in the project's models/."""
    own = vault.root / CATALOG_NAME
    return own if own.is_file() else PROJECT_ROOT / "models" / CATALOG_NAME


def load_catalog(vault: Vault) -> list[CatalogItem]:
    path = catalog_path(vault)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [CatalogItem.model_validate(item) for item in data.get("models", [])]
    except (ValueError, ValidationError) as exc:
        raise StudioError(f"{path}: unreadable catalogue: {exc}") from None
