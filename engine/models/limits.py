"""What size and length a vault model can render, read from its own config files.

Nothing is loaded but JSON: the VAE's compression (`vae/config.json`), the transformer's
patch sizes (`transformer/config.json`) and the noise schedule (`scheduler/
scheduler_config.json`). `check_limits` refuses, before any weights load, a recipe the
model cannot render:

- the latent grid: width and height must be multiples of the VAE's spatial compression
  times the transformer's patch, num_frames − 1 a multiple of the temporal one;
- the noise schedule: LTX pipelines shift the flow-matching sigmas by an amount that grows
  linearly with the latent token count (`calculate_shift` over `base_image_seq_len`,
  `max_image_seq_len`, `base_shift`, `max_shift`), then `exp()` it. Past a token count that
  depends on the steps, the float32 sigmas all round to 1 and the terminal stretch divides
  0 by 0 (NaN frames after the whole render); further on `math.exp` overflows
  (`OverflowError: math range error`). The schedule is computed here exactly as the
  pipeline will compute it, and the largest token count that still gives a finite schedule
  is named in the error;
- a hard ceiling of `MAX_LATENT_TOKENS` for schedules that give no bound of their own.
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiprod_studio.conditions import check_slots
from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe

# A ceiling for schedules that give no bound of their own: about twice the tokens of a 10 s
# 4K clip at LTX-2's 32×32×8 compression. Past it one attention pass over the clip takes
# minutes even on the largest single device, and a render hours.
MAX_LATENT_TOKENS = 2**19

# The arguments each family's pipeline gives `calculate_shift` when its scheduler config is
# silent (LTX2Pipeline / LTXPipeline `__call__`, step "Prepare timesteps"), and whether it
# counts tokens after the transformer's patching (LTX-2: `latents.shape[1]`) or before.
_SHIFT_DEFAULTS = {
    "ltx2": {"base_image_seq_len": 1024, "max_image_seq_len": 4096, "base_shift": 0.95, "max_shift": 2.05},
    "ltx": {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15},
}
_PACKED_TOKENS = {"ltx2": True, "ltx": False}
# The pipelines' own fallbacks when a component is absent (32× spatial, 8× temporal, patch 1).
_DEFAULT_GRID = {"spatial": 32, "temporal": 8, "patch": 1, "patch_t": 1}


@dataclass
class ModelGrid:
    """The facts of one model folder that decide its latent grid and its noise schedule."""

    family: str
    spatial: int  # VAE spatial compression (pixels per latent cell)
    temporal: int  # VAE temporal compression (frames per latent frame, after the first)
    patch: int  # transformer spatial patch (latent cells per token side)
    patch_t: int  # transformer temporal patch
    scheduler: dict[str, Any] = field(default_factory=dict)  # scheduler_config.json

    def latent_shape(self, width: int, height: int, num_frames: int) -> tuple[int, int, int]:
        return (num_frames - 1) // self.temporal + 1, height // self.spatial, width // self.spatial

    def tokens(self, width: int, height: int, num_frames: int) -> int:
        """The video token count the transformer attends over (the pipeline's sequence length)."""
        f, h, w = self.latent_shape(width, height, num_frames)
        return (f // self.patch_t) * (h // self.patch) * (w // self.patch)

    def shift_tokens(self, tokens: int) -> int:
        """The sequence length the pipeline passes to `calculate_shift` for `tokens` tokens."""
        return tokens if _PACKED_TOKENS.get(self.family, True) else tokens * self.patch_t * self.patch**2


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not a readable config: {exc}", field="model") from None


def read_grid(model_dir: Path, family: str = "ltx2") -> ModelGrid:
    """The model's grid and schedule from its config files (missing ones: the pipeline's defaults)."""
    model_dir = Path(model_dir)
    vae = _read_json(model_dir / "vae" / "config.json")
    transformer = _read_json(model_dir / "transformer" / "config.json")
    scheduler = _read_json(model_dir / "scheduler" / "scheduler_config.json")
    spatial, temporal = _DEFAULT_GRID["spatial"], _DEFAULT_GRID["temporal"]
    if vae:  # as AutoencoderKLLTX2Video / AutoencoderKLLTXVideo compute them
        scaling = sum(bool(s) for s in vae.get("spatio_temporal_scaling") or ())
        spatial = vae.get("spatial_compression_ratio") or vae.get("patch_size", 1) * 2**scaling
        temporal = vae.get("temporal_compression_ratio") or vae.get("patch_size_t", 1) * 2**scaling
    return ModelGrid(
        family=family,
        spatial=int(spatial),
        temporal=int(temporal),
        patch=int(transformer.get("patch_size", _DEFAULT_GRID["patch"])),
        patch_t=int(transformer.get("patch_size_t", _DEFAULT_GRID["patch_t"])),
        scheduler=scheduler,
    )


def _calculate_shift(
    seq_len: int, base_seq_len: float, max_seq_len: float, base_shift: float, max_shift: float
) -> float:
    """The LTX pipelines' `calculate_shift`: a line through (base, base_shift) and (max, max_shift)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * m + base_shift - m * base_seq_len


def _make_scheduler(grid: ModelGrid) -> Any | None:
    """The model's scheduler built from its config alone, or None when it is not one we can simulate."""
    import diffusers

    cls = getattr(diffusers, str(grid.scheduler.get("_class_name", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        return None
    params = inspect.signature(cls.set_timesteps).parameters
    if "sigmas" not in params or "mu" not in params:
        return None
    return cls.from_config(grid.scheduler)


def schedule(grid: ModelGrid, tokens: int, steps: int, scheduler: Any | None = None) -> np.ndarray | None:
    """The sigmas a render of `tokens` tokens in `steps` steps runs with, computed as the
    pipeline computes them; raises OverflowError/ValueError where the pipeline would.
    None when the model's scheduler cannot be simulated."""
    from engine.render.schedule import scheduler_for_steps

    scheduler = scheduler or _make_scheduler(grid)
    if scheduler is None:
        return None
    # The pipeline reads the shift from the built scheduler's config (which holds the class's
    # defaults for keys the file leaves out), falling back to its own defaults.
    defaults = _SHIFT_DEFAULTS.get(grid.family, _SHIFT_DEFAULTS["ltx2"])
    mu = _calculate_shift(grid.shift_tokens(tokens), *(scheduler.config.get(k, v) for k, v in defaults.items()))
    scheduler = scheduler_for_steps(scheduler, steps)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
    return scheduler.sigmas.detach().cpu().numpy()


def _schedule_ok(grid: ModelGrid, tokens: int, steps: int, scheduler: Any) -> bool:
    try:
        sigmas = schedule(grid, tokens, steps, scheduler)
    except (OverflowError, ZeroDivisionError, ValueError):
        return False
    return sigmas is None or bool(np.isfinite(sigmas).all())


def max_tokens(grid: ModelGrid, steps: int) -> int:
    """The largest token count whose schedule at `steps` steps is finite (≤ MAX_LATENT_TOKENS);
    0 when none is."""
    scheduler = _make_scheduler(grid)
    if scheduler is None or not scheduler.config.get("use_dynamic_shifting"):
        return MAX_LATENT_TOKENS if _schedule_ok(grid, 1, steps, scheduler) else 0
    if _schedule_ok(grid, MAX_LATENT_TOKENS, steps, scheduler):
        return MAX_LATENT_TOKENS
    lo, hi = 0, MAX_LATENT_TOKENS  # ok(lo) (or lo == 0), not ok(hi); the schedule only worsens with tokens
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _schedule_ok(grid, mid, steps, scheduler):
            lo = mid
        else:
            hi = mid
    return lo


def check_grid(grid: ModelGrid, recipe: Recipe, name: str) -> None:
    """Width, height and num_frames must fall on the model's latent grid (never rounded)."""
    cell = grid.spatial * grid.patch
    for key in ("width", "height"):
        value = getattr(recipe, key)
        if value % cell:
            raise BadInput(
                f"{key} must be a multiple of {cell} for {name} (VAE {grid.spatial}× × patch "
                f"{grid.patch}), got {value}",
                field=key,
            )
    frames_step = grid.temporal * grid.patch_t
    if (recipe.num_frames - 1) % frames_step:
        raise BadInput(f"num_frames must be {frames_step}k+1 for {name}, got {recipe.num_frames}", field="num_frames")
    problem = check_slots(recipe.conditions, grid.temporal)  # one picture per latent frame
    if problem:
        raise BadInput(f"conditions: {problem}", field="conditions")


def check_model_dir(model_dir: Path, recipe: Recipe, family: str = "ltx2", name: str | None = None) -> int:
    """Refuse a recipe the model in `model_dir` cannot render; returns its latent token count."""
    name = name or Path(model_dir).name
    grid = read_grid(model_dir, family)
    check_grid(grid, recipe, name)
    tokens = grid.tokens(recipe.width, recipe.height, recipe.num_frames)
    if tokens <= MAX_LATENT_TOKENS and _schedule_ok(grid, tokens, recipe.steps, _make_scheduler(grid)):
        return tokens
    limit = max_tokens(grid, recipe.steps)
    if limit == 0:
        raise BadInput(
            f"steps {recipe.steps} gives {name} a broken noise schedule (NaN sigmas) at any size: use more steps",
            field="steps",
        )
    f, h, w = grid.latent_shape(recipe.width, recipe.height, recipe.num_frames)
    # Name the dimension that contributes most (in latent cells) as the field to lower.
    biggest = max((("width", w), ("height", h), ("num_frames", f)), key=lambda kv: kv[1])[0]
    why = (
        "its noise schedule turns to NaN or overflows beyond that"
        if limit < MAX_LATENT_TOKENS
        else "a render that long would take hours on one device"
    )
    side = max_square_side(grid, limit, recipe.num_frames)
    hint = f" (at {recipe.num_frames} frames: up to {side}×{side})" if side else " (fewer num_frames first)"
    raise BadInput(
        f"num_frames × width × height = {recipe.num_frames} × {recipe.width} × {recipe.height} makes "
        f"{tokens:,} latent tokens, more than {name} ({family}) supports at {recipe.steps} steps "
        f"(max {limit:,}: {why}); lower width, height or num_frames{hint}",
        field=biggest,
    )


def check_limits(vault: Any, entry: Any, recipe: Recipe) -> int:
    """`check_model_dir` for a vault pipeline entry; returns the recipe's latent token count."""
    return check_model_dir(vault.entry_dir(entry), recipe, family=entry.family, name=entry.name)


def max_square_side(grid: ModelGrid, tokens: int, num_frames: int) -> int:
    """The largest square side in pixels that keeps `num_frames` frames within `tokens` tokens,
    on both the model's grid and the recipe's (multiples of 32); 0 when none fits."""
    f = max(((num_frames - 1) // grid.temporal + 1) // grid.patch_t, 1)
    cell = grid.spatial * grid.patch
    side = math.isqrt(tokens // f) * cell
    step = math.lcm(cell, 32)
    return side // step * step
