"""The tiny latent upsampler: diffusers' `LTX2LatentUpsamplerModel` at toy width, random weights,
for the tiny models' 8 latent channels. It runs the two-stage 2× upscale path (load from the
vault, upsample the latents, refine) on the CPU in a fraction of a second."""

from __future__ import annotations

from typing import Any

import torch

from aiprod_studio.vault.manifest import KIND_DIRS
from engine.models.tiny import write_atomically

TINY_UPSAMPLER_NAME = "aiprod-tiny-upsampler"
LATENT_CHANNELS = 8  # the tiny VAEs' (every generation's)


def build_upsampler(seed: int = 0) -> Any:
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    torch.manual_seed(seed)
    return LTX2LatentUpsamplerModel(
        in_channels=LATENT_CHANNELS,
        mid_channels=32,  # (its GroupNorm groups are 32 channels)
        num_blocks_per_stage=1,
        dims=3,
        spatial_upsample=True,
        temporal_upsample=False,
        rational_spatial_scale=2.0,
        use_rational_resampler=False,
    ).eval()


def make_tiny_upsampler(vault: Any, name: str = TINY_UPSAMPLER_NAME, seed: int = 0) -> Any:
    """Build the tiny upsampler into the vault (`upsamplers/<name>`) and record it as an `upsampler` entry."""
    model = build_upsampler(seed)
    rel = f"{KIND_DIRS['upsampler']}/{name}"
    write_atomically(vault.root / rel, lambda tmp: model.save_pretrained(tmp, safe_serialization=True))
    return vault.record(
        name,
        "upsampler",
        "ltx2",
        rel,
        license="Apache-2.0",
        test_model=True,
        description="AIPROD tiny random latent upsampler (2× spatial): exercises the two-stage upscale offline.",
    )
