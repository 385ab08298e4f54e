"""The Render form's pictures: a start image (image-to-video), an end image and keyframes,
with a preview of the crop each gets at the clip's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.conditions import MAX_CONDITIONS
from aiprod_studio.errors import StudioError
from engine.render.images import open_image, prepare
from ui.components.render_form import file_path
from ui.context import Services, bind

FORMATS = [".png", ".jpg", ".jpeg", ".webp"]


@dataclass
class Pictures:
    image: Any
    end_image: Any
    end_strength: Any
    keyframes: Any
    keyframe_frames: Any
    preview: Any
    note: Any

    @property
    def fields(self) -> list[Any]:
        """The form's picture fields, in `render_form.PICTURE_FIELDS` order."""
        return [self.image, self.end_image, self.end_strength, self.keyframes, self.keyframe_frames]


def layout() -> Pictures:
    with gr.Accordion("Start image and keyframes", open=False, elem_id="render-pictures"):
        with gr.Row():
            # (files, not gr.Image: a picture is checked by the studio, which says what is wrong with it;
            # the crops beside them show each picture as the model sees it)
            image = gr.File(
                label="Start image (image-to-video)", file_types=FORMATS, height=120, elem_id="render-image"
            )
            end_image = gr.File(
                label="End image (the last frame)", file_types=FORMATS, height=120, elem_id="render-end-image"
            )
            preview = gr.Gallery(
                label="As the model sees them (cropped to the clip's size)",
                height=180,
                columns=4,
                interactive=False,
                elem_id="render-crops",
            )
        with gr.Row():
            end_strength = gr.Slider(
                label="End image strength", minimum=0.01, maximum=1.0, step=0.01, value=1.0, info="1: exactly"
            )
            keyframes = gr.File(
                label="Keyframes", file_count="multiple", file_types=FORMATS, height=120, elem_id="render-keyframes"
            )
            keyframe_frames = gr.Textbox(
                label="Keyframe frames",
                placeholder="8, 24:0.6",
                info="one FRAME[:STRENGTH] per keyframe, in order (a frame number or last; strength 0–1)",
            )
        note = gr.Markdown("", elem_id="render-pictures-note")
    return Pictures(image, end_image, end_strength, keyframes, keyframe_frames, preview, note)


def crops(services: Services, model: str, width: Any, height: Any, *files: Any) -> tuple[list[Any], str]:
    """Each picture as it will be cropped at the clip's size (the model's when the form leaves it empty)."""
    image, end_image, keyframes = (*files, None, None, None)[:3]
    more = keyframes if isinstance(keyframes, list) else [keyframes]
    try:
        paths = [p for p in (file_path(image), file_path(end_image), *(file_path(k) for k in more)) if p]
    except StudioError as exc:
        return [], f"**Will not run:** {exc}"
    paths = paths[:MAX_CONDITIONS]  # (a recipe holds no more; the refusal says so when Generate is pressed)
    if not paths:
        return [], ""
    try:
        entry = services.studio.vault.get(model or services.studio.default_model() or "", kind="pipeline")
        defaults = services.studio.model_defaults(entry)
    except StudioError:
        defaults = {"width": 768, "height": 512}
    w = int(width) if width else int(defaults["width"])
    h = int(height) if height else int(defaults["height"])
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        return [], f"The crop shows once width and height are multiples of 32 (got {w}×{h})."
    shown, problems = [], []
    for path in paths:
        try:
            shown.append((prepare(open_image(path, "image"), w, h), f"{w}×{h}"))
        except StudioError as exc:
            problems.append(str(exc))
    return shown, "\n".join(f"**Will not run:** {p}" for p in problems)


def wire(pictures: Pictures, services: Services, model: Any, width: Any, height: Any) -> None:
    inputs = [model, width, height, pictures.image, pictures.end_image, pictures.keyframes]
    handler = bind(crops, services)
    for component in [pictures.image, pictures.end_image, pictures.keyframes, width, height, model]:
        component.change(
            handler, inputs=inputs, outputs=[pictures.preview, pictures.note], api_visibility="private", queue=False
        )
