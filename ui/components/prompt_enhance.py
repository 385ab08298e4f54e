"""The Render tab's Enhance: the vault's local LLM rewrites a short prompt into a detailed one,
put back in the prompt box for editing before anything renders (seeded by the form's seed)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from ui.context import Services, bind
from ui.errors import refused, shown


def layout(services: Services) -> Any:
    """The Enhance button, shown only when the vault holds a scenarist (a local LLM)."""
    return gr.Button(
        "Enhance prompt (local LLM)",
        size="sm",
        visible=bool(services.studio.vault.entries(kind="scenarist")),
        elem_id="render-enhance",
    )


def on_enhance(services: Services, prompt: str, seed: Any) -> tuple[Any, str]:
    from engine.film.scenarist import enhance_prompt

    try:
        number = int(seed) if isinstance(seed, (int, float)) and float(seed).is_integer() else 0
        result = enhance_prompt(services.studio.vault, prompt or "", number)
    except StudioError as exc:
        return gr.update(), shown(refused(exc))
    if result["used"] != "llm":
        return gr.update(), f"Enhance kept your prompt: the local LLM's {result['reason'][4:]}."
    return result["prompt"], f"Prompt rewritten by `{result['scenarist']}` (seed {number}): edit it, then Generate."


def wire(button: Any, services: Services, prompt: Any, seed: Any, status: Any) -> None:
    button.click(bind(on_enhance, services), inputs=[prompt, seed], outputs=[prompt, status], api_visibility="private")
