"""The vault's entries table and the menus that list vault entries (the Refresh button).

Each row shows an entry with its last check status; `lists` updates the table, the Vault
tab's menus and the Render tab's model and LoRA menus together.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from aiprod_studio.vault.cli import human_bytes
from aiprod_studio.vault.verify import last_results
from engine.studio import Studio
from ui.context import Services

COLUMNS = ["status", "name", "kind", "family", "size", "source", "license", "digest", "last check"]


BADGES = {"ok": "✔ ok", "failed": "✖ failed"}


def rows(studio: Studio) -> list[list[Any]]:
    checks = last_results(studio.vault)
    out = []
    for e in studio.vault.entries():
        check = checks.get(e.name, {})
        source = (
            f"{e.source.repo}@{e.source.revision[:10]}"
            if e.source
            else f"from {e.derived_from.split('@')[0]}" + (f" ({e.quantization})" if e.quantization else "")
            if e.derived_from
            else "built-in test model"
            if e.test_model
            else f"converted from {e.imported_from.file}"
            if e.imported_from
            else "imported"
        )
        generation = studio.generation(e) if e.kind == "pipeline" else None
        family = f"{e.family} · {generation.label}" if generation else e.family
        if e.kind == "lora" and e.generation:
            family = f"{e.family} · LTX-{e.generation}"
        out.append(
            [
                BADGES.get(check.get("status", ""), "○ unchecked"),
                e.name,
                e.kind,
                family,
                human_bytes(e.total_size),
                source,
                e.license,
                e.digest[:12],
                f"{check.get('mode', '')} {check.get('checked', '')[:16].replace('T', ' ')}".strip(),  # to the minute
            ]
        )
    return out


def lists(services: Services) -> tuple[Any, ...]:
    """Updates for the menus that list vault entries: the table, this tab's menus, the Render tab's."""
    vault = services.studio.vault
    all_names = [e.name for e in vault.entries()]
    pipes = [e.name for e in vault.entries("pipeline")]
    return (
        gr.update(value=rows(services.studio)),
        gr.update(choices=["(all)"] + all_names),
        gr.update(choices=all_names),
        gr.update(choices=pipes),
        gr.update(choices=pipes),
        gr.update(choices=[e.name for e in vault.entries("lora")]),
    )
