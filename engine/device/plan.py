"""Device and dtype policy: CUDA → bfloat16, CPU → float32; `--device` overrides."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from aiprod_studio.errors import BadInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    dtype: torch.dtype

    @property
    def label(self) -> str:
        return f"{self.device} ({str(self.dtype).removeprefix('torch.')})"


def resolve(preference: str = "auto") -> DevicePlan:
    """Turn `auto`, `cpu`, `cuda` or `cuda:N` into a device and its compute dtype."""
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cpu":
        return DevicePlan(torch.device("cpu"), torch.float32)
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"device {preference!r} was asked for but no CUDA GPU is available", field="device")
        dev = torch.device(pref)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInput(f"device {preference!r} does not exist ({torch.cuda.device_count()} GPU(s))", field="device")
        return DevicePlan(dev, torch.bfloat16)
    raise BadInput(f"device must be auto, cpu, cuda or cuda:N, got {preference!r}", field="device")


def memory_gb(plan: DevicePlan) -> float | None:
    """The device's total memory in GiB; None on the CPU (sizes are then the CPU's small ones)."""
    if plan.device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(plan.device).total_memory / 2**30


def free_memory(device: torch.device) -> None:
    """Give cached GPU memory back after a model is dropped."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
