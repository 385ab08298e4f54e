"""The Render tab: prompt → clip with sound, with live step progress and cancel.

Handlers only convert widget values, call the engine, and convert its events back into
widget updates. The public API endpoint `/render` takes the recipe as keyword arguments
and returns the MP4 and its history record.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.recipe import MAX_SEED, QUANTIZATIONS
from engine.jobs import Done, Progress, Stopped, start_render
from engine.studio import Studio

TEST_MODEL_NOTE = (
    "⚠️ **Test model.** `{name}` is the studio's tiny built-in LTX-2 model with random weights: it proves the "
    "whole render path works offline, but its clips look like coloured noise. Put real LTX-2 weights in the vault "
    "(see the README, *Models*) and pick them here."
)


class _Running:
    """The render handle of each browser session, so its Cancel button can reach it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}

    def put(self, session: str, handle: Any) -> None:
        with self._lock:
            self._handles[session] = handle

    def pop(self, session: str) -> Any:
        with self._lock:
            return self._handles.pop(session, None)

    def cancel(self, session: str) -> bool:
        with self._lock:
            handle = self._handles.get(session)
        if handle is not None:
            handle.cancel()
        return handle is not None


def _values(prompt, negative_prompt, model, quantization, width, height, num_frames, fps, steps, guidance, seed):
    return {"prompt": prompt, "negative_prompt": negative_prompt, "model": model or None,
            "quantization": quantization, "width": _int(width), "height": _int(height),
            "num_frames": _int(num_frames), "fps": _int(fps), "steps": _int(steps), "guidance": guidance,
            "seed": _int(seed)}


def _int(x: Any) -> Any:
    """Gradio numbers arrive as floats; pass whole numbers as int, anything else as is (validation names it)."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _status(event: Any) -> str:
    if isinstance(event, Progress):
        eta = f" · about {event.eta_s:.1f}s left" if event.eta_s is not None else ""
        return f"Rendering… step {event.step}/{event.total}{eta}"
    if isinstance(event, Done):
        row = event.row
        return f"Done: job {row['id']} in {row['wall_s']:.2f}s → `{row['output_path']}`"
    if isinstance(event, Stopped):
        return "Cancelled: the partial clip was discarded."
    return f"Failed: {event.error}"


def build(studio: Studio) -> None:
    """Lay out the tab inside the current `gr.Blocks` and wire its events."""
    pipelines = studio.pipelines()
    default = studio.default_model()
    entry = next((e for e in pipelines if e.name == default), None)
    d = {**{"width": 768, "height": 512, "num_frames": 121, "fps": 24, "steps": 40, "guidance": 4.0},
         **(entry.defaults if entry else {})}
    running = _Running()

    note = gr.Markdown(TEST_MODEL_NOTE.format(name=entry.name) if entry and entry.test_model else "",
                       visible=bool(entry and entry.test_model))
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="A red car drives through a rainy city at night")
            negative = gr.Textbox(label="Negative prompt", value="", lines=1, placeholder="what to avoid (optional)")
            with gr.Row():
                model = gr.Dropdown(label="Model", choices=[e.name for e in pipelines], value=default,
                                    interactive=True)
                quantization = gr.Radio(label="Quantization", choices=list(QUANTIZATIONS), value="none")
            with gr.Row():
                width = gr.Number(label="Width", value=d["width"], precision=0, step=32, minimum=32)
                height = gr.Number(label="Height", value=d["height"], precision=0, step=32, minimum=32)
                num_frames = gr.Number(label="Frames (8k+1)", value=d["num_frames"], precision=0, step=8, minimum=1)
                fps = gr.Number(label="FPS", value=d["fps"], precision=0, minimum=1, maximum=60)
            with gr.Row():
                steps = gr.Number(label="Steps", value=d["steps"], precision=0, minimum=1, maximum=200)
                guidance = gr.Number(label="Guidance", value=d["guidance"], minimum=1.0, step=0.5)
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                dice = gr.Button("Random seed", scale=0, min_width=110)
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("")
        with gr.Column(scale=2):
            video = gr.Video(label="Result", interactive=False, autoplay=True)
            recipe_view = gr.JSON(label="Recipe")

    form = [prompt, negative, model, quantization, width, height, num_frames, fps, steps, guidance, seed]

    def on_model(name: str):
        chosen = next((e for e in studio.pipelines() if e.name == name), None)
        if chosen is None:
            return [gr.update()] * 7
        dd = chosen.defaults
        note_text = TEST_MODEL_NOTE.format(name=chosen.name) if chosen.test_model else ""
        return [gr.update(value=note_text, visible=chosen.test_model)] + [
            gr.update(value=dd[k]) if k in dd else gr.update()
            for k in ("width", "height", "num_frames", "fps", "steps", "guidance")]

    model.change(on_model, inputs=model, outputs=[note, width, height, num_frames, fps, steps, guidance],
                 api_visibility="private")
    dice.click(lambda: random.randint(0, 2**32 - 1), outputs=seed, api_visibility="private")

    def on_generate(prompt, negative_prompt, model, quantization, width, height, num_frames, fps, steps,
                    guidance, seed, request: gr.Request, progress=gr.Progress()):
        try:
            recipe = studio.build_recipe(_values(prompt, negative_prompt, model, quantization, width, height,
                                                 num_frames, fps, steps, guidance, seed))
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        handle = start_render(studio, recipe)
        session = request.session_hash or "default"
        running.put(session, handle)
        try:
            yield gr.update(), gr.update(), "Loading the model…"
            for event in handle.events():
                if isinstance(event, Progress):
                    progress((event.step, event.total), desc="denoising")
                    yield gr.update(), gr.update(), _status(event)
                elif isinstance(event, Done):
                    yield event.row["output_path"], event.row["recipe"] | {"job_id": event.row["id"]}, _status(event)
                else:
                    yield None, gr.update(), _status(event)
        finally:
            # Closed early (page left, event cancelled): stop the render; after the end this is a no-op.
            if running.pop(session) is handle:
                handle.cancel()

    def on_cancel(request: gr.Request):
        found = running.cancel(request.session_hash or "default")
        return "Cancelling…" if found else "Nothing is rendering."

    generate.click(on_generate, inputs=form, outputs=[video, recipe_view, status], api_visibility="private",
                   concurrency_id="render", concurrency_limit=1)
    cancel.click(on_cancel, outputs=status, api_visibility="private", queue=False)

    # The scripting API: /render takes the recipe as keyword arguments, blocks, returns the MP4 + record.
    def render(prompt: str, negative_prompt: str = "", model: str = "", quantization: str = "none",
               width: float = d["width"], height: float = d["height"], num_frames: float = d["num_frames"],
               fps: float = d["fps"], steps: float = d["steps"], guidance: float = d["guidance"], seed: float = 0):
        """Render one clip and return the MP4 and its history record (recipe, job id, timings)."""
        try:
            recipe = studio.build_recipe(_values(prompt, negative_prompt, model, quantization, width, height,
                                                 num_frames, fps, steps, guidance, seed))
            row = studio.render(recipe)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        record = {k: row[k] for k in ("id", "status", "output_path", "model", "model_digest", "seed", "wall_s",
                                      "created_at", "finished_at", "recipe")}
        return row["output_path"], record

    api_button = gr.Button(visible=False)
    api_video = gr.Video(visible=False)
    api_record = gr.JSON(visible=False)
    api_button.click(render, inputs=form, outputs=[api_video, api_record], api_name="render",
                     concurrency_id="render", concurrency_limit=1)
