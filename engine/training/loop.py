"""LoRA training on a vault pipeline's transformer: preprocess once, train, checkpoint, export.

1. The dataset is validated and bucketed; its canonical `dataset.jsonl` goes into the run
   folder (`<data>/training/<job>-<name>/`).
2. Preprocess (`engine/training/files.py`): VAE latents and text embeddings, from the cache
   that runs share or encoded into it.
3. Train: peft LoRA on the video attention (`to_q`, `to_k`, `to_v`, `to_out.0`, feed-forward
   optional) with the flow-matching loss — `x_t = (1-σ)x0 + σε`, the transformer predicts
   `ε - x0`, MSE — σ from a shifted logit-normal; AdamW with warmup then constant or
   cosine; through `accelerate`. Data order, σ and noise all come from one seeded
   generator, so a resumed run follows the same loss curve.
4. Every checkpoint holds the LoRA and the whole state (optimizer, scheduler, generators,
   step) and is written to a temp folder then renamed; it is refused when a weight is
   NaN/Inf or every `lora_B` is still zero.
5. Export (`engine/training/export.py`): diffusers' `transformer.` naming plus metadata (base digest, rank, alpha,
   targets, trigger, steps, dataset fingerprint), loaded back into a fresh pipeline to count
   every module, then recorded in the vault; a ComfyUI copy (`diffusion_model.` keys, alpha
   folded into `lora_B`) is written beside it in the run folder.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aiprod_studio.files import atomic
from aiprod_studio.errors import BadInput, Cancelled, IntegrityError, failure_text
from aiprod_studio.jobs.owner import Heartbeat
from aiprod_studio.training import TrainConfig
from engine.training import dataset as ds
from engine.device.plan import free_memory
from engine.models.interrupt import cancel_points
from engine.training.files import cache_dir, preprocess, run_dir_for, save_tensors
from engine.training.optim import LR_SCHEDULE, check_lora, lr_factor, target_regex
from engine.models.pipelines import load_pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainProgress:
    phase: str  # preprocess | train | export
    step: int
    total: int
    loss: float | None = None
    lr: float | None = None
    s_per_step: float | None = None

    @property
    def eta_s(self) -> float | None:
        return self.s_per_step * (self.total - self.step) if self.s_per_step else None


def _lora_tensors(model: Any) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def train(studio: Any, job_id: int | None, config: TrainConfig,
          progress: Callable[[TrainProgress], None] | None = None, cancel: threading.Event | None = None,
          stop_at: int | None = None) -> dict[str, Any]:
    """Run (or resume) the training of job `job_id`; returns the exported LoRA's facts.

    Under `accelerate launch` / `torchrun` every process runs this: the main one owns the
    job row, the run folder, the cache, the checkpoints and the export (other processes
    pass `job_id=None` and receive it); each process trains on its own share of every
    batch and accelerate averages the gradients.
    """
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list
    from peft import LoraConfig, set_peft_model_state_dict

    accelerator = Accelerator(cpu=studio.plan.device.type == "cpu",
                              mixed_precision="bf16" if studio.plan.device.type == "cuda" else "no")
    main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    if world > 1:
        job_id = broadcast_object_list([job_id])[0]
    report = progress if (progress is not None and main) else (lambda p: None)
    history, vault = studio.history, studio.vault
    if not main:  # only the main process writes the database
        history = _NoWrites(history)

    # 1. Model, dataset, bucket, run folder.
    entry = vault.get(config.model or studio.default_model() or "", kind="pipeline")
    vault.check_new_name(config.name)
    history.set_model_digest(job_id, entry.digest)
    memory = (torch.cuda.get_device_properties(studio.plan.device).total_memory / 2**30
              if studio.plan.device.type == "cuda" else None)
    data = ds.validate(config.dataset)
    if not data.items:
        raise BadInput("dataset: no usable items: " + "; ".join(str(f) for f in data.findings), field="dataset")
    proposed = ds.propose_bucket(data.items, memory)
    bucket = (config.width or proposed[0], config.height or proposed[1], config.num_frames or proposed[2])
    ds.apply_bucket(data, bucket[2])
    if not data.items:
        raise BadInput("dataset: no usable items: " + "; ".join(str(f) for f in data.findings), field="dataset")
    fp = ds.fingerprint(data.items, bucket, config.trigger, entry.digest)
    run = run_dir_for(studio.settings, job_id, config.name)
    if main:
        run.mkdir(parents=True, exist_ok=True)
        ds.write_canonical(data, run)
        atomic.write_text(run / "config.json", config.model_dump_json(indent=1))

    # 2. Pipeline and cache (the text encoder and VAE are dropped before training).
    pipe = load_pipeline(vault, entry, studio.plan, config.quantization)
    max_tokens = int(entry.defaults.get("advanced", {}).get("max_sequence_length", 256))
    if not main:
        accelerator.wait_for_everyone()  # the main process fills the cache first; the others then only read it
    with cancel_points([pipe.vae, pipe.text_encoder], cancel if world == 1 else None,
                       message="training stopped while preparing the dataset"):
        samples = preprocess(pipe, Path(data.folder), data.items, bucket, config.trigger, entry.digest,
                             cache_dir(studio.settings), max_tokens,
                             lambda done, total: report(TrainProgress("preprocess", done, total)), cancel)
    if main:
        accelerator.wait_for_everyone()
    transformer = pipe.transformer
    geometry = {"audio_sr": pipe.audio_sampling_rate, "hop": pipe.audio_hop_length,
                "a_ratio": pipe.audio_vae_temporal_compression_ratio,
                "a_channels": pipe.audio_vae.config.latent_channels * (pipe.audio_vae.config.mel_bins
                                                                        // pipe.audio_vae_mel_compression_ratio),
                "patch": pipe.transformer_spatial_patch_size, "patch_t": pipe.transformer_temporal_patch_size,
                "t_ratio": pipe.vae_temporal_compression_ratio, "pack": pipe._pack_latents}
    pipe.text_encoder = pipe.vae = pipe.audio_vae = pipe.vocoder = None
    free_memory(studio.plan.device)

    # 3. LoRA, optimizer, schedule, generators.
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # the LoRA's initial weights depend on the seed alone
        torch.manual_seed(config.seed)
        transformer.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, init_lora_weights=True,
                                           target_modules=target_regex(config)))
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise IntegrityError("the LoRA targets matched no layer of the transformer")
    for p in params:
        p.data = p.data.float()
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise BadInput("optimizer adamw8bit needs bitsandbytes, which is not installed", field="optimizer") from None
        optimizer = bnb.optim.AdamW8bit(params, lr=config.lr)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    rule = {"lr_schedule": LR_SCHEDULE}  # a run resumed from an older checkpoint keeps its own schedule
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: lr_factor(config, done, rule["lr_schedule"]))
    transformer, optimizer, schedule = accelerator.prepare(transformer, optimizer, schedule)
    gen = torch.Generator("cpu").manual_seed(config.seed)
    order: list[int] = []
    step = 0
    checkpoints = run / "checkpoints"
    latest = max(checkpoints.glob("step-*"), default=None, key=lambda p: int(p.name.split("-")[1]))
    if latest is not None:  # resume: the exact state of the last checkpoint
        from safetensors.torch import load_file

        state = torch.load(latest / "state.pt", weights_only=True)
        if state["fingerprint"] != fp:
            raise BadInput(f"the dataset or settings changed since {latest.name} (fingerprint differs): start a new "
                           "run", field="resume")
        set_peft_model_state_dict(accelerator.unwrap_model(transformer), load_file(str(latest / "lora.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        order, step = list(state["order"]), int(state["step"])
        rule["lr_schedule"] = int(state.get("lr_schedule", 1))
        log.info("resuming %s from %s", config.name, latest.name)

    def save_checkpoint(at: int) -> None:
        tensors = {k: v.detach().float() for k, v in _lora_tensors(accelerator.unwrap_model(transformer)).items()}
        check_lora(tensors, at)
        if not main:
            return
        tmp = checkpoints / f".step-{at:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_tensors(tmp / "lora.safetensors", tensors, {"step": str(at)})
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(), "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "order": order, "step": at, "fingerprint": fp,
                    "lr_schedule": rule["lr_schedule"]},
                   tmp / "state.pt")
        atomic.fsync_tree(tmp)
        final = checkpoints / f"step-{at:06d}"
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)

    # 4. The loop.
    device = accelerator.device
    transformer.train()
    pending: list[tuple[int, float, float, float]] = []
    end = min(config.steps, stop_at or config.steps)
    try:
        while step < end:
            started = time.perf_counter()
            # a cancel inside the step (within one block) leaves the state of the last whole step
            before = (gen.get_state(), list(order), torch.get_rng_state())
            per, need = config.batch_size, config.batch_size * world  # every process draws the same numbers
            while len(order) < need:
                order += torch.randperm(len(samples), generator=gen).tolist()
            picked = [order.pop(0) for _ in range(need)]
            batch = [samples[i] for i in picked[rank * per:(rank + 1) * per]]
            x0 = torch.stack([b["latents"] for b in batch]).to(device)  # B,C,F,H,W
            _, _, f_lat, h_lat, w_lat = x0.shape
            x0 = geometry["pack"](x0, geometry["patch"], geometry["patch_t"])
            noise = torch.randn((need, *x0.shape[1:]), generator=gen)[rank * per:(rank + 1) * per].to(device)
            sigma = torch.sigmoid(torch.randn(need, generator=gen))[rank * per:(rank + 1) * per]
            sigma = (config.timestep_shift * sigma / (1 + (config.timestep_shift - 1) * sigma)).to(device)
            x_t = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
            frames = (f_lat - 1) * geometry["t_ratio"] + 1
            a_frames = max(1, round(frames / config.fps * geometry["audio_sr"] / geometry["hop"] / geometry["a_ratio"]))
            unwrapped = accelerator.unwrap_model(transformer)
            try:
                with cancel_points([transformer], cancel if world == 1 else None,
                                   message=f"training stopped in step {step + 1}"), accelerator.autocast():
                    pred, _ = transformer(
                        hidden_states=x_t, audio_hidden_states=torch.zeros(x0.shape[0], a_frames,
                                                                           geometry["a_channels"], device=device),
                        encoder_hidden_states=torch.stack([b["video"] for b in batch]).to(device),
                        audio_encoder_hidden_states=torch.stack([b["audio"] for b in batch]).to(device),
                        timestep=sigma * 1000, sigma=sigma * 1000,
                        encoder_attention_mask=torch.stack([b["mask"] for b in batch]).to(device),
                        audio_encoder_attention_mask=torch.stack([b["mask"] for b in batch]).to(device),
                        num_frames=f_lat, height=h_lat, width=w_lat, fps=float(config.fps),
                        audio_num_frames=a_frames,
                        video_coords=unwrapped.rope.prepare_video_coords(x0.shape[0], f_lat, h_lat, w_lat, device,
                                                                         fps=float(config.fps)),
                        audio_coords=unwrapped.audio_rope.prepare_audio_coords(x0.shape[0], a_frames, device),
                        isolate_modalities=True, use_cross_timestep=True, return_dict=False)
                    loss = torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())
                with cancel_points([transformer], cancel if world == 1 else None):  # a checkpointed recompute
                    accelerator.backward(loss)
            except Cancelled:
                gen.set_state(before[0])
                order[:] = before[1]
                torch.set_rng_state(before[2])
                optimizer.zero_grad(set_to_none=True)
                if step > 0:
                    save_checkpoint(step)
                raise Cancelled(f"training stopped at step {step}; resume it to continue") from None
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seconds = time.perf_counter() - started
            lr = float(schedule.get_last_lr()[0])
            value = accelerator.reduce(loss.detach(), reduction="mean").item() if world > 1 else loss.detach().item()
            if not math.isfinite(value):
                raise IntegrityError(f"the loss is {value} at step {step}: lower the learning rate")
            pending.append((step, value, lr, seconds))
            history.set_progress(job_id, step, config.steps)
            report(TrainProgress("train", step, config.steps, value, lr, seconds))
            checkpoint = step % config.save_every == 0 or step == config.steps
            stopping = cancel is not None and cancel.is_set() and step < config.steps
            if len(pending) >= 10 or step == end or checkpoint or stopping:
                history.add_metrics(job_id, pending)
                pending = []
            if checkpoint or stopping:
                save_checkpoint(step)
            if stopping:
                raise Cancelled(f"training stopped at step {step}; resume it to continue")
    finally:  # the loss curve up to the stop is kept, whatever stopped the loop
        if pending:
            history.add_metrics(job_id, pending)
    if step < config.steps:  # stop_at: a partial run (tests, previews)
        return {"step": step, "run_dir": str(run)}

    # 5. Export and record.
    report(TrainProgress("export", step, config.steps))
    lora = {k: v.detach().float() for k, v in _lora_tensors(accelerator.unwrap_model(transformer)).items()}
    check_lora(lora, step)
    accelerator.wait_for_everyone()
    if not main:
        return {"step": step, "run_dir": str(run), "process": rank}
    transformer = pipe = optimizer = None  # freed before the export loads the base model again
    free_memory(studio.plan.device)
    from engine.training.export import export

    result = export(studio, entry, config, lora, run, fp, step, len(data.items))
    return result | {"step": step, "run_dir": str(run), "bucket": list(bucket), "items": len(data.items)}


class _NoWrites:
    """The history as seen by a secondary training process: reads pass, writes are dropped."""

    def __init__(self, history: Any):
        self._history = history

    def __getattr__(self, name: str) -> Any:
        if name in ("set_model_digest", "set_progress", "add_metrics"):
            return lambda *a, **k: None
        return getattr(self._history, name)


def run_job(studio: Any, job_id: int, progress: Callable[[TrainProgress], None] | None = None,
            cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run a `train` job whose row is already `running`; the row ends done / cancelled / failed."""
    history = studio.history
    row = history.get(job_id)
    config = TrainConfig.model_validate(row["recipe"])
    started = time.perf_counter()
    history.mark_running(job_id)
    cancel = cancel if cancel is not None else threading.Event()  # also set by a cancel from elsewhere
    with Heartbeat(lambda: history.beat(job_id), cancel):  # the row shows this process is alive
        try:
            with studio._gpu_lock:
                result = train(studio, job_id, config, progress, cancel)
            history.mark_done(job_id, result["file"], time.perf_counter() - started)
        except Cancelled as exc:
            history.mark_failed(job_id, str(exc), status="cancelled")
            raise
        except KeyboardInterrupt:
            history.mark_failed(job_id, "interrupted by the user; resume to continue from the last checkpoint",
                                status="cancelled")
            raise
        except Exception as exc:
            history.mark_failed(job_id, failure_text(exc))
            raise
    return history.get(job_id) | {"result": result}
