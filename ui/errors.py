"""How the UI and the API refuse a request: a `gr.Error` for the caller, one line in the log.

Gradio prints a whole traceback for every `gr.Error` by default; a refused value is not a
crash, so the studio's terminal gets one line instead.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

log = logging.getLogger("aiprod_studio.ui")


def shown(error: gr.Error) -> str:
    """A refusal that must not hide the work: a toast, and the text for the tab's status line.
    (Raising `gr.Error` from an event marks every output of the event as failed.)"""
    gr.Warning(error.message)
    return f"⚠ {error.message}"


def untouched(error: gr.Error) -> Any:
    """A refused event's answer when it has no status line: the message as a toast, every
    output left as it was (one `gr.skip()` stands for all of them)."""
    gr.Warning(error.message)
    return gr.skip()


def kept(outputs: int, status: int, error: gr.Error) -> tuple[Any, ...]:
    """What a refused action returns: every output as it was, the refusal (`shown`) at index `status`."""
    return tuple(shown(error) if i == status else gr.update() for i in range(outputs))


def refused(message: object) -> gr.Error:
    """The error to raise for bad input: `raise refused(exc) from None`."""
    text = str(message)
    log.warning("refused: %s", text[:300])
    return gr.Error(text, print_exception=False)
