"""A storyboard's film: Render storyboard / Render shot # through the queue, Cancel, Export.

Rendering queues the shots without a current clip, follows them, then assembles the film;
the page keeps the job ids it started in a `gr.State`, so its Cancel stops only those.
Export writes the film, its clips, the storyboard and an EDL into a folder.
"""

from __future__ import annotations

import logging

import gradio as gr

from aiprod_studio.errors import Cancelled, StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.storyboard.db import StoryboardStore
from engine.film import edl, produce
from engine.film import shots as sb
from ui.components.qa_report import qa_markdown
from ui.components.shot_table import current, table_rows, thumbnails
from ui.context import Services
from ui.errors import kept, refused

log = logging.getLogger(__name__)


def on_sb_render(services: Services, only: bool, number, *args):
    """Render the shots without a current clip (or only shot `number`), then assemble the film:
    yields (state, table, status, gallery, film, the page's job ids)."""
    studio, store = services.studio, StoryboardStore(services.studio.history)
    try:
        board = store.save(current(*args))
    except StudioError as exc:
        yield kept(6, 2, refused(exc))
        return
    except gr.Error as exc:
        yield kept(6, 2, exc)
        return
    state_json = board.model_dump(mode="json")
    try:
        for event in produce.render_queued(studio, services.worker, board, only=int(number) if only else None):
            if isinstance(event, produce.ShotsQueued):
                text = (
                    f"Rendering shots {event.to_render}…"
                    if event.to_render
                    else "Every shot is already rendered: assembling the film…"
                )
                yield state_json, table_rows(studio, board), text, gr.update(), gr.update(), event.job_ids
            elif isinstance(event, produce.ShotProgress):
                text = f"Shot {event.shot}: step {event.step}/{event.total} · {event.done} of {event.shots} shots done"
                yield gr.update(), gr.update(), text, gr.update(), gr.update(), gr.update()
            else:
                info = event.info
                store.set_film(board.id, info["path"])
                text = f"Film: {info['frames']} frames, {info['seconds']:.2f}s, {info['shots']} shots."
                text = f"{text}\n\n{qa_markdown(info.get('qa'))}".strip()
                yield state_json, table_rows(studio, board), text, thumbnails(studio, board), info["path"], gr.update()
                return
    except Cancelled as exc:  # not a failure: the table shows which shots stopped
        log.info("storyboard %s: %s", board.id, exc)
        yield state_json, table_rows(studio, board), f"Render cancelled ({exc}).", gr.update(), gr.update(), gr.update()
        return
    except StudioError as exc:
        text = f"⚠ Render failed: {refused(exc).message}"
        yield state_json, table_rows(studio, board), text, gr.update(), gr.update(), gr.update()
        return
    yield (
        state_json,
        table_rows(studio, board),
        "Shot rendered; render the storyboard to build the film.",
        thumbnails(studio, board),
        gr.update(),
        gr.update(),
    )


def on_sb_cancel(services: Services, job_ids: list[int] | None) -> str:
    worker = services.worker
    stopped = [j for j in job_ids or [] if worker.status(j)["status"] not in FINAL_STATUSES]
    for job_id in stopped:
        worker.cancel(job_id)
    return f"Cancelling jobs {stopped}…" if stopped else "Nothing is rendering from this page."


def on_sb_export(services: Services, folder, *args):
    studio = services.studio
    try:
        board = StoryboardStore(studio.history).save(current(*args))
        if not (folder or "").strip():
            raise refused("folder: where should the export go?")
        dest = edl.export(board, sb.plan(studio, board), sb.film_path(studio, board), folder.strip())
    except StudioError as exc:
        return f"⚠ {refused(exc).message}"
    except gr.Error as exc:
        return f"⚠ {exc.message}"
    return f"Exported to `{dest}`: film.mp4, clips/, storyboard.json, film.edl."
