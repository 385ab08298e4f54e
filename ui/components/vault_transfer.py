"""Bringing models into the vault and carrying them out: Import (a folder, a .safetensors file or a
bundle) and Export (a bundle another machine checks with `sha256sum -c`)."""

from __future__ import annotations

import gradio as gr

from aiprod_studio.vault.cli import human_bytes
from aiprod_studio.vault.transfer import export_bundle, import_path
from ui.components.vault_table import lists
from ui.components.vault_task import track
from ui.context import Services
from ui.errors import refused


def on_vault_import(services: Services, path: str, name: str, kind_: str, license_text: str, hard_link: bool):
    if not (path or "").strip():
        raise refused("path: give the folder, file or bundle to import")
    fields = {"license": license_text.strip()} if (license_text or "").strip() else {}
    job = track(
        "import",
        lambda progress, cancel: import_path(
            services.studio.vault,
            path.strip(),
            (name or "").strip() or None,
            kind=None if kind_ == "pipeline" else kind_,
            link=hard_link,
            progress=progress,
            cancel=cancel,
            **fields,
        ),
    )
    try:
        while True:
            yield next(job) + (gr.update(),) * 6
    except StopIteration as done:
        entry = done.value
    text = (
        f"Imported **{entry.name}**: {len(entry.files)} files, {human_bytes(entry.total_size)}, "
        f"digest `{entry.digest[:12]}`."
    )
    yield (text, None) + lists(services)


def on_vault_export(services: Services, name: str, folder: str):
    if not name or not (folder or "").strip():
        raise refused("to: choose an entry and a folder to write the bundle into")
    job = track(
        "export",
        lambda progress, cancel: export_bundle(
            services.studio.vault, name, folder.strip(), progress=progress, cancel=cancel
        ),
    )
    try:
        while True:
            yield next(job)
    except StopIteration as done:
        yield (f"Exported **{name}** to `{done.value}` — check it anywhere with `sha256sum -c CHECKSUMS.sha256`.", None)
