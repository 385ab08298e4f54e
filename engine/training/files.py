"""Where a LoRA training run keeps its files, and the preprocessing cache runs share.

- `run_dir_for`: the run folder, `<data>/training/<job>-<name>/` (config, dataset.jsonl,
  checkpoints, export).
- `preprocess`: VAE latents for every clip, then text embeddings for every caption (one
  model in use at a time), cached as `<data>/training/.precomputed/<key>.<kind>.safetensors`,
  written atomically and shared by runs. A cache file is reused only when its key (model
  digest, bucket, trigger, the clip's sha256 and caption) matches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from aiprod_studio.errors import Cancelled
from aiprod_studio.files import atomic
from aiprod_studio.settings import Settings
from engine.training import dataset as ds

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline


def cache_dir(settings: Settings) -> Path:
    """Shared by every run: an entry is keyed by model, bucket, trigger, clip and caption."""
    return settings.data_dir / "training" / ".precomputed"


def run_dir_for(settings: Settings, job_id: int, name: str) -> Path:
    return settings.data_dir / "training" / f"{job_id:06d}-{name}"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    atomic.replace_durably(tmp, path)


def _cached(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # noqa: BLE001 - a damaged cache file is simply rebuilt
        return None


def preprocess(
    pipe: Pipeline,
    root: Path,
    items: list[ds.Item],
    bucket: tuple[int, int, int],
    trigger: str,
    digest: str,
    cache: Path,
    max_tokens: int,
    progress: Callable[[int, int], None],
    cancel: threading.Event | None,
) -> list[dict[str, torch.Tensor]]:
    """Latents then text embeddings, from the cache or encoded into it; one training sample per item.
    `progress(done, total)` after each item of each pass."""
    cache.mkdir(parents=True, exist_ok=True)
    device = pipe._execution_device if hasattr(pipe, "_execution_device") else torch.device("cpu")
    samples: list[dict[str, torch.Tensor]] = [{} for _ in items]
    total = 2 * len(items)
    with torch.no_grad():
        for n, item in enumerate(items):  # 1. the VAE only
            if cancel is not None and cancel.is_set():
                raise Cancelled("preprocessing cancelled")
            key = ds.latent_key(item, bucket, digest)
            path = cache / f"{key[:32]}.latents.safetensors"
            found = _cached(path, key)
            if found is None:
                x = ds.load_clip(root, item, bucket).unsqueeze(0).to(device, pipe.vae.dtype)
                lat = pipe.vae.encode(x).latent_dist.mode()
                lat = pipe._normalize_latents(
                    lat, pipe.vae.latents_mean, pipe.vae.latents_std, pipe.vae.config.scaling_factor
                )
                found = {"latents": lat[0].float().cpu()}
                save_tensors(path, found, {"key": key, "media": item.path})
            samples[n].update(found)
            progress(n + 1, total)
        for n, item in enumerate(items):  # 2. the text encoder only
            if cancel is not None and cancel.is_set():
                raise Cancelled("preprocessing cancelled")
            key = ds.text_key(item, trigger, digest)
            path = cache / f"{key[:32]}.text.safetensors"
            found = _cached(path, key)
            if found is None:
                embeds, mask, _, _ = pipe.encode_prompt(
                    ds.caption_with_trigger(item.caption, trigger),
                    do_classifier_free_guidance=False,
                    max_sequence_length=max_tokens,
                    device=device,
                )
                video_ctx, audio_ctx, ctx_mask = pipe.connectors(embeds, mask, padding_side="left")
                found = {
                    "video": video_ctx[0].float().cpu(),
                    "audio": audio_ctx[0].float().cpu(),
                    "mask": ctx_mask[0].float().cpu(),
                }
                save_tensors(path, found, {"key": key, "caption": item.caption})
            samples[n].update(found)
            progress(len(items) + n + 1, total)
    return samples
