"""Saved storyboards: the Saved menu, Open, Save, and what every storyboard action shows after saving."""

from __future__ import annotations

from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.storyboard.board import Storyboard
from aiprod_studio.storyboard.db import StoryboardStore
from ui.components.shot_table import current, table_rows, thumbnails
from ui.context import Services
from ui.errors import kept, refused


def saved_choices(services: Services) -> list[str]:
    return [f"{b['id']}: {b['title']}" for b in StoryboardStore(services.studio.history).list()]


def shown(services: Services, board: Storyboard, message: str) -> tuple[Any, ...]:
    """Save the storyboard; (state, table, title, saved menu, status) showing it."""
    board = StoryboardStore(services.studio.history).save(board)
    return (
        board.model_dump(mode="json"),
        table_rows(services.studio, board),
        board.title,
        gr.update(choices=saved_choices(services), value=f"{board.id}: {board.title}"),
        message,
    )


def on_sb_save(services: Services, *args):
    try:
        return shown(services, current(*args), "Saved.")
    except StudioError as exc:
        return kept(5, 4, refused(exc))
    except gr.Error as exc:
        return kept(5, 4, exc)


def on_sb_open(services: Services, choice: str):
    if not choice:
        raise refused("saved storyboards: choose one in the menu first")
    studio = services.studio
    try:
        board = StoryboardStore(studio.history).load(int(str(choice).split(":")[0]))
    except (StudioError, KeyError, ValueError):
        raise refused(f"saved storyboards: there is no storyboard {str(choice)[:60]!r} (refresh the page)") from None
    return (
        board.model_dump(mode="json"),
        table_rows(studio, board),
        board.title,
        board.script,
        board.model or studio.default_model(),
        board.preset or "",
        board.fps,
        board.base_seed,
        board.crossfade_s,
        thumbnails(studio, board),
    )


def on_sb_page_load(services: Services):
    """Storyboards saved and models added since the app was built."""
    return (
        gr.update(choices=saved_choices(services)),
        gr.update(choices=[e.name for e in services.studio.pipelines()]),
    )
