"""A training run's checkpoints: `<run>/checkpoints/step-NNNNNN/` with the LoRA and the whole state.

Each holds `lora.safetensors` (peft's keys) and `state.pt` (optimizer, scheduler, data
order, generators, step, dataset fingerprint), is written under a temp name, fsynced,
then renamed, so a kill leaves either the whole checkpoint or none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from aiprod_studio.files import atomic
from aiprod_studio.settings import Settings
from engine.training.files import run_dir_for, save_tensors


def lora_tensors(model: Any) -> dict[str, torch.Tensor]:
    """The LoRA weights of a peft-adapted model, detached, in float32."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().float() for k, v in get_peft_model_state_dict(model).items()}


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:06d}"


def steps_in(run: Path) -> list[int]:
    folder = run / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*")) if folder.is_dir() else []


def checkpoint_steps(settings: Settings, job_id: int, name: str) -> list[int]:
    """The steps run `job_id` (LoRA `name`) has a checkpoint of, oldest first."""
    return steps_in(run_dir_for(settings, job_id, name))


def write_checkpoint(run: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    tmp = run / "checkpoints" / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(tmp / "lora.safetensors", tensors, {"step": str(step)})
    torch.save(state, tmp / "state.pt")
    atomic.fsync_tree(tmp)
    final = checkpoint_dir(run, step)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def read_latest(run: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
    """(step, LoRA tensors, state) of the run's last checkpoint, or None before the first."""
    from safetensors.torch import load_file

    steps = steps_in(run)
    if not steps:
        return None
    folder = checkpoint_dir(run, steps[-1])
    return steps[-1], load_file(str(folder / "lora.safetensors")), torch.load(folder / "state.pt", weights_only=True)
