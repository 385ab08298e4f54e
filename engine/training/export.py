"""A trained LoRA leaves the run: the exported files, checked and recorded in the vault.

`export` writes diffusers' `transformer.` naming with the run's metadata, loads it back
into the trained transformer (as a second adapter, removed after) to count every module
— no second copy of the model is loaded — records it in the vault, and writes a ComfyUI
copy (`diffusion_model.` keys, alpha folded into `lora_B`) into the run folder.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aiprod_studio.errors import IntegrityError
from aiprod_studio.training import TrainConfig
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.transfer import import_path
from engine.models.loras import BASE_DIGEST_KEY, GENERATION_KEY, injected_modules
from engine.training.files import save_tensors
from engine.training.optim import target_regex

if TYPE_CHECKING:
    from engine.studio import Studio

CHECK_ADAPTER = "aiprod_export_check"


def export(
    studio: Studio,
    entry: Entry,
    config: TrainConfig,
    lora: dict[str, torch.Tensor],
    run: Path,
    fp: str,
    steps: int,
    items: int,
    transformer: Any,
) -> dict[str, Any]:
    """Write the diffusers and ComfyUI files, load the first back into `transformer` (the one
    just trained) to count modules, record it in the vault."""
    # (one function on purpose: the files written, the load-back check and the vault record happen in this order or not
    # at all)
    import diffusers
    from safetensors import safe_open

    out = run / "export"
    out.mkdir(exist_ok=True)
    generation = studio.generation(entry)  # its shapes are this generation's: other generations refuse it
    meta = {
        BASE_DIGEST_KEY: entry.digest,
        GENERATION_KEY: generation.version if generation else "",
        "aiprod.base_model": entry.name,
        "aiprod.rank": str(config.rank),
        "aiprod.alpha": str(config.lora_alpha),
        "aiprod.targets": json.dumps(list(config.targets)),
        "aiprod.trigger": config.trigger,
        "aiprod.steps": str(steps),
        "aiprod.dataset_fingerprint": fp,
    }
    with tempfile.TemporaryDirectory() as tmp:
        adapter_meta = {
            "r": config.rank,
            "lora_alpha": config.lora_alpha,
            "target_modules": target_regex(config),
            "peft_type": "LORA",
            "use_dora": False,
            "use_rslora": False,
        }
        diffusers.LTX2Pipeline.save_lora_weights(
            tmp, transformer_lora_layers=lora, transformer_lora_adapter_metadata=adapter_meta
        )
        with safe_open(f"{tmp}/pytorch_lora_weights.safetensors", "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            saved_meta = f.metadata() or {}
    main = out / f"{config.name}.safetensors"
    save_tensors(main, tensors, saved_meta | meta)
    comfy = {}
    scale = config.lora_alpha / config.rank
    for k, v in lora.items():
        comfy["diffusion_model." + k] = v * scale if "lora_B" in k else v
    save_tensors(out / f"{config.name}-comfyui.safetensors", comfy, meta)

    # the file must load back, every module injected (into the trained transformer: no second model)
    state, saved = diffusers.LTX2Pipeline.lora_state_dict(str(main), return_lora_metadata=True)
    with warnings.catch_warnings():  # peft warns that a second adapter joins the trained one: that is the check
        warnings.simplefilter("ignore", UserWarning)
        diffusers.LTX2Pipeline.load_lora_into_transformer(
            {k: v for k, v in state.items() if k.startswith("transformer.")},
            transformer=transformer,
            adapter_name=CHECK_ADAPTER,
            metadata=saved,
        )
        try:
            injected = injected_modules(transformer, CHECK_ADAPTER)
        finally:
            transformer.delete_adapters([CHECK_ADAPTER])
    expected = sum(1 for k in lora if "lora_A" in k)
    if injected != expected:
        raise IntegrityError(f"the exported LoRA loads into {injected} modules, {expected} were trained")
    recorded = import_path(
        studio.vault,
        main,
        config.name,
        kind="lora",
        family=entry.family,
        derived_from=f"{entry.name}@{entry.digest}",
        generation=generation.version if generation else None,
        license=entry.license,
        description=f"LoRA trained on {entry.name}: rank {config.rank}, {steps} steps, "
        f"{items} clips" + (f", trigger {config.trigger!r}" if config.trigger else ""),
    )
    return {
        "lora": recorded.name,
        "digest": recorded.digest,
        "file": str(studio.vault.file_path(recorded, main.name)),
        "comfyui_file": str(out / f"{config.name}-comfyui.safetensors"),
        "modules": injected,
    }
