"""LoRA training on a vault pipeline's transformer: preprocess once, train, checkpoint, export.

1. The dataset is validated and bucketed; its canonical `dataset.jsonl` goes into the run
   folder (`<data>/training/<job>-<name>/`).
2. Preprocess (`engine/training/files.py`): VAE latents and text embeddings, from the cache
   that runs share or encoded into it. The pipeline is the device lease's own
   (`Studio.device_lease`): the warm render pipeline is freed first.
3. Train: peft LoRA on the video attention (`to_q`, `to_k`, `to_v`, `to_out.0`, feed-forward
   optional) with the flow-matching loss (`engine/training/loss.py`); AdamW with warmup then
   constant or cosine; through `accelerate`. Data order, σ and noise all come from one
   seeded generator, so a resumed run follows the same loss curve.
4. Every checkpoint (`engine/training/checkpoints.py`) holds the LoRA and the whole state and
   is written to a temp folder then renamed; it is refused when a weight is NaN/Inf or every
   `lora_B` is still zero.
5. Export (`engine/training/export.py`): diffusers' `transformer.` naming plus metadata,
   loaded back into the trained transformer to count every module, recorded in the vault,
   with a ComfyUI copy beside it in the run folder.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.files import atomic
from aiprod_studio.training import TrainConfig
from aiprod_studio.vault.manifest import Entry
from engine.device.lease import DeviceLease
from engine.device.plan import free_memory, memory_gb
from engine.models.interrupt import cancel_points
from engine.models.pipelines import own_pipeline
from engine.training import dataset as ds
from engine.training.checkpoints import lora_tensors, read_latest, write_checkpoint
from engine.training.export import export
from engine.training.files import cache_dir, preprocess, run_dir_for
from engine.training.loss import Geometry, flow_matching_loss, shifted_sigmas
from engine.training.optim import LR_SCHEDULE, check_lora, lr_factor, target_regex

if TYPE_CHECKING:
    from engine.studio import Studio

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


@dataclass
class _Prepared:
    """A run after steps 1–2: its data, bucket, folder, and the transformer left to train."""

    entry: Entry
    bucket: tuple[int, int, int]
    items: int
    fingerprint: str
    run: Path
    samples: list[dict[str, torch.Tensor]]
    transformer: Any
    geometry: Geometry


@dataclass
class _State:
    """What a checkpoint restores: the data order, the generator, the step."""

    gen: torch.Generator
    order: list[int] = field(default_factory=list)
    step: int = 0
    lr_schedule: int = LR_SCHEDULE  # a run resumed from an older checkpoint keeps its own schedule


def train(
    studio: Studio,
    job_id: int | None,
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) the training of job `job_id`; returns the exported LoRA's facts.

    Under `accelerate launch` / `torchrun` every process runs this: the main one owns the
    job row, the run folder, the cache, the checkpoints and the export (other processes
    pass `job_id=None` and receive it); each process trains on its own share of every
    batch and accelerate averages the gradients.
    """
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list

    accelerator = Accelerator(
        cpu=studio.plan.device.type == "cpu", mixed_precision="bf16" if studio.plan.device.type == "cuda" else "no"
    )
    if accelerator.num_processes > 1:
        job_id = broadcast_object_list([job_id])[0]
    with studio.device_lease("train") as lease:
        return _train(studio, lease, accelerator, job_id, config, progress, cancel, stop_at)


def _prepare(
    studio: Studio,
    lease: DeviceLease,
    accelerator: Any,
    job_id: int | None,
    config: TrainConfig,
    report: Callable[[TrainProgress], None],
    cancel: threading.Event | None,
    history: Any,
) -> _Prepared:
    """Steps 1–2: model, dataset, bucket and run folder; then the cached latents and embeddings."""
    main, world = accelerator.is_main_process, accelerator.num_processes
    vault = studio.vault
    entry = vault.get(config.model or studio.default_model() or "", kind="pipeline")
    vault.check_new_name(config.name)
    history.set_model_digest(job_id, entry.digest)
    data = ds.require_items(
        ds.check(config.dataset, memory_gb(studio.plan), (config.width, config.height, config.num_frames))
    )
    bucket = data.bucket
    assert bucket is not None
    fp = ds.fingerprint(data.items, bucket, config.trigger, entry.digest)
    run = run_dir_for(studio.settings, job_id or 0, config.name)
    if main:
        run.mkdir(parents=True, exist_ok=True)
        ds.write_canonical(data, run)
        atomic.write_text(run / "config.json", config.model_dump_json(indent=1))

    # the pipeline is this lease's own: its text encoder and VAE are dropped after preprocessing
    pipe = own_pipeline(lease, vault, entry, config.quantization)
    max_tokens = int(entry.defaults.get("advanced", {}).get("max_sequence_length", 256))
    if not main:
        accelerator.wait_for_everyone()  # the main process fills the cache first; the others then only read it
    with cancel_points(
        [pipe.vae, pipe.text_encoder],
        cancel if world == 1 else None,
        message="training stopped while preparing the dataset",
    ):
        samples = preprocess(
            pipe,
            Path(data.folder),
            data.items,
            bucket,
            config.trigger,
            entry.digest,
            cache_dir(studio.settings),
            max_tokens,
            lambda done, total: report(TrainProgress("preprocess", done, total)),
            cancel,
        )
    if main:
        accelerator.wait_for_everyone()
    prepared = _Prepared(entry, bucket, len(data.items), fp, run, samples, pipe.transformer, Geometry.of(pipe))
    pipe.text_encoder = pipe.vae = pipe.audio_vae = pipe.vocoder = pipe.transformer = None
    del pipe
    free_memory(studio.plan.device)
    return prepared


def _optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise BadInput(
                "optimizer adamw8bit needs bitsandbytes, which is not installed", field="optimizer"
            ) from None
        return bnb.optim.AdamW8bit(params, lr=config.lr)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)


def _train(
    studio: Studio,
    lease: DeviceLease,
    accelerator: Any,
    job_id: int | None,
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None,
    cancel: threading.Event | None,
    stop_at: int | None,
) -> dict[str, Any]:
    # One function on purpose: the loop's numbered steps share the generator, the optimizer and
    # the checkpoint state, and reading them in order is how a resumed run is seen to be exact.
    from peft import LoraConfig, set_peft_model_state_dict

    main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    report = progress if (progress is not None and main) else (lambda p: None)
    history = studio.history if main else _NoWrites(studio.history)  # only the main process writes the database

    # 1–2. Model, dataset, bucket, run folder, preprocessing.
    prep = _prepare(studio, lease, accelerator, job_id, config, report, cancel, history)
    transformer, samples, run = prep.transformer, prep.samples, prep.run

    # 3. LoRA, optimizer, schedule, generators; the last checkpoint when resuming.
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # the LoRA's initial weights depend on the seed alone
        torch.manual_seed(config.seed)
        transformer.add_adapter(
            LoraConfig(
                r=config.rank, lora_alpha=config.lora_alpha, init_lora_weights=True, target_modules=target_regex(config)
            )
        )
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise IntegrityError("the LoRA targets matched no layer of the transformer")
    for p in params:
        p.data = p.data.float()
    optimizer = _optimizer(config, params)
    st = _State(torch.Generator("cpu").manual_seed(config.seed))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: lr_factor(config, done, st.lr_schedule))
    transformer, optimizer, schedule = accelerator.prepare(transformer, optimizer, schedule)
    unwrapped = accelerator.unwrap_model(transformer)
    latest = read_latest(run)
    if latest is not None:  # resume: the exact state of the last checkpoint
        at, tensors, state = latest
        if state["fingerprint"] != prep.fingerprint:
            raise BadInput(
                f"the dataset or settings changed since step-{at:06d} (fingerprint differs): start a new run",
                field="resume",
            )
        set_peft_model_state_dict(unwrapped, tensors)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        st.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        st.order, st.step = list(state["order"]), int(state["step"])
        st.lr_schedule = int(state.get("lr_schedule", 1))
        log.info("resuming %s from step %d", config.name, at)

    def save_checkpoint(at: int) -> None:
        tensors = lora_tensors(unwrapped)
        check_lora(tensors, at)
        if main:
            write_checkpoint(
                run,
                at,
                tensors,
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": schedule.state_dict(),
                    "generator": st.gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "order": st.order,
                    "step": at,
                    "fingerprint": prep.fingerprint,
                    "lr_schedule": st.lr_schedule,
                },
            )

    # 4. The loop.
    device = accelerator.device
    transformer.train()
    pending: list[tuple[int, float, float, float]] = []
    end = min(config.steps, stop_at or config.steps)
    try:
        while st.step < end:
            started = time.perf_counter()
            # a cancel inside the step (within one block) leaves the state of the last whole step
            before = (st.gen.get_state(), list(st.order), torch.get_rng_state())
            per, need = config.batch_size, config.batch_size * world  # every process draws the same numbers
            while len(st.order) < need:
                st.order += torch.randperm(len(samples), generator=st.gen).tolist()
            picked = [st.order.pop(0) for _ in range(need)]
            mine = slice(rank * per, (rank + 1) * per)
            batch = [samples[i] for i in picked[mine]]
            x0 = torch.stack([b["latents"] for b in batch]).to(device)  # B,C,F,H,W
            latent_shape = tuple(x0.shape[2:])
            x0 = prep.geometry.pack(x0, prep.geometry.patch, prep.geometry.patch_t)
            noise = torch.randn((need, *x0.shape[1:]), generator=st.gen)[mine].to(device)
            sigma = shifted_sigmas(st.gen, need, config.timestep_shift)[mine].to(device)
            try:
                with (
                    cancel_points(
                        [transformer], cancel if world == 1 else None, message=f"training stopped in step {st.step + 1}"
                    ),
                    accelerator.autocast(),
                ):
                    loss = flow_matching_loss(
                        transformer, unwrapped, prep.geometry, x0, noise, sigma, batch, latent_shape, config.fps
                    )  # type: ignore[arg-type]
                with cancel_points([transformer], cancel if world == 1 else None):  # a checkpointed recompute
                    accelerator.backward(loss)
            except Cancelled:
                st.gen.set_state(before[0])
                st.order[:] = before[1]
                torch.set_rng_state(before[2])
                optimizer.zero_grad(set_to_none=True)
                if st.step > 0:
                    save_checkpoint(st.step)
                raise Cancelled(f"training stopped at step {st.step}; resume it to continue") from None
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            st.step += 1
            seconds = time.perf_counter() - started
            lr = float(schedule.get_last_lr()[0])
            value = accelerator.reduce(loss.detach(), reduction="mean").item() if world > 1 else loss.detach().item()
            if not math.isfinite(value):
                raise IntegrityError(f"the loss is {value} at step {st.step}: lower the learning rate")
            pending.append((st.step, value, lr, seconds))
            history.set_progress(job_id, st.step, config.steps)
            report(TrainProgress("train", st.step, config.steps, value, lr, seconds))
            checkpoint = st.step % config.save_every == 0 or st.step == config.steps
            stopping = cancel is not None and cancel.is_set() and st.step < config.steps
            if len(pending) >= 10 or st.step == end or checkpoint or stopping:
                history.add_metrics(job_id, pending)
                pending = []
            if checkpoint or stopping:
                save_checkpoint(st.step)
            if stopping:
                raise Cancelled(f"training stopped at step {st.step}; resume it to continue")
    finally:  # the loss curve up to the stop is kept, whatever stopped the loop
        if pending:
            history.add_metrics(job_id, pending)
    if st.step < config.steps:  # stop_at: a partial run (tests, previews)
        return {"step": st.step, "run_dir": str(run)}

    # 5. Export and record (the main process; the trained transformer checks the file loads back).
    report(TrainProgress("export", st.step, config.steps))
    lora = lora_tensors(unwrapped)
    check_lora(lora, st.step)
    accelerator.wait_for_everyone()
    if not main:
        return {"step": st.step, "run_dir": str(run), "process": rank}
    transformer = optimizer = schedule = None
    free_memory(studio.plan.device)
    result = export(studio, prep.entry, config, lora, run, prep.fingerprint, st.step, prep.items, unwrapped)
    return result | {"step": st.step, "run_dir": str(run), "bucket": list(prep.bucket), "items": prep.items}


class _NoWrites:
    """The history as seen by a secondary training process: reads pass, writes are dropped."""

    def __init__(self, history: Any):
        self._history = history

    def __getattr__(self, name: str) -> Any:
        if name in ("set_model_digest", "set_progress", "add_metrics"):
            return lambda *a, **k: None
        return getattr(self._history, name)
