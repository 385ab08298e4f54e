"""What decides whether a render can be reproduced bit for bit, and the switch that makes CUDA
deterministic.

`environment(plan)` is the recipe's `versions` block: the library versions, the device (and
on CUDA its name, the CUDA, cuDNN and driver versions) and whether deterministic mode was on.
`deterministic(plan)` turns on, for one block (a render holding the device lease, so no other
GPU work runs meanwhile), what makes CUDA kernels repeat themselves
(`torch.use_deterministic_algorithms(True, warn_only=True)`, cuDNN deterministic and not
benchmarking, a fixed cuBLAS workspace) and restores the previous settings after it. On the
CPU the studio's renders repeat without it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from engine.device.plan import DevicePlan

VERSIONED = ("aiprod-studio", "torch", "diffusers", "transformers", "optimum-quanto", "open_clip_torch")
CUBLAS_WORKSPACE = ":4096:8"  # the setting cuBLAS needs for repeatable results (CUDA ≥ 10.2)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def driver_version() -> str | None:
    """The NVIDIA driver's version as the kernel module reports it (no library needed)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    words = text.split()
    return next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), None)


def environment(plan: DevicePlan, deterministic: bool = False) -> dict[str, str]:
    """The recipe's `versions` block for a render on `plan`'s device (`deterministic`: in that mode)."""
    env = {**library_versions(), "device": plan.label}
    if plan.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(plan.device)
        env["cuda"] = str(torch.version.cuda)
        env["cudnn"] = str(torch.backends.cudnn.version())
        driver = driver_version()
        if driver:
            env["driver"] = driver
        env["deterministic"] = "on" if deterministic else "off"
    return env


@contextlib.contextmanager
def deterministic(plan: DevicePlan) -> Iterator[None]:
    """Within the block, CUDA work repeats itself; the previous settings come back after it."""
    if plan.device.type != "cuda":
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        enabled, warn_only, cudnn_det, cudnn_bench, workspace = before
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = workspace
