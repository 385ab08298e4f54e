"""A trained LoRA leaves the run: the exported files, and samples of any checkpoint.

`export` writes diffusers' `transformer.` naming with the run's metadata, loads it back
into a fresh pipeline to count every module, records it in the vault, and writes a
ComfyUI copy (`diffusion_model.` keys, alpha folded into `lora_B`) into the run folder.
`render_checkpoint_sample` renders any saved step beside the base model at one seed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.training import TrainConfig
from engine.training.files import run_dir_for, save_tensors
from engine.training.optim import target_regex
from engine.models.loras import BASE_DIGEST_KEY
from engine.models.pipelines import load_pipeline


def export(studio: Any, entry: Any, config: TrainConfig, lora: dict[str, torch.Tensor], run: Path, fp: str,
           steps: int, items: int) -> dict[str, Any]:
    """Write the diffusers and ComfyUI files, load the first back to count modules, record it in the vault."""
    import diffusers
    from safetensors import safe_open

    out = run / "export"
    out.mkdir(exist_ok=True)
    meta = {BASE_DIGEST_KEY: entry.digest, "aiprod.base_model": entry.name, "aiprod.rank": str(config.rank),
            "aiprod.alpha": str(config.lora_alpha), "aiprod.targets": json.dumps(list(config.targets)),
            "aiprod.trigger": config.trigger, "aiprod.steps": str(steps), "aiprod.dataset_fingerprint": fp}
    with tempfile.TemporaryDirectory() as tmp:
        adapter_meta = {"r": config.rank, "lora_alpha": config.lora_alpha, "target_modules": target_regex(config),
                        "peft_type": "LORA", "use_dora": False, "use_rslora": False}
        diffusers.LTX2Pipeline.save_lora_weights(tmp, transformer_lora_layers=lora,
                                                 transformer_lora_adapter_metadata=adapter_meta)
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

    # the file must load back into a fresh pipeline with every module injected
    pipe = load_pipeline(studio.vault, entry, studio.plan)
    try:
        pipe.load_lora_weights(str(main), adapter_name="check")
        injected = sum(1 for m in pipe.transformer.modules() if hasattr(m, "lora_A") and "check" in m.lora_A)
    finally:
        del pipe
    expected = sum(1 for k in lora if "lora_A" in k)
    if injected != expected:
        raise IntegrityError(f"the exported LoRA loads into {injected} modules, {expected} were trained")
    from aiprod_studio.vault.transfer import import_path

    recorded = import_path(studio.vault, main, config.name, kind="lora", family=entry.family,
                           derived_from=f"{entry.name}@{entry.digest}", license=entry.license,
                           description=f"LoRA trained on {entry.name}: rank {config.rank}, {steps} steps, "
                                       f"{items} clips" + (f", trigger {config.trigger!r}" if config.trigger else ""))
    return {"lora": recorded.name, "digest": recorded.digest, "file": str(studio.vault.file_path(recorded, main.name)),
            "comfyui_file": str(out / f"{config.name}-comfyui.safetensors"), "modules": injected}


def checkpoint_steps(settings: Any, job_id: int, name: str) -> list[int]:
    folder = run_dir_for(settings, job_id, name) / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*")) if folder.is_dir() else []


def render_checkpoint_sample(studio: Any, job_id: int, step: int, prompt: str, seed: int = 0,
                             strength: float = 1.0) -> tuple[Path, Path]:
    """The base model and the LoRA as saved at `step`, rendered at the same seed, side by side.

    The base clip is an ordinary recorded render; the checkpoint clip is written to
    `outputs/samples/` (a checkpoint is not a vault entry, so it is not in the history).
    """
    from safetensors.torch import load_file

    from engine.models import loras
    from engine.render.clip import render_to_file

    row = studio.history.get(job_id)
    if row.get("kind") != "train":
        raise BadInput(f"job_id {job_id} is not a training run", field="job_id")
    config = TrainConfig.model_validate(row["recipe"])
    if step not in checkpoint_steps(studio.settings, job_id, config.name):
        raise BadInput(f"step: run {job_id} has no checkpoint at step {step} (saved: "
                       f"{checkpoint_steps(studio.settings, job_id, config.name) or 'none yet'})", field="step")
    recipe = studio.build_recipe({"prompt": prompt or config.trigger or "a sample", "seed": seed,
                                  "model": config.model})
    base = Path(studio.render(recipe)["output_path"])
    # the checkpoint holds peft keys: diffusers wants them under `transformer.`, scaled by alpha/rank
    tensors = load_file(str(run_dir_for(studio.settings, job_id, config.name) / "checkpoints" / f"step-{step:06d}"
                            / "lora.safetensors"))
    scale = config.lora_alpha / config.rank
    state = {f"transformer.{k}": (v * scale if "lora_B" in k else v) for k, v in tensors.items()}
    out = studio.settings.outputs_dir / "samples" / f"run{job_id:06d}-step{step:06d}-seed{seed}.mp4"
    entry = studio.vault.get(recipe.model, kind="pipeline")
    adapter = f"sample_{job_id}_{step}"
    with studio._gpu_lock:
        pipe = studio.cache.get(studio.vault, entry, studio.plan, recipe.quantization, recipe.offload)
        loras.apply(pipe, studio.vault, [])
        pipe.load_lora_weights(state, adapter_name=adapter)
        try:
            if loras.injected_modules(pipe.transformer, adapter) != sum(1 for k in state if "lora_A" in k):
                raise IntegrityError(f"the checkpoint at step {step} does not fit {entry.name}")
            pipe.enable_lora()
            pipe.set_adapters([adapter], [strength])
            render_to_file(pipe, recipe, out)
        finally:
            pipe.delete_adapters([adapter])
            loras.apply(pipe, studio.vault, [])
    return base, out
