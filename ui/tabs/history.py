"""The History tab: past renders and training runs newest first, filters and paging, details and actions.

The actions (re-use settings, re-render, delete with its file) are a render's: a training run's
row says so (its LoRA is in the vault; the Training tab resumes it).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES, STATUSES
from aiprod_studio.jobs.rows import qa_summary
from aiprod_studio.recipe import Recipe
from engine.studio import Studio
from ui.components import clip_edits
from ui.components.clip_edits import ClipEdits, do_upscale, retake_words
from ui.components.qa_report import qa_markdown
from ui.components.render_form import RenderForm, updates_from_recipe
from ui.context import Services, bind
from ui.errors import refused

PAGE = 12
COLUMNS = ["job", "status", "prompt", "model", "seed", "seconds", "created", "quality", "kind"]
NOT_A_RENDER = "Job {} is a training run: this action is for renders (the Training tab resumes a run)."


# the Show menu: which clips, in which order, by their quality report
VIEWS = {
    "newest first": {},
    "best prompt match first": {"order": "score"},
    "with QA findings": {"findings": True},
    "clean clips only": {"findings": False},
}


def page_rows(
    studio: Studio, text: str, status: str, model: str, page: int, view: str = "newest first"
) -> list[dict[str, Any]]:
    return studio.history.jobs(
        limit=PAGE,
        offset=max(0, page - 1) * PAGE,
        status=status or None,
        text=text or None,
        model=model or None,
        **VIEWS.get(view or "newest first", {}),
    )


def details(row: dict[str, Any]) -> str:
    what = "training run" if row["kind"] == "train" else "render"
    lines = [f"**Job {row['id']}** ({what}) · {row['status']} · model `{row['model']}` · seed {row['seed']}"]
    if row.get("wall_s") is not None:
        verb = "Trained" if row["kind"] == "train" else "Rendered"
        lines.append(f"{verb} in {row['wall_s']:.2f}s (started {row['started_at']}, finished {row['finished_at']})")
    if row.get("error"):
        lines.append(f"Error: {row['error']}")
    edit = (row.get("recipe") or {}).get("edit") if isinstance(row.get("recipe"), dict) else None
    if row.get("parent_id") and edit and edit.get("kind") == "retake":
        lines.append(f"Retake of job {row['parent_id']}: {retake_words(row['recipe'])}")
    elif row.get("parent_id") and edit:
        lines.append(f"Extended from job {row['parent_id']} by {edit['frames']} frames")
    if row.get("output_path"):
        lines.append(f"File: `{row['output_path']}`")
    if row.get("qa"):
        lines.append(qa_markdown(row["qa"]))
    return "\n\n".join(lines)


@dataclass
class HistoryTab:
    text: Any
    status: Any
    model: Any
    page: Any
    refresh: Any
    gallery: Any
    table: Any
    ids: Any  # the job ids of the table's rows, per session
    video_ids: Any  # … and of the gallery's clips
    selected: Any
    video: Any
    info: Any
    recipe_view: Any
    reuse: Any
    rerender: Any
    upscale: Any  # the selected clip again, two-stage 2×
    edits: ClipEdits  # Extend, Retake
    open_folder: Any
    confirm: Any
    delete: Any
    message: Any

    view: Any = None  # the Show menu (newest, best match, with findings, clean)

    @property
    def filters(self) -> list[Any]:
        return [self.text, self.status, self.model, self.page, self.view]

    @property
    def listing(self) -> list[Any]:
        return [self.gallery, self.table, self.ids, self.video_ids]


def layout(services: Services) -> HistoryTab:
    with gr.Row():
        text = gr.Textbox(label="Prompt contains", scale=3)
        status = gr.Dropdown(label="Status", choices=[""] + list(STATUSES), value="", scale=1)
        model = gr.Dropdown(
            label="Model", choices=[""] + [e.name for e in services.studio.pipelines()], value="", scale=1
        )
        view = gr.Dropdown(label="Show", choices=list(VIEWS), value="newest first", scale=1)
        page = gr.Number(label="Page", value=1, precision=0, minimum=1, scale=1)
        refresh = gr.Button("Refresh", scale=0)
    gallery = gr.Gallery(label="Renders", columns=6, height=260, allow_preview=False)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="history-table")
    ids = gr.State([])
    video_ids = gr.State([])
    selected = gr.State(None)
    with gr.Row():
        with gr.Column(scale=2):
            video = gr.Video(label="Selected render", interactive=False, height=360)
        with gr.Column(scale=3):
            info = gr.Markdown("Select a render above.")
            recipe_view = gr.JSON(label="Recipe")
            with gr.Row():
                reuse = gr.Button("Re-use settings")
                rerender = gr.Button("Re-render")
                upscale = gr.Button("Upscale 2×", visible=bool(services.studio.vault.entries(kind="upsampler")))
                open_folder = gr.Button("Open folder")
            edits = clip_edits.render()
            with gr.Row():
                confirm = gr.Checkbox(label="Yes, delete the row and its file", value=False)
                delete = gr.Button("Delete", variant="stop")
            message = gr.Markdown("")
    return HistoryTab(
        text,
        status,
        model,
        page,
        refresh,
        gallery,
        table,
        ids,
        video_ids,
        selected,
        video,
        info,
        recipe_view,
        reuse,
        rerender,
        upscale,
        edits,
        open_folder,
        confirm,
        delete,
        message,
        view,
    )


def load(services: Services, text_v, status_v, model_v, page_v, view_v="newest first"):
    rows = page_rows(services.studio, text_v, status_v, model_v, int(page_v or 1), view_v)
    done = [r for r in rows if r["kind"] == "render" and r["status"] == "done" and playable(r)]
    table_v = [
        [
            r["id"],
            "paused" if r.get("paused") else r["status"],
            (r["prompt"] or "")[:80],
            r["model"],
            r["seed"],
            round(r["wall_s"], 2) if r["wall_s"] is not None else "",
            r["created_at"][:19],
            qa_summary(r.get("qa")),
            r["kind"],
        ]
        for r in rows
    ]
    gallery_v = [(r["output_path"], f"#{r['id']} {(r['prompt'] or '')[:40]}") for r in done]
    return gallery_v, table_v, [r["id"] for r in rows], [r["id"] for r in done]


def playable(row: dict[str, Any]) -> bool:
    return bool(row["output_path"]) and Path(row["output_path"]).exists()


def render_row(services: Services, job_id) -> dict[str, Any]:
    """The selected job, refused when it is a training run (the actions are a render's)."""
    row = services.studio.history.get(int(job_id))
    if row["kind"] != "render":
        raise refused(NOT_A_RENDER.format(row["id"]))
    return row


def show(services: Services, job_id: int | None):
    if job_id is None:
        return None, "Select a render above.", None, None
    try:
        row = services.studio.history.get(int(job_id))
    except KeyError:
        return None, f"Job {job_id} no longer exists.", None, None
    path = row["output_path"] if row["kind"] == "render" and row["status"] == "done" and playable(row) else None
    return path, details(row), row["recipe"], row["id"]


def pick_table(services: Services, id_list, evt: gr.SelectData):
    return show(services, id_list[evt.index[0]] if id_list and evt.index else None)


def pick_gallery(services: Services, id_list, evt: gr.SelectData):
    return show(services, id_list[evt.index] if id_list and evt.index is not None else None)


def do_reuse(services: Services, job_id):
    if job_id is None:
        raise refused("Select a render first.")
    recipe = render_row(services, job_id)["recipe"]
    return updates_from_recipe(recipe, services.studio.image_store().root) + [gr.Tabs(selected="render")]


def do_rerender(services: Services, job_id):
    if job_id is None:
        return "Select a render first."
    if services.studio.history.get(int(job_id))["kind"] != "render":
        return NOT_A_RENDER.format(job_id)
    try:
        recipe = Recipe.model_validate(services.studio.history.get(job_id)["recipe"])
        new_id = services.worker.enqueue(recipe)
    except StudioError as exc:
        return str(exc)
    return f"Job {new_id} queued with the same recipe as job {job_id}."


def do_delete(services: Services, job_id, confirmed, text_v, status_v, model_v, page_v, view_v="newest first"):
    # outputs: the listing (4), video, message, recipe, selected, confirm, details
    keep = [gr.update()] * 4
    if job_id is None:
        return keep + [None, "Select a render first.", None, job_id, False, gr.update()]
    if not confirmed:
        return keep + [gr.update(), "Tick the box to confirm the deletion.", gr.update(), job_id, False, gr.update()]
    history = services.studio.history
    row = history.get(job_id)
    if row["kind"] != "render":  # its file is a LoRA in the vault, not an output to unlink
        return keep + [gr.update(), NOT_A_RENDER.format(job_id), gr.update(), job_id, False, gr.update()]
    if row["status"] not in FINAL_STATUSES:
        return keep + [gr.update(), "Cancel the job before deleting it.", gr.update(), job_id, False, gr.update()]
    history.delete(job_id)
    if row["output_path"]:
        Path(row["output_path"]).unlink(missing_ok=True)
    deleted = f"Job {job_id} and its file were deleted."
    return [*load(services, text_v, status_v, model_v, page_v, view_v), None, deleted, None, None, False, ""]


LOCAL_CLIENTS = ("127.0.0.1", "::1", "localhost")


def do_open(services: Services, job_id, request: gr.Request):
    folder = services.studio.settings.outputs_dir
    client = getattr(getattr(request, "client", None), "host", "") or ""
    if client not in LOCAL_CLIENTS:  # under --listen a window would open on the studio's machine, not here
        where = services.studio.history.get(int(job_id))["output_path"] if job_id else None
        return f"The studio runs on another machine; its file is there, at `{where or folder}`."
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener:
        subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return f"Opened `{folder}`."
    return f"Outputs folder: `{folder}`"


def wire(tab: HistoryTab, services: Services, form: RenderForm, tabs: gr.Tabs) -> None:
    """Connect the tab's events; Re-use fills the render `form` and switches `tabs` to it."""
    private = {"api_visibility": "private"}
    listing = tab.listing
    shown = [tab.video, tab.info, tab.recipe_view, tab.selected]
    loader = bind(load, services)
    triggers = (
        tab.refresh.click,
        tab.text.submit,
        tab.status.change,
        tab.model.change,
        tab.page.change,
        tab.view.change,
    )
    for trigger in triggers:
        trigger(loader, inputs=tab.filters, outputs=listing, **private)
    tabs.select(loader, inputs=tab.filters, outputs=listing, **private)
    tab.table.select(bind(pick_table, services), inputs=tab.ids, outputs=shown, **private)
    tab.gallery.select(bind(pick_gallery, services), inputs=tab.video_ids, outputs=shown, **private)
    tab.reuse.click(bind(do_reuse, services), inputs=tab.selected, outputs=form.components + [tabs], **private)
    tab.rerender.click(bind(do_rerender, services), inputs=tab.selected, outputs=tab.message, **private)
    tab.upscale.click(bind(do_upscale, services), inputs=tab.selected, outputs=tab.message, **private)
    clip_edits.listen(tab.edits, services, tab.selected, tab.message)
    tab.delete.click(
        bind(do_delete, services),
        inputs=[tab.selected, tab.confirm] + tab.filters,
        outputs=listing + [tab.video, tab.message, tab.recipe_view, tab.selected, tab.confirm, tab.info],
        **private,
    )
    tab.open_folder.click(bind(do_open, services), inputs=tab.selected, outputs=tab.message, **private)
