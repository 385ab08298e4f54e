"""Where things live: the model vault, the data dir (history, outputs), the device.

Precedence for every path: explicit argument (CLI flag) > environment variable >
default. The vault defaults to `models/` beside the code (like ComfyUI); the data dir
defaults to the platform's user data folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "aiprod-studio"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_DEVICE = "auto"  # the engine picks CUDA when it has it, else the CPU


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    data_dir: Path
    device: str = DEFAULT_DEVICE

    @property
    def db_path(self) -> Path:
        return self.data_dir / "history.sqlite"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    def ensure_dirs(self) -> Settings:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        return self


def load_settings(
    models_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> Settings:
    """Resolve the settings from arguments, then `AIPROD_*` variables, then defaults."""
    models = models_dir or os.environ.get("AIPROD_MODELS_DIR") or PROJECT_ROOT / "models"
    data = data_dir or os.environ.get("AIPROD_DATA_DIR") or platformdirs.user_data_dir(APP_NAME, appauthor=False)
    dev = device or os.environ.get("AIPROD_DEVICE") or DEFAULT_DEVICE
    return Settings(
        models_dir=Path(models).expanduser().resolve(), data_dir=Path(data).expanduser().resolve(), device=dev
    )
