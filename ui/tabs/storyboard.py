"""The Storyboard tab: script → shots (a table to edit) → renders through the queue → one film.

The storyboard lives in a `gr.State` as JSON and in the database (saved on Split, Save and
Render). The shot table is read back into the storyboard before every action, so edits in
its cells are never lost.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.presets import load_presets
from aiprod_studio.storyboard.board import Shot, Storyboard, shot_frames
from aiprod_studio.storyboard.scenarist import split_script
from aiprod_studio.storyboard.db import StoryboardStore
from engine.render import media
from engine.film import shots as sb
from engine.models.loras import parse_lora_spec
from engine.studio import Studio
from engine.jobs.queue import QueueWorker
from ui.errors import refused
from ui.tabs.render import lora_label

COLUMNS = ["#", "prompt", "duration (s)", "seed", "LoRAs", "status"]
EXAMPLE = ("Title: Night drive\nStyle: cinematic, film grain\n"
           "Shot 1: A red car drives through a rainy city at night (3s)\n"
           "Shot 2: Close up on the driver, neon lights on her face\n"
           "Shot 3: The car stops on a bridge over a dark river")


def table_rows(studio: Studio, board: Storyboard) -> list[list[Any]]:
    rows = []
    try:
        plans = sb.plan(studio, board)
    except StudioError:
        plans = []
    for i, shot in enumerate(board.shots):
        p = plans[i] if i < len(plans) else None
        status = ("rendered" if p and p.current else f"job {p.job['id']} {p.job['status']}" if p and p.job
                  else "to render")
        rows.append([i + 1, shot.prompt, round(shot.duration_s, 3), shot.seed,
                     ", ".join(lora_label(r) for r in shot.loras), status])
    return rows


def read_table(board: Storyboard, table: Any) -> Storyboard:
    """The storyboard with the table's (possibly edited) prompts, durations and seeds."""
    values = table.values.tolist() if hasattr(table, "values") else list(table or [])
    shots = []
    for row in values:
        if not row or all(v in ("", None) for v in row[1:4]):
            continue
        try:
            number = int(float(row[0])) if str(row[0]).strip() not in ("", "nan") else 0
            base = board.shots[number - 1] if 1 <= number <= len(board.shots) else None
            specs = [x for x in str(row[4] if len(row) > 5 and row[4] is not None else "").split(",") if x.strip()]
            data = {"prompt": str(row[1]), "duration_s": float(row[2]), "seed": int(float(row[3])),
                    "loras": [parse_lora_spec(x) for x in specs]}
            shot = base.model_copy(update=data) if base else Shot(**data)
            shots.append(Shot.model_validate(shot.model_dump()))  # a copy is not validated: check it here
        except (ValueError, TypeError, OverflowError, StudioError) as exc:
            raise refused(f"shot {len(shots) + 1}: {exc}") from None
    return board.model_copy(update={"shots": shots})


def thumbnails(studio: Studio, board: Storyboard) -> list[tuple[Any, str]]:
    out = []
    for p in sb.plan(studio, board):
        if p.current:
            out.append((media.read_frames(p.job["output_path"])[0], f"Shot {p.index + 1}"))
    return out


def build(studio: Studio, worker: QueueWorker) -> tuple[Any, list[Any]]:
    """Build the tab; returns its page-load refresh (saved storyboards, model menu) and outputs."""
    store = StoryboardStore(studio.history)
    pipelines = [e.name for e in studio.pipelines()]
    presets = [""] + [p.id for p in load_presets() if p.kind == "render"]
    has_llm = bool(studio.vault.entries(kind="scenarist"))

    def saved_choices() -> list[str]:
        return [f"{b['id']}: {b['title']}" for b in store.list()]

    state = gr.State(None)
    jobs = gr.State([])  # the job ids of the render this browser session started: its Cancel stops only those
    with gr.Row():
        saved = gr.Dropdown(label="Saved storyboards", choices=saved_choices(), value=None, scale=3)
        open_btn = gr.Button("Open", scale=0)
        title = gr.Textbox(label="Title", scale=3)
    script = gr.Textbox(label="Script", lines=8, value=EXAMPLE, placeholder="Shot 1: …  (or paragraphs)")
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=pipelines, value=studio.default_model(), scale=2)
        preset = gr.Dropdown(label="Preset", choices=presets, value="", scale=1)
        fps = gr.Number(label="fps", value=24, precision=0, minimum=1, maximum=60, scale=1)
        target = gr.Number(label="Total seconds (0: 3 s a shot)", value=0, minimum=0, scale=1)
        seed = gr.Number(label="Base seed", value=0, precision=0, minimum=0, scale=1)
        crossfade = gr.Number(label="Crossfade (s)", value=0, minimum=0, maximum=2, scale=1)
    with gr.Row():
        split_btn = gr.Button("Split into shots", variant="primary")
        enhance_btn = gr.Button("Enhance with local LLM", visible=has_llm)
        save_btn = gr.Button("Save")
    table = gr.Dataframe(headers=COLUMNS, datatype=["number", "str", "number", "number", "str", "str"],
                         interactive=True, wrap=True, elem_id="storyboard-table", column_count=6)
    with gr.Row():
        shot_no = gr.Number(label="Shot #", value=1, precision=0, minimum=1, scale=1)
        ops = {name: gr.Button(name, scale=0) for name in ("Add after", "Duplicate", "Delete", "Move up", "Move down")}
    with gr.Row():
        render_all = gr.Button("Render storyboard", variant="primary")
        render_one = gr.Button("Render shot #")
        cancel = gr.Button("Cancel")
    status = gr.Markdown("", elem_id="storyboard-status")
    gallery = gr.Gallery(label="Shots", columns=6, height=200, allow_preview=False)
    film = gr.Video(label="Film", interactive=False)
    with gr.Row():
        export_dir = gr.Textbox(label="Export to folder", scale=3)
        export_btn = gr.Button("Export", scale=0)

    def current(board_json: Any, table_value: Any, title_text: str, model_name: str, preset_id: str, fps_v: float,
                crossfade_v: float) -> Storyboard:
        if not board_json:
            raise refused("shots: split a script first")
        board = Storyboard.model_validate(board_json)
        board = board.model_copy(update={"title": title_text or board.title, "model": model_name or None,
                                         "preset": preset_id or None, "fps": int(fps_v or 24),
                                         "crossfade_s": float(crossfade_v or 0)})
        return read_table(board, table_value)

    def shown(board: Storyboard, message: str) -> tuple[Any, ...]:
        board = store.save(board)
        return (board.model_dump(mode="json"), table_rows(studio, board), board.title,
                gr.update(choices=saved_choices(), value=f"{board.id}: {board.title}"), message)

    def on_sb_split(text, model_name, preset_id, fps_v, target_v, seed_v, crossfade_v):
        try:
            board = split_script(text, fps=int(fps_v or 24), target_s=float(target_v) if target_v else None,
                                 base_seed=int(seed_v or 0), model=model_name or None, preset=preset_id or None,
                                 crossfade_s=float(crossfade_v or 0))
        except StudioError as exc:
            raise refused(exc) from None
        total = sum(shot_frames(s.duration_s, board.fps) for s in board.shots) / board.fps
        return shown(board, f"{len(board.shots)} shots, {total:.2f}s. Edit the table, then render.")

    def on_sb_enhance(board_json, table_value, title_text, model_name, preset_id, fps_v, crossfade_v):
        from engine.film.scenarist import enhance

        board = current(board_json, table_value, title_text, model_name, preset_id, fps_v, crossfade_v)
        try:
            board, report = enhance(studio.vault, board)
        except StudioError as exc:
            raise refused(exc) from None
        kept = [str(r["shot"]) for r in report if r["used"] == "rules"]
        return shown(board, "Prompts rewritten by the local LLM" + (f"; shots {', '.join(kept)} kept their prompt "
                                                                    "(unusable output)" if kept else "."))

    def on_sb_save(*args):
        return shown(current(*args), "Saved.")

    def on_sb_open(choice: str):
        if not choice:
            raise refused("id: choose a saved storyboard")
        board = store.load(int(choice.split(":")[0]))
        return (board.model_dump(mode="json"), table_rows(studio, board), board.title, board.script,
                board.model or studio.default_model(), board.preset or "", board.fps, board.base_seed,
                board.crossfade_s, thumbnails(studio, board))

    def row_op(name: str):
        def on_sb_row(number, *args):
            board = current(*args)
            shots, i = list(board.shots), int(number or 1) - 1
            if not 0 <= i < len(shots):
                raise refused(f"shot: choose 1–{len(shots)}, got {int(number or 0)}")
            if name == "Add after":
                shots.insert(i + 1, Shot(prompt="a new shot", duration_s=shots[i].duration_s,
                                         seed=max(s.seed for s in shots) + 1))
            elif name == "Duplicate":
                shots.insert(i + 1, shots[i].model_copy())
            elif name == "Delete":
                if len(shots) == 1:
                    raise refused("shots: a storyboard keeps at least one shot")
                shots.pop(i)
            elif name == "Move up" and i > 0:
                shots[i - 1], shots[i] = shots[i], shots[i - 1]
            elif name == "Move down" and i + 1 < len(shots):
                shots[i + 1], shots[i] = shots[i], shots[i + 1]
            return shown(board.model_copy(update={"shots": shots}), f"{name}: shot {i + 1}.")

        on_sb_row.__name__ = "on_sb_" + name.lower().replace(" ", "_")
        return on_sb_row

    def render(only: int | None):
        def on_sb_render(number, *args):
            board = store.save(current(*args))
            state_json = board.model_dump(mode="json")
            try:
                for event in sb.render_queued(studio, worker, board, only=int(number) if only else None):
                    if isinstance(event, sb.ShotsQueued):
                        text = (f"Rendering shots {event.to_render}…" if event.to_render
                                else "Every shot is already rendered: assembling the film…")
                        yield state_json, table_rows(studio, board), text, gr.update(), gr.update(), event.job_ids
                    elif isinstance(event, sb.ShotProgress):
                        yield (gr.update(), gr.update(), f"Shot {event.shot}: step {event.step}/{event.total} · "
                               f"{event.done} of {event.shots} shots done", gr.update(), gr.update(), gr.update())
                    else:
                        store.set_film(board.id, event.info["path"])
                        yield (state_json, table_rows(studio, board), f"Film: {event.info['frames']} frames, "
                               f"{event.info['seconds']:.2f}s, {event.info['shots']} shots.",
                               thumbnails(studio, board), event.info["path"], gr.update())
                        return
            except StudioError as exc:
                raise refused(exc) from None
            yield state_json, table_rows(studio, board), "Shot rendered; render the storyboard to build the film.", \
                thumbnails(studio, board), gr.update(), gr.update()

        on_sb_render.__name__ = "on_sb_render_shot" if only else "on_sb_render"
        return on_sb_render

    def on_sb_cancel(job_ids: list[int] | None) -> str:
        stopped = [j for j in job_ids or [] if worker.status(j)["status"] in ("queued", "running")]
        for job_id in stopped:
            worker.cancel(job_id)
        return f"Cancelling jobs {stopped}…" if stopped else "Nothing is rendering from this page."

    def on_sb_export(folder, *args):
        board = store.save(current(*args))
        if not (folder or "").strip():
            raise refused("folder: where should the export go?")
        try:
            dest = sb.export(board, sb.plan(studio, board), sb.film_path(studio, board), folder.strip())
        except StudioError as exc:
            raise refused(exc) from None
        return f"Exported to `{dest}`: film.mp4, clips/, storyboard.json, film.edl."

    private = {"api_visibility": "private"}
    form = [state, table, title, model, preset, fps, crossfade]
    outs = [state, table, title, saved, status]
    split_btn.click(on_sb_split, inputs=[script, model, preset, fps, target, seed, crossfade], outputs=outs, **private)
    enhance_btn.click(on_sb_enhance, inputs=form, outputs=outs, **private)
    save_btn.click(on_sb_save, inputs=form, outputs=outs, **private)
    open_btn.click(on_sb_open, inputs=saved, outputs=[state, table, title, script, model, preset, fps, seed,
                                                      crossfade, gallery], **private)
    for name, button in ops.items():
        button.click(row_op(name), inputs=[shot_no, *form], outputs=outs, **private)
    render_outs = [state, table, status, gallery, film, jobs]
    render_all.click(render(None), inputs=[shot_no, *form], outputs=render_outs, **private)
    render_one.click(render(1), inputs=[shot_no, *form], outputs=render_outs, **private)
    cancel.click(on_sb_cancel, inputs=jobs, outputs=status, **private)
    export_btn.click(on_sb_export, inputs=[export_dir, *form], outputs=status, **private)

    def on_sb_page_load():
        return gr.update(choices=saved_choices()), gr.update(choices=[e.name for e in studio.pipelines()])

    return on_sb_page_load, [saved, model]
