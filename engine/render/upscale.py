"""Two-stage 2× upscale: the quality path LTX-2's documentation recommends.

Stage 1 renders the recipe at its own size and stops at the latents. A latent upsampler
from the vault (kind `upsampler`, diffusers' `LTX2LatentUpsamplerModel`) doubles their
width and height (`LTX2LatentUpsamplePipeline`), and stage 2 refines them at the doubled
size in a few steps of LTX-2's stage-2 schedule, starting from them re-noised to the
schedule's first sigma: no guidance (as LTX-2's own second stage), the sound refined from
stage 1's the same way, the pictures (if any) held again at the doubled size. The frame
count stays; width and height double.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aiprod_studio.errors import BadInput
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.store import Vault

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

# LTX-2's stage-2 refine schedule (diffusers' `STAGE_2_DISTILLED_SIGMA_VALUES`)
STAGE_2_SIGMAS = [0.909375, 0.725, 0.421875]
SUBFOLDER = "latent_upsampler"  # where LTX-2's repository keeps it (a provisioned entry holds that folder)
CACHE_ATTR = "_aiprod_upsampler"


def model_folder(folder: Path) -> Path:
    """The folder holding the upsampler's config: the entry's own, or its `latent_upsampler/`."""
    return folder if (folder / "config.json").is_file() else folder / SUBFOLDER


def check_upsampler(vault: Vault, entry: Entry, pipeline: Entry | None = None) -> None:
    """Refuse (field `upsampler`) an entry that is not a 2× spatial latent upsampler diffusers can load, or,
    given the `pipeline`, one whose latent channels differ from its VAE's or whose weights are the test
    model's for a real one (by their configs: nothing loaded)."""
    config = _config(model_folder(vault.entry_dir(entry)) / "config.json", f"upsampler {entry.name!r}")
    two_times = not config.get("use_rational_resampler", True) or config.get("rational_spatial_scale", 2.0) == 2.0
    if (
        config.get("_class_name") != "LTX2LatentUpsamplerModel"
        or not config.get("spatial_upsample", True)
        or config.get("temporal_upsample", False)
        or not two_times
    ):
        raise BadInput(
            f"upsampler {entry.name!r} is not a 2× spatial LTX2LatentUpsamplerModel ({config.get('_class_name')!r}, "
            f"scale {config.get('rational_spatial_scale')})",
            field="upsampler",
        )
    if pipeline is None:
        return
    vae = _config(vault.entry_dir(pipeline) / "vae" / "config.json", f"model {pipeline.name!r}'s VAE")
    if config.get("in_channels", 128) != vae.get("latent_channels", 128):
        raise BadInput(
            f"upsampler {entry.name!r} takes {config.get('in_channels', 128)}-channel latents, model "
            f"{pipeline.name!r} makes {vae.get('latent_channels', 128)}",
            field="upsampler",
        )
    if entry.test_model and not pipeline.test_model:
        raise BadInput(
            f"upsampler {entry.name!r} is the random test one; {pipeline.name!r} needs a real one (provision "
            "`ltx-2-upsampler`)",
            field="upsampler",
        )


def _config(path: Path, what: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadInput(f"{what} has no readable {path.name}", field="upsampler") from None
    if not isinstance(config, dict):
        raise BadInput(f"{what}: {path.name} is not a JSON object", field="upsampler")
    return config


def upsampler_for(pipe: Pipeline, vault: Vault, entry: Entry) -> Any:
    """The upsampler model beside the warm pipeline (same device and dtype), loaded once per entry digest."""
    cached = getattr(pipe, CACHE_ATTR, None)
    if cached is not None and cached[0] == entry.digest:
        return cached[1]
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    vault.require_ok(entry)
    check_upsampler(vault, entry)
    model = LTX2LatentUpsamplerModel.from_pretrained(
        model_folder(vault.entry_dir(entry)),
        local_files_only=True,
        use_safetensors=True,
        torch_dtype=pipe.transformer.dtype,
    ).eval()
    model.to(pipe._execution_device)
    setattr(pipe, CACHE_ATTR, (entry.digest, model))
    log.info("loaded latent upsampler %s", entry.name)
    return model


def upsample(pipe: Pipeline, upsampler: Any, latents: torch.Tensor) -> torch.Tensor:
    """Stage 1's (denormalised) video latents with twice the width and height, still denormalised."""
    from diffusers import LTX2LatentUpsamplePipeline

    runner = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)
    runner.set_progress_bar_config(disable=True)
    out = runner(latents=latents, latents_normalized=False, output_type="latent", return_dict=True)
    return out.frames


def refine_scheduler(scheduler: Any) -> Any:
    """Stage 2's scheduler: the model's, taking the refine sigmas as they are (no resolution shift, no
    stretch to a terminal sigma), as LTX-2's own two-stage pipeline does."""
    return type(scheduler).from_config(scheduler.config, use_dynamic_shifting=False, shift_terminal=None)


def stage_two_kwargs(kwargs: dict[str, Any], width: int, height: int, num_frames: int) -> dict[str, Any]:
    """Stage 1's pipeline arguments turned into stage 2's: the doubled size, the refine schedule,
    no guidance of any kind, the frame count stage 1 made."""
    out = {k: v for k, v in kwargs.items() if k not in ("min_seconds", "max_seconds")}
    out.update(
        width=width,
        height=height,
        num_frames=num_frames,
        sigmas=list(STAGE_2_SIGMAS),
        num_inference_steps=len(STAGE_2_SIGMAS),
        noise_scale=STAGE_2_SIGMAS[0],
        guidance_scale=1.0,
        stg_scale=0.0,
        audio_stg_scale=0.0,
        modality_scale=1.0,
        audio_modality_scale=1.0,
        audio_guidance_scale=1.0,
    )
    return out
