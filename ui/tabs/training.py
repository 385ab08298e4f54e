"""The Training tab: the LoRA wizard — dataset → check → settings → train (live loss) → samples.

This module lays the tab out, checks the dataset (Check dataset) and fills the settings from a
preset. The run itself (Start, Pause, Resume, Cancel, the live status and loss plot) is in
`ui/components/training_run.py`; List checkpoints and Render base vs checkpoint (any checkpoint
beside the base model at the same seed) in `ui/components/training_samples.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.context import Context

from aiprod_studio.choices import LR_SCHEDULES
from aiprod_studio.errors import StudioError
from aiprod_studio.recipe import QUANTIZATIONS
from aiprod_studio.training import train_default
from engine.device.plan import memory_gb
from engine.training import dataset as ds
from ui.components.training_run import (
    START_FIELDS,
    on_train_attach,
    on_train_resume,
    on_train_start,
    on_train_stop,
)
from ui.components.training_samples import on_train_compare, on_train_steps
from ui.context import Services, bind
from ui.errors import kept, refused

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
            # (no widget bounds: the training settings' check names the field and the range in words)
            rank = gr.Number(
                label="Rank", value=train_default("rank"), precision=0, info="how much the LoRA can learn: 4–64 common"
            )
            lr = gr.Number(label="Learning rate", value=train_default("lr"), info="step size; lower if the loss jumps")
            steps = gr.Number(label="Steps", value=train_default("steps"), precision=0, info="training steps in all")
            save_every = gr.Number(
                label="Save every", value=train_default("save_every"), precision=0, info="a checkpoint every N steps"
            )
            warmup = gr.Number(
                label="Warmup steps",
                value=train_default("warmup_steps"),
                precision=0,
                info="steps at a rising learning rate before the full one",
            )
            seed = gr.Number(label="Seed", value=0, precision=0, info="same seed and data, same LoRA")
        with gr.Row():
            # the bucket: the one size and length every clip is resized and cut to for training
            width = gr.Number(
                label="Bucket width (0: proposed)", value=0, precision=0, step=32, info="every clip is resized to it"
            )
            height = gr.Number(label="Bucket height (0: proposed)", value=0, precision=0, step=32)
            frames = gr.Number(
                label="Bucket frames (0: proposed)", value=0, precision=0, step=8, info="17, 25, 33 … (8·k + 1)"
            )
            schedule = gr.Radio(label="Schedule", choices=list(LR_SCHEDULES), value=train_default("schedule"))
            quantization = gr.Radio(
                label="Base weights",
                choices=list(QUANTIZATIONS),
                value="none",
                info="the base model's weights in 8 bits while training: less memory",
            )
            checkpointing = gr.Checkbox(
                label="Gradient checkpointing",
                value=False,
                info="recompute instead of store: less memory, slower steps",
            )
    with gr.Row():
        # (text, not a number box: it starts empty, and the handler names a bad run id itself)
        run = gr.Textbox(
            label="Run",
            placeholder="filled in by Start",
            scale=0,
            min_width=170,
            max_lines=1,
            info="type a run's id to take it over",
        )
        start_btn = gr.Button("Start training", variant="primary")
        pause_btn = gr.Button("Pause")
        resume_btn = gr.Button("Resume")
        cancel_btn = gr.Button("Cancel", variant="stop")
    status = gr.Markdown("", elem_id="training-status")
    plot = gr.LinePlot(
        x="step", y="loss", color="series", title="Training loss", height=260, x_title="step", elem_id="training-plot"
    )
    with gr.Row():
        sample_step = gr.Dropdown(label="Checkpoint step", choices=[], value=None, scale=1)
        steps_btn = gr.Button("List checkpoints", scale=0)
        sample_prompt = gr.Textbox(label="Sample prompt", scale=3)
        sample_seed = gr.Number(label="Seed", value=0, precision=0, scale=1)
        compare_btn = gr.Button("Render base vs checkpoint", scale=0)
    with gr.Row():
        base_video = gr.Video(label="Base model", interactive=False, height=320)
        lora_video = gr.Video(label="With the LoRA at that step", interactive=False, height=320)
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
        rep = ds.check(folder, memory_gb(services.studio.plan))
    except StudioError as exc:  # in the tab, where the findings go, and as a toast
        return kept(4, 0, refused(exc))
    if not rep.items or rep.bucket is None:  # every finding in the tab, not only in a toast that fades
        findings = "\n".join(f"- ⚠ {f}" for f in rep.findings)
        return f"**No usable items** in `{folder}`:\n{findings}", gr.update(), gr.update(), gr.update()
    width, height, frames = rep.bucket
    lines = [f"**{len(rep.items)} usable items**; proposed bucket {width}×{height}, {frames} frames."]
    lines += [f"- ⚠ {f}" for f in rep.findings]
    return "\n".join(lines), width, height, frames


def on_train_preset(choice: str):
    p = PRESETS.get(choice, {})
    return [gr.update(value=p[k]) if k in p else gr.update() for k in PRESET_FIELDS]


def wire(tab: TrainingTab, services: Services) -> None:
    private = {"api_visibility": "private"}
    stop = {verb: bind(on_train_stop, services, verb, name=f"on_train_{verb}") for verb in ("paused", "cancelled")}
    following = [tab.status, tab.plot, tab.run]
    if Context.root_block is not None:  # a (re)loaded page takes up the running run, or shows the last one
        Context.root_block.load(bind(on_train_attach, services), outputs=following, **private)
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
