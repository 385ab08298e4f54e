"""The sound of an edited clip: the parent's, with the new render's in place of (or after) its own
from the first join on, crossfaded at every join (`splice.joined_audio`) so there is no click."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe
from engine.render import media
from engine.render.edits.splice import joined_audio


def edited_sound(
    parent: Path, recipe: Recipe, audio: np.ndarray | None, rate: int | None
) -> tuple[np.ndarray | None, int | None, int]:
    """The edited clip's whole sound (`audio`: the new render's, from its first frame), its rate, and the
    sample up to which it is the parent's own (its packets are kept there)."""
    edit = recipe.edit
    assert edit is not None
    before, parent_rate = media.read_audio(parent)
    if before.size == 0:  # a silent parent: an extension takes the new sound, a retake stays silent
        return (audio, rate, 0) if edit.kind == "extend" else (None, None, 0)
    if audio is None or not rate:
        return before, parent_rate, before.shape[1]
    if parent_rate != rate:
        raise BadInput(f"edit: the parent's sound is {parent_rate} Hz, the model's {rate} Hz", field="edit")
    fps = recipe.fps
    start, end = edit.span(recipe.num_frames)
    offset = round((start - edit.context) / fps * rate)  # the clip's moment of the render's first frame
    # a parent whose sound ends a little early joins where it ends, taking the new sound from that same
    # moment (so the sound never drifts from the picture)
    join = min(round(start / fps * rate), before.shape[1])
    if join - offset > audio.shape[1]:
        return before, rate, before.shape[1]  # (no new sound to continue with: the parent's alone)
    whole = joined_audio(before, audio, rate, join, join - offset)
    if edit.kind == "retake":  # back to the parent's own sound after the range
        back = round(end / fps * rate)
        if back < before.shape[1] and back <= whole.shape[1]:
            whole = joined_audio(whole, before, rate, back, back)
        whole = whole[:, : before.shape[1]]
    return whole, rate, join
