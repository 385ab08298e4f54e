"""The Storyboard tab: script → shots (a table to edit) → renders through the queue → one film.

The storyboard lives in a `gr.State` as JSON and in the database (saved on Save, Render and
the row buttons; Split only shows the script's shots). A refused action leaves every widget as
it was and says why on the status line. The shot table is read back into the storyboard before every action, so edits in
its cells are never lost.

This module lays the tab out and handles Split, Enhance and the shot table's row buttons.
Open, Save and the Saved menu are in `ui/components/saved_storyboards.py`; Render, Cancel and
Export in `ui/components/film_render.py`; the table's rows in `ui/components/shot_table.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.presets import load_presets
from aiprod_studio.recipe import MAX_SEED
from aiprod_studio.storyboard.board import MAX_FILM_S, Shot, shot_frames
from aiprod_studio.storyboard.scenarist import split_script
from ui.components.film_render import on_sb_cancel, on_sb_export, on_sb_render
from ui.components.saved_storyboards import on_sb_open, on_sb_save, saved_choices, shown
from ui.components.shot_image import on_sb_image
from ui.components.shot_table import COLUMNS, current, form_number, table_rows
from ui.context import Services, bind
from ui.errors import kept, refused

EXAMPLE = (
    "Title: Night drive\nStyle: cinematic, film grain\n"
    "Shot 1: A red car drives through a rainy city at night (3s)\n"
    "Shot 2: Close up on the driver, neon lights on her face\n"
    "Shot 3: The car stops on a bridge over a dark river"
)


ROW_OPS = ("Add after", "Duplicate", "Delete", "Move up", "Move down")


@dataclass
class StoryboardTab:
    state: Any  # the storyboard as JSON
    jobs: Any  # the job ids of the render this browser session started: its Cancel stops only those
    saved: Any
    open_btn: Any
    title: Any
    script: Any
    model: Any
    preset: Any
    fps: Any
    target: Any
    seed: Any
    crossfade: Any
    split_btn: Any
    enhance_btn: Any
    save_btn: Any
    table: Any
    shot_no: Any
    ops: dict[str, Any]
    shot_image: Any  # a start image dropped here goes to shot #
    render_all: Any
    render_one: Any
    cancel: Any
    status: Any
    gallery: Any
    film: Any
    export_dir: Any
    export_btn: Any

    @property
    def form(self) -> list[Any]:
        """The inputs `current` reads the storyboard from."""
        return [self.state, self.table, self.title, self.model, self.preset, self.fps, self.crossfade]


def layout(services: Services) -> StoryboardTab:
    # long: one widget a line, top to bottom as the page shows them, then the dataclass filled in that order
    studio = services.studio
    presets = [("", "")] + [(p.name, p.id) for p in load_presets() if p.kind == "render"]  # names shown, ids kept
    state = gr.State(None)
    jobs = gr.State([])
    with gr.Row():
        saved = gr.Dropdown(label="Saved storyboards", choices=saved_choices(services), value=None, scale=3)
        open_btn = gr.Button("Open", scale=0)
        title = gr.Textbox(label="Title", scale=3)
    script = gr.Textbox(label="Script", lines=8, value=EXAMPLE, placeholder="Shot 1: …  (or paragraphs)")
    with gr.Row():
        model = gr.Dropdown(
            label="Model", choices=[e.name for e in studio.pipelines()], value=studio.default_model(), scale=2
        )
        preset = gr.Dropdown(label="Preset", choices=presets, value="", scale=1)
        # no minimum/maximum on these fields: the handlers check them, in words naming the field
        fps = gr.Number(label="fps", value=24, precision=0, scale=1)
        target = gr.Number(label="Total seconds (0: 3 s a shot)", value=0, scale=1)
        seed = gr.Number(label="Base seed", value=0, precision=0, scale=1)
        crossfade = gr.Number(label="Crossfade (s)", value=0, scale=1)
    with gr.Row():
        split_btn = gr.Button("Split into shots", variant="primary")
        enhance_btn = gr.Button("Enhance with local LLM", visible=bool(studio.vault.entries(kind="scenarist")))
        save_btn = gr.Button("Save")
    table = gr.Dataframe(
        headers=COLUMNS,
        datatype=["number", "str", "number", "number", "str", "str", "str"],
        interactive=True,
        wrap=True,
        elem_id="storyboard-table",
        column_count=7,
    )
    with gr.Row():
        shot_no = gr.Number(label="Shot #", value=1, precision=0, scale=1)
        ops = {name: gr.Button(name, scale=0) for name in ROW_OPS}
    with gr.Row():
        shot_image = gr.File(  # (a file: the studio checks the picture and says what is wrong with it)
            label="Start image for shot # (PNG, JPEG or WebP; empty its table cell to drop it)",
            file_types=[".png", ".jpg", ".jpeg", ".webp"],
            height=90,
            elem_id="storyboard-shot-image",
        )
    with gr.Row():
        render_all = gr.Button("Render storyboard", variant="primary")
        render_one = gr.Button("Render shot #")
        cancel = gr.Button("Cancel")
    status = gr.Markdown("", elem_id="storyboard-status")
    gallery = gr.Gallery(label="Shots", columns=6, height=200, allow_preview=False)
    film = gr.Video(label="Film", interactive=False, height=420, elem_id="storyboard-film")  # a 64×64 film stays small
    with gr.Row():
        export_dir = gr.Textbox(label="Export to folder", scale=3)
        export_btn = gr.Button("Export", scale=0)
    return StoryboardTab(
        state,
        jobs,
        saved,
        open_btn,
        title,
        script,
        model,
        preset,
        fps,
        target,
        seed,
        crossfade,
        split_btn,
        enhance_btn,
        save_btn,
        table,
        shot_no,
        ops,
        shot_image,
        render_all,
        render_one,
        cancel,
        status,
        gallery,
        film,
        export_dir,
        export_btn,
    )


def on_sb_split(services: Services, board_json, text, model_name, preset_id, fps_v, target_v, seed_v, crossfade_v):
    """The script's shots, shown but not saved: they replace the current storyboard's on the next Save
    (or render), so pressing Split again does not add a storyboard to the Saved menu."""
    try:
        board = split_script(
            text,
            fps=int(form_number("fps", fps_v, 24, 1, 60, whole=True)),
            target_s=form_number("total seconds", target_v, 0, 0, MAX_FILM_S, whole=False) or None,
            base_seed=int(form_number("base seed", seed_v, 0, 0, MAX_SEED, whole=True)),
            model=model_name or None,
            preset=preset_id or None,
            crossfade_s=form_number("crossfade (s)", crossfade_v, 0, 0, 2, whole=False),
        )
    except StudioError as exc:  # the engine's field name is the form's label here
        text = str(exc).replace("target_s", "total seconds", 1) if getattr(exc, "field", None) == "target_s" else exc
        return kept(5, 4, refused(text))
    except gr.Error as exc:
        return kept(5, 4, exc)
    board = board.model_copy(update={"id": (board_json or {}).get("id")})
    total = sum(shot_frames(s.duration_s, board.fps) for s in board.shots) / board.fps
    text = f"{len(board.shots)} shots, {total:.2f}s, not saved yet. Edit the table, then Save or render."
    return board.model_dump(mode="json"), table_rows(services.studio, board), board.title, gr.update(), text


def on_sb_enhance(services: Services, board_json, table_value, title_text, model_name, preset_id, fps_v, crossfade_v):
    from engine.film.scenarist import enhance

    try:
        board = current(board_json, table_value, title_text, model_name, preset_id, fps_v, crossfade_v)
        board, report = enhance(services.studio.vault, board)
    except StudioError as exc:
        return kept(5, 4, refused(exc))
    except gr.Error as exc:
        return kept(5, 4, exc)
    unchanged = [str(r["shot"]) for r in report if r["used"] == "rules"]
    return shown(
        services,
        board,
        "Prompts rewritten by the local LLM"
        + (f"; shots {', '.join(unchanged)} kept their prompt (unusable output)" if unchanged else "."),
    )


def on_sb_row(services: Services, op: str, number, *args):
    """One of `ROW_OPS` on shot `number`."""
    try:
        board = current(*args)
        shots, i = list(board.shots), int(form_number("shot #", number, 1, 1, None, whole=True)) - 1
        if not 0 <= i < len(shots):
            raise refused(f"shot: choose 1–{len(shots)}, got {i + 1}")
        if op == "Delete" and len(shots) == 1:
            raise refused("shots: a storyboard keeps at least one shot")
    except gr.Error as exc:
        return kept(5, 4, exc)
    if op == "Add after":
        shots.insert(
            i + 1, Shot(prompt="a new shot", duration_s=shots[i].duration_s, seed=max(s.seed for s in shots) + 1)
        )
    elif op == "Duplicate":
        shots.insert(i + 1, shots[i].model_copy())
    elif op == "Delete":
        shots.pop(i)
    elif op == "Move up" and i > 0:
        shots[i - 1], shots[i] = shots[i], shots[i - 1]
    elif op == "Move down" and i + 1 < len(shots):
        shots[i + 1], shots[i] = shots[i], shots[i + 1]
    return shown(services, board.model_copy(update={"shots": shots}), f"{op}: shot {i + 1}.")


def wire(tab: StoryboardTab, services: Services) -> None:
    private = {"api_visibility": "private"}
    form = tab.form
    outs = [tab.state, tab.table, tab.title, tab.saved, tab.status]
    tab.split_btn.click(
        bind(on_sb_split, services),
        inputs=[tab.state, tab.script, tab.model, tab.preset, tab.fps, tab.target, tab.seed, tab.crossfade],
        outputs=outs,
        **private,
    )
    tab.enhance_btn.click(bind(on_sb_enhance, services), inputs=form, outputs=outs, **private)
    tab.save_btn.click(bind(on_sb_save, services), inputs=form, outputs=outs, **private)
    tab.open_btn.click(
        bind(on_sb_open, services),
        inputs=tab.saved,
        outputs=[
            tab.state,
            tab.table,
            tab.title,
            tab.script,
            tab.model,
            tab.preset,
            tab.fps,
            tab.seed,
            tab.crossfade,
            tab.gallery,
        ],
        **private,
    )
    for op, button in tab.ops.items():
        name = "on_sb_" + op.lower().replace(" ", "_")
        button.click(bind(on_sb_row, services, op, name=name), inputs=[tab.shot_no, *form], outputs=outs, **private)
    tab.shot_image.upload(
        bind(on_sb_image, services), inputs=[tab.shot_image, tab.shot_no, *form], outputs=outs, **private
    )
    render_outs = [tab.state, tab.table, tab.status, tab.gallery, tab.film, tab.jobs]
    tab.render_all.click(
        bind(on_sb_render, services, False), inputs=[tab.shot_no, *form], outputs=render_outs, **private
    )
    tab.render_one.click(
        bind(on_sb_render, services, True, name="on_sb_render_shot"),
        inputs=[tab.shot_no, *form],
        outputs=render_outs,
        **private,
    )
    tab.cancel.click(bind(on_sb_cancel, services), inputs=tab.jobs, outputs=tab.status, **private)
    tab.export_btn.click(bind(on_sb_export, services), inputs=[tab.export_dir, *form], outputs=tab.status, **private)
