"""Import a checkpoint: an original single-file LTX-2 `.safetensors` on this machine (the Lightricks /
ComfyUI layout) becomes a vault pipeline, configured by and completed from an LTX-2 pipeline of the
vault (`vault import-checkpoint`). `render` lays the widgets out, `listen` connects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.generations import DISTILLED
from aiprod_studio.vault.cli import human_bytes
from engine.models.single_file import import_checkpoint
from ui.components.vault_table import lists
from ui.components.vault_task import track
from ui.context import Services, bind
from ui.errors import refused


@dataclass
class CheckpointImport:
    path: Any
    like: Any
    name: Any
    distilled: Any
    button: Any


def like_choices(services: Services) -> list[str]:
    """The pipelines a checkpoint can be converted like: LTX-2, stored in full precision."""
    return [e.name for e in services.studio.vault.entries("pipeline") if e.family == "ltx2" and not e.quantization]


def render(services: Services) -> CheckpointImport:
    likes = like_choices(services)
    with gr.Accordion("Import a checkpoint (an original single-file LTX-2 .safetensors)", open=False):
        with gr.Row():
            path = gr.Textbox(
                label="Checkpoint on this machine", placeholder="/path/to/ltx-2-19b-dev.safetensors", scale=3
            )
            like = gr.Dropdown(
                label="Like (the vault's pipeline of the same generation and size)",
                choices=likes,
                value=likes[0] if likes else None,
                scale=2,
            )
        with gr.Row():
            name = gr.Textbox(label="New name (default: the file's name)", scale=2)
            distilled = gr.Checkbox(label="Distilled (a few-step model)", value=False, scale=1)
            button = gr.Button("Import checkpoint", scale=0)
    return CheckpointImport(path, like, name, distilled, button)


def on_checkpoint_import(services: Services, path: str, like: str | None, name: str, distilled: bool):
    if not (path or "").strip():
        raise refused("file: give the path of a .safetensors checkpoint on this machine")
    if not like:
        raise refused("like: choose the vault's LTX-2 pipeline of the same generation and size")
    job = track(
        "import checkpoint",
        lambda progress, cancel: import_checkpoint(
            services.studio.vault,
            path.strip(),
            like,
            name=(name or "").strip() or None,
            variant=DISTILLED if distilled else None,
            progress=progress,
            cancel=cancel,
        ),
    )
    try:
        while True:
            yield next(job) + (gr.update(),) * 7
    except StopIteration as done:
        entry = done.value.entry
    source = entry.imported_from
    assert source is not None
    text = (
        f"Imported **{entry.name}** from `{source.file}`: converted {', '.join(source.components)}, everything "
        f"else from {source.like} ({len(entry.files)} files, {human_bytes(entry.total_size)}, digest "
        f"`{entry.digest[:12]}`); choose it in the Render tab."
    )
    yield (text, None) + lists(services) + (gr.update(choices=like_choices(services)),)


def on_like_refresh(services: Services):
    return gr.update(choices=like_choices(services))


def listen(c: CheckpointImport, services: Services, status: Any, task: Any, listed: list[Any], refresh: Any) -> None:
    """Connect the import; its result shows in the tab's `status`, its Cancel reaches it through `task`,
    and `listed` (the menus `vault_table.lists` updates) and the like menu show the new entry."""
    private = {"api_visibility": "private"}
    c.button.click(
        bind(on_checkpoint_import, services),
        inputs=[c.path, c.like, c.name, c.distilled],
        outputs=[status, task, *listed, c.like],
        **private,
    )
    refresh.click(bind(on_like_refresh, services), outputs=c.like, **private)
