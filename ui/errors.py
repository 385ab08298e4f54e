"""How the UI and the API refuse a request: a `gr.Error` for the caller, one line in the log.

Gradio prints a whole traceback for every `gr.Error` by default; a refused value is not a
crash, so the studio's terminal gets one line instead.
"""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger("aiprod_studio.ui")


def refused(message: object) -> gr.Error:
    """The error to raise for bad input: `raise refused(exc) from None`."""
    text = str(message)
    log.warning("refused: %s", text[:300])
    return gr.Error(text, print_exception=False)
