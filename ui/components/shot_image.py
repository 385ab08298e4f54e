"""A shot's start image in the Storyboard tab: a picture dropped for shot # is kept in the image
store and named by the shot (its table cell shows the picture's sha256; empty it to drop it)."""

from __future__ import annotations

import gradio as gr

from aiprod_studio.errors import StudioError
from ui.components.saved_storyboards import shown
from ui.components.shot_table import current, form_number
from ui.context import Services
from ui.errors import kept, refused


def on_sb_image(services: Services, path, number, *args):
    """A picture dropped for shot `number`: kept in the image store, named by the shot."""
    if not path:
        return tuple(gr.update() for _ in range(5))
    try:
        board = current(*args)
        shots, i = list(board.shots), int(form_number("shot #", number, 1, 1, None, whole=True)) - 1
        if not 0 <= i < len(shots):
            raise refused(f"shot: choose 1–{len(shots)}, got {i + 1}")
        sha = services.studio.image_store().put_source(path, "image")
    except StudioError as exc:
        return kept(5, 4, refused(exc))
    except gr.Error as exc:
        return kept(5, 4, exc)
    shots[i] = shots[i].model_copy(update={"image": sha})
    return shown(services, board.model_copy(update={"shots": shots}), f"Shot {i + 1} starts from the picture.")
