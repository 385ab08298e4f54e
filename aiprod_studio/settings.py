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

from aiprod_studio.errors import BadInput

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
    memory_limit_gb: float | None = None  # use at most this much of the compute device's memory
    compile: bool = False  # torch.compile the transformer's blocks on CUDA (`AIPROD_COMPILE=1`)

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
        models_dir=Path(models).expanduser().resolve(),
        data_dir=Path(data).expanduser().resolve(),
        device=dev,
        memory_limit_gb=memory_limit(os.environ.get("AIPROD_MEMORY_LIMIT_GB")),
        compile=switch(os.environ.get("AIPROD_COMPILE"), "AIPROD_COMPILE"),
    )


def switch(text: str | None, name: str) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off (unset or empty: off)."""
    value = (text or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise BadInput(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {text!r}", field=name)


def memory_limit(text: str | None) -> float | None:
    """`AIPROD_MEMORY_LIMIT_GB`: a positive number of GiB the studio may use of the compute
    device (a GPU shared with other work, or a budget to test against); empty means no limit."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:  # also refuses nan and inf
        raise BadInput(
            f"AIPROD_MEMORY_LIMIT_GB must be a positive number of GiB, got {text!r}", field="AIPROD_MEMORY_LIMIT_GB"
        )
    return value
