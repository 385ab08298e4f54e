"""Samples of a training run: any saved checkpoint rendered beside the base model at one seed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.training import TrainConfig
from engine.models import loras
from engine.models.pipelines import warm_pipeline
from engine.render.clip import render_to_file
from engine.training.checkpoints import checkpoint_dir, checkpoint_steps
from engine.training.files import run_dir_for

if TYPE_CHECKING:
    from engine.studio import Studio


def render_checkpoint_sample(
    studio: Studio, job_id: int, step: int, prompt: str, seed: int = 0, strength: float = 1.0
) -> tuple[Path, Path]:
    """The base model and the LoRA as saved at `step`, rendered at the same seed, side by side.

    The base clip is an ordinary recorded render; the checkpoint clip is written to
    `outputs/samples/` (a checkpoint is not a vault entry, so it is not in the history).
    """
    from safetensors.torch import load_file

    row = studio.history.get(job_id)
    if row.get("kind") != "train":
        raise BadInput(f"job_id {job_id} is not a training run", field="job_id")
    config = TrainConfig.model_validate(row["recipe"])
    if step not in checkpoint_steps(studio.settings, job_id, config.name):
        raise BadInput(
            f"step: run {job_id} has no checkpoint at step {step} (saved: "
            f"{checkpoint_steps(studio.settings, job_id, config.name) or 'none yet'})",
            field="step",
        )
    recipe = studio.build_recipe(
        {"prompt": prompt or config.trigger or "a sample", "seed": seed, "model": config.model}
    )
    base = Path(studio.render(recipe)["output_path"])
    # the checkpoint holds peft keys: diffusers wants them under `transformer.`, scaled by alpha/rank
    tensors = load_file(
        str(checkpoint_dir(run_dir_for(studio.settings, job_id, config.name), step) / "lora.safetensors")
    )
    scale = config.lora_alpha / config.rank
    state = {f"transformer.{k}": (v * scale if "lora_B" in k else v) for k, v in tensors.items()}
    out = studio.settings.outputs_dir / "samples" / f"run{job_id:06d}-step{step:06d}-seed{seed}.mp4"
    entry = studio.vault.get(recipe.model, kind="pipeline")
    adapter = f"sample_{job_id}_{step}"
    with studio.device_lease("sample") as lease:
        pipe = warm_pipeline(lease, studio.vault, entry, recipe.quantization, recipe.offload)
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
