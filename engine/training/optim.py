"""The rules of a LoRA training run: which layers train, the learning-rate schedule, and the
checks every checkpoint passes.

The schedule is a linear warm-up that starts above zero — the first step already learns,
so a checkpoint after step 1 is a real one — followed by a constant rate or a cosine decay.
Runs checkpointed before this schedule existed (their state has no `lr_schedule`) resume
with the one they started with (warm-up from zero), so a resume stays exact.
"""

from __future__ import annotations

import math

import torch

from aiprod_studio.errors import IntegrityError
from aiprod_studio.training import TrainConfig

LR_SCHEDULE = 2  # recorded in every checkpoint's state


def target_regex(config: TrainConfig) -> str:
    """The transformer modules that get a LoRA: video attention (and the feed-forward, if asked)."""
    modules = "|".join(t.replace(".", r"\.") for t in config.targets)
    return (
        rf"^transformer_blocks\.\d+\.(attn1|attn2|ff)\.({modules}|net\.0\.proj|net\.2)$"
        if config.train_feed_forward
        else rf"^transformer_blocks\.\d+\.(attn1|attn2)\.({modules})$"
    )


def lr_factor(config: TrainConfig, done: int, schedule: int = LR_SCHEDULE) -> float:
    """The learning rate's multiplier for the step after `done` steps."""
    warm = min(config.warmup_steps, config.steps)
    if done < warm:
        return (done + 1) / (warm + 1) if schedule >= 2 else done / max(1, warm)
    if config.schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (done - warm) / max(1, config.steps - warm))))


def check_lora(tensors: dict[str, torch.Tensor], step: int) -> None:
    """A checkpoint is refused when a weight is NaN/Inf, or when every `lora_B` is still zero."""
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise IntegrityError(
            f"training diverged at step {step}: {len(bad)} LoRA weights are NaN/Inf "
            f"(e.g. {bad[0]}); lower the learning rate and resume from an earlier checkpoint"
        )
    b = [v for k, v in tensors.items() if "lora_B" in k]
    if step > 0 and b and all(float(v.abs().max()) == 0.0 for v in b):
        raise IntegrityError(
            f"every lora_B weight is still zero at step {step}: the LoRA learned nothing "
            "(learning rate too low, or the targets miss the model's layers)"
        )
