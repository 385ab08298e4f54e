"""The Training tab: the LoRA wizard — dataset → check → settings → train (live loss) → samples.

Training runs go through the same queue as renders (one job at a time on the GPU). The
tab follows the run it started: step, loss plot, seconds per step and ETA; Pause stops it
at once (within one block) keeping the last whole step as a checkpoint, Resume continues
from there, Cancel stops it for good
(its checkpoints stay in the run folder). Any checkpoint can be rendered beside the base
model at the same seed.

The run a page follows is the one in its Run box (filled in by Start), so each browser
session's buttons reach only its own run; typing another run's id there takes that run
over (after a page reload, say), and Resume then follows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from aiprod_studio.choices import LR_SCHEDULES
from aiprod_studio.errors import BadInput, StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import QUANTIZATIONS
from aiprod_studio.training import make_train_config, train_default
from engine.device.plan import memory_gb
from engine.jobs.events import watch
from engine.training import dataset as ds
from engine.training.checkpoints import checkpoint_steps
from engine.training.jobs import queue_training
from engine.training.samples import render_checkpoint_sample
from ui.context import Services, bind
from ui.errors import refused

PRESETS = {
    "Quick test (60 steps, rank 8)": {"steps": 60, "rank": 8, "lr": 1e-3, "save_every": 20, "warmup": 5},
    "Character or style (1500 steps, rank 32)": {
        "steps": 1500,
        "rank": 32,
        "lr": 1e-4,
        "save_every": 250,
        "warmup": 50,
    },
    "Motion (2500 steps, rank 64)": {"steps": 2500, "rank": 64, "lr": 5e-5, "save_every": 250, "warmup": 100},
}


PRESET_FIELDS = ("rank", "lr", "steps", "save_every", "warmup")
START_FIELDS = (
    "dataset",
    "name",
    "base",
    "trigger",
    "rank",
    "lr",
    "steps",
    "save_every",
    "warmup",
    "seed",
    "width",
    "height",
    "frames",
    "schedule",
    "quantization",
    "checkpointing",
)


@dataclass
class TrainingTab:
    dataset: Any
    check_btn: Any
    report: Any
    name: Any
    base: Any
    trigger: Any
    preset: Any
    rank: Any
    lr: Any
    steps: Any
    save_every: Any
    warmup: Any
    seed: Any
    width: Any
    height: Any
    frames: Any
    schedule: Any
    quantization: Any
    checkpointing: Any
    run: Any
    start_btn: Any
    pause_btn: Any
    resume_btn: Any
    cancel_btn: Any
    status: Any
    plot: Any
    sample_step: Any
    steps_btn: Any
    sample_prompt: Any
    sample_seed: Any
    compare_btn: Any
    base_video: Any
    lora_video: Any


def loss_frame(metrics: list[dict]) -> pd.DataFrame:
    """The loss plot's data; numeric even before the first step, or the plot keeps a text axis
    with a label per value for the whole run."""
    return pd.DataFrame(metrics or [], columns=["step", "loss", "lr", "seconds"]).astype(float)


def layout(services: Services) -> TrainingTab:
    # one straight column of widgets, top to bottom as the page shows them
    studio = services.studio
    with gr.Row():
        dataset = gr.Textbox(
            label="Dataset folder (clips or images + same-name .txt captions, or dataset.jsonl)", scale=4
        )
        check_btn = gr.Button("Check dataset", scale=0)
    report = gr.Markdown("")
    with gr.Row():
        name = gr.Textbox(label="LoRA name", scale=2)
        base = gr.Dropdown(
            label="Base model", choices=[e.name for e in studio.pipelines()], value=studio.default_model(), scale=2
        )
        trigger = gr.Textbox(label="Trigger word (added to captions at encode time)", scale=2)
        preset = gr.Dropdown(label="Preset", choices=list(PRESETS), value=list(PRESETS)[1], scale=3)
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            rank = gr.Number(label="Rank", value=train_default("rank"), precision=0, minimum=1, maximum=256)
            lr = gr.Number(label="Learning rate", value=train_default("lr"))
            steps = gr.Number(label="Steps", value=train_default("steps"), precision=0, minimum=1)
            save_every = gr.Number(label="Save every", value=train_default("save_every"), precision=0, minimum=1)
            warmup = gr.Number(label="Warmup steps", value=train_default("warmup_steps"), precision=0, minimum=0)
            seed = gr.Number(label="Seed", value=0, precision=0, minimum=0)
        with gr.Row():
            width = gr.Number(label="Bucket width (0: proposed)", value=0, precision=0, step=32)
            height = gr.Number(label="Bucket height (0: proposed)", value=0, precision=0, step=32)
            frames = gr.Number(label="Bucket frames (0: proposed)", value=0, precision=0, step=8)
            schedule = gr.Radio(label="Schedule", choices=list(LR_SCHEDULES), value=train_default("schedule"))
            quantization = gr.Radio(label="Base weights", choices=list(QUANTIZATIONS), value="none")
            checkpointing = gr.Checkbox(label="Gradient checkpointing", value=False)
    with gr.Row():
        # (no precision or minimum: the handler names a bad run id itself, 1.5 is refused, not rounded)
        run = gr.Number(
            label="Run", value=None, scale=0, min_width=170, info="filled in by Start; type an id to take a run over"
        )
        start_btn = gr.Button("Start training", variant="primary")
        pause_btn = gr.Button("Pause")
        resume_btn = gr.Button("Resume")
        cancel_btn = gr.Button("Cancel", variant="stop")
    status = gr.Markdown("", elem_id="training-status")
    plot = gr.LinePlot(x="step", y="loss", title="Training loss", height=260)
    with gr.Row():
        sample_step = gr.Dropdown(label="Checkpoint step", choices=[], value=None, scale=1)
        steps_btn = gr.Button("List checkpoints", scale=0)
        sample_prompt = gr.Textbox(label="Sample prompt", scale=3)
        sample_seed = gr.Number(label="Seed", value=0, precision=0, scale=1)
        compare_btn = gr.Button("Render base vs checkpoint", scale=0)
    with gr.Row():
        base_video = gr.Video(label="Base model", interactive=False)
        lora_video = gr.Video(label="With the LoRA at that step", interactive=False)
    return TrainingTab(
        dataset,
        check_btn,
        report,
        name,
        base,
        trigger,
        preset,
        rank,
        lr,
        steps,
        save_every,
        warmup,
        seed,
        width,
        height,
        frames,
        schedule,
        quantization,
        checkpointing,
        run,
        start_btn,
        pause_btn,
        resume_btn,
        cancel_btn,
        status,
        plot,
        sample_step,
        steps_btn,
        sample_prompt,
        sample_seed,
        compare_btn,
        base_video,
        lora_video,
    )


def on_train_check(services: Services, folder: str):
    try:
        rep = ds.require_items(ds.check(folder, memory_gb(services.studio.plan)))
    except StudioError as exc:
        raise refused(exc) from None
    width, height, frames = rep.bucket
    lines = [f"**{len(rep.items)} usable items**; proposed bucket {width}×{height}, {frames} frames."]
    lines += [f"- ⚠ {f}" for f in rep.findings]
    return "\n".join(lines), width, height, frames


def on_train_preset(choice: str):
    p = PRESETS.get(choice, {})
    return [gr.update(value=p[k]) if k in p else gr.update() for k in PRESET_FIELDS]


def run_id(services: Services, value: float | None) -> int | None:
    """The run in the page's Run box, checked to be a training run."""
    if value in (None, "", 0):  # an empty box (a reloaded page sends 0)
        return None
    try:
        number = whole_number(value, "run")
        kind = services.studio.history.get(number)["kind"]
    except StudioError as exc:
        raise refused(exc) from None
    except KeyError:
        raise refused(f"run: there is no run {number}") from None
    if kind != "train":
        raise refused(f"run: job {number} is a render, not a training run")
    return number


def run_text(job_id: int, row: dict[str, Any]) -> str:
    """One line on a run: status, last step's loss, speed and ETA, its place in the queue, its outcome."""
    text, metrics = f"Run {job_id}: {row['status']}", row["metrics"]
    if metrics:
        m = metrics[-1]
        eta = m["seconds"] * (row["total_steps"] - m["step"])
        text += (
            f" · step {m['step']}/{row['total_steps']} · loss {m['loss']:.4f} · "
            f"{m['seconds']:.2f}s/step · about {eta:,.0f}s left"
        )
    if row["status"] == "queued":
        text += f" (position {row['position']} in the queue)"
    if row["status"] == "done":
        text += f" — LoRA saved in the vault: `{row['output_path']}`"
    elif row["status"] in FINAL_STATUSES:
        text += f" — {row.get('error') or ''}"
    return text


def follow(services: Services, job_id: int):
    """(status text, loss table, Run box) while the run moves; the Run box is set once, at the start."""
    studio, worker = services.studio, services.worker
    run_box = job_id
    for row in watch(
        lambda: worker.status(job_id) | {"metrics": studio.history.metrics(job_id)},
        key=lambda r: (r["status"], len(r["metrics"])),
        poll_s=0.5,
        timeout_s=None,
    ):
        yield run_text(job_id, row), loss_frame(row["metrics"]), run_box
        run_box = gr.update()  # leave the box alone: the user may type another run's id meanwhile


def _whole(field: str, value: float | None, empty: int | None = None) -> int:
    return empty if value in (None, "") and empty is not None else whole_number(value, field, low=-(2**63))


def on_train_start(
    services: Services,
    folder,
    lora_name,
    model,
    trig,
    rank_v,
    lr_v,
    steps_v,
    save_v,
    warm_v,
    seed_v,
    w,
    h,
    f,
    sched,
    quant,
    ckpt,
):
    try:
        if isinstance(lr_v, bool) or not isinstance(lr_v, (int, float)) or not math.isfinite(lr_v):
            raise BadInput(f"lr must be a number, got {lr_v!r}", field="lr")
        config = make_train_config(
            {
                "dataset": folder,
                "name": (lora_name or "").strip(),
                "model": model or None,
                "trigger": trig or "",
                "rank": _whole("rank", rank_v),
                "lr": float(lr_v),
                "steps": _whole("steps", steps_v),
                "save_every": _whole("save_every", save_v),
                "warmup_steps": _whole("warmup_steps", warm_v, 0),
                "seed": _whole("seed", seed_v, 0),
                "width": _whole("width", w, 0) or None,
                "height": _whole("height", h, 0) or None,
                "num_frames": _whole("num_frames", f, 0) or None,
                "schedule": sched,
                "quantization": quant,
                "gradient_checkpointing": bool(ckpt),
            }
        )
        job_id = queue_training(services.worker, config)
    except StudioError as exc:
        raise refused(exc) from None
    yield from follow(services, job_id)


def on_train_stop(services: Services, verb: str, run_value: float | None) -> str:
    job_id = run_id(services, run_value)
    if job_id is None:
        return "No training run started from this page."
    try:
        return f"Run {job_id}: {services.worker.cancel(job_id)} ({verb}; Resume continues from the last checkpoint)."
    except StudioError as exc:
        return str(exc)


def on_train_resume(services: Services, run_value: float | None):
    job_id = run_id(services, run_value)
    if job_id is None:
        raise refused("resume: no training run started from this page (type its id in the Run box)")
    try:
        if services.worker.status(job_id)["status"] in FINAL_STATUSES:  # else a run taken over: just follow it
            services.worker.resume(job_id)
    except StudioError as exc:
        raise refused(exc) from None
    yield from follow(services, job_id)


def on_train_steps(services: Services, run_value: float | None):
    job_id = run_id(services, run_value)
    if job_id is None:
        raise refused("step: start a training run first")
    studio = services.studio
    found = checkpoint_steps(studio.settings, job_id, studio.history.get(job_id)["recipe"]["name"])
    return gr.update(choices=found, value=found[-1] if found else None)


def on_train_compare(services: Services, run_value: float | None, step_v, prompt: str, seed_v: float):
    job_id = run_id(services, run_value)
    if job_id is None or step_v in (None, ""):
        raise refused("step: start a run and choose one of its checkpoints")
    try:
        base_clip, sample = render_checkpoint_sample(services.studio, job_id, int(step_v), prompt, int(seed_v or 0))
    except StudioError as exc:
        raise refused(exc) from None
    return str(base_clip), str(sample)


def wire(tab: TrainingTab, services: Services) -> None:
    private = {"api_visibility": "private"}
    stop = {verb: bind(on_train_stop, services, verb, name=f"on_train_{verb}") for verb in ("paused", "cancelled")}
    following = [tab.status, tab.plot, tab.run]
    tab.check_btn.click(
        bind(on_train_check, services),
        inputs=tab.dataset,
        outputs=[tab.report, tab.width, tab.height, tab.frames],
        **private,
    )
    tab.preset.change(on_train_preset, inputs=tab.preset, outputs=[getattr(tab, k) for k in PRESET_FIELDS], **private)
    tab.start_btn.click(
        bind(on_train_start, services), inputs=[getattr(tab, k) for k in START_FIELDS], outputs=following, **private
    )
    tab.pause_btn.click(stop["paused"], inputs=tab.run, outputs=tab.status, **private)
    tab.cancel_btn.click(stop["cancelled"], inputs=tab.run, outputs=tab.status, **private)
    tab.resume_btn.click(bind(on_train_resume, services), inputs=tab.run, outputs=following, **private)
    tab.steps_btn.click(bind(on_train_steps, services), inputs=tab.run, outputs=tab.sample_step, **private)
    tab.compare_btn.click(
        bind(on_train_compare, services),
        inputs=[tab.run, tab.sample_step, tab.sample_prompt, tab.sample_seed],
        outputs=[tab.base_video, tab.lora_video],
        **private,
    )
