"""A checkpoint's samples: list a run's saved steps, render one beside the base model at the same seed."""

from __future__ import annotations

import gradio as gr

from aiprod_studio.errors import StudioError
from engine.training.checkpoints import checkpoint_steps
from engine.training.samples import render_checkpoint_sample
from ui.components.training_run import run_id
from ui.context import Services
from ui.errors import refused


def on_train_steps(services: Services, run_value: str | float | None):
    job_id = run_id(services, run_value)
    if job_id is None:
        raise refused("step: start a training run first")
    studio = services.studio
    found = checkpoint_steps(studio.settings, job_id, studio.history.get(job_id)["recipe"]["name"])
    return gr.update(choices=found, value=found[-1] if found else None)


def on_train_compare(services: Services, run_value: str | float | None, step_v, prompt: str, seed_v: float):
    job_id = run_id(services, run_value)
    if job_id is None or step_v in (None, ""):
        raise refused("step: start a run and choose one of its checkpoints")
    try:
        base_clip, sample = render_checkpoint_sample(services.studio, job_id, int(step_v), prompt, int(seed_v or 0))
    except StudioError as exc:
        raise refused(exc) from None
    return str(base_clip), str(sample)
