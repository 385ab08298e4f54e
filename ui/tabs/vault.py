"""The Model Vault tab: entries with their check status; verify, import, export, quantize, report.

This module lays the tab out and handles Verify, Quantize and the sovereignty report. The
entries table and Refresh are in `ui/components/vault_table.py`; long work runs as a task with
a Cancel button (`ui/components/vault_task.py`); Import and Export are in
`ui/components/vault_transfer.py`, Import a checkpoint in `ui/components/checkpoint_import.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import gradio as gr

from aiprod_studio.choices import DEFAULT_KIND, STORED_QUANTIZATIONS, VAULT_KINDS
from aiprod_studio.errors import StudioError
from aiprod_studio.files import atomic
from aiprod_studio.vault.cli import human_bytes, plural
from aiprod_studio.vault.report import build_report, to_markdown
from aiprod_studio.vault.verify import verify
from ui.components import checkpoint_import
from ui.components.vault_table import COLUMNS, lists, rows
from ui.components.vault_task import on_vault_cancel, track
from ui.components.vault_transfer import on_vault_export, on_vault_import
from ui.context import Services, bind
from ui.errors import refused

COLUMN_HELP = (
    "*family*: the model line an entry belongs to (ltx2, ltx, clip, llm) · *digest*: the start of the SHA-256 "
    "over the entry's files, what recipes record · *last check*: quick (sizes and dates) or deep (every byte "
    "re-hashed), and when"
)

PROVISION_HELP = (
    "**Adding models.** Real weights are fetched once on a connected machine with "
    "`aiprod-studio vault provision ltx-2 --revision <commit>` (see `models/catalog.json`), then carried here "
    "as a bundle (`vault export`) or a folder and brought in below. Nothing on this page uses the network."
)


@dataclass
class VaultTab:
    table: Any
    target: Any
    mode: Any
    verify_btn: Any
    cancel_btn: Any
    refresh_btn: Any
    status: Any
    task: Any  # the `Tracked` task this browser session started, for its Cancel button
    src: Any
    new_name: Any
    kind: Any
    license_: Any
    link: Any
    import_btn: Any
    export_name: Any
    export_dir: Any
    export_btn: Any
    q_name: Any
    q_to: Any
    q_new: Any
    quantize_btn: Any
    self_test: Any
    report_btn: Any
    report_file: Any
    report_view: Any
    checkpoint: checkpoint_import.CheckpointImport


def layout(services: Services) -> VaultTab:
    # long: one widget a line, top to bottom as the page shows them, then the dataclass filled in that order
    vault = services.studio.vault
    names = [e.name for e in vault.entries()]
    pipelines = [e.name for e in vault.entries("pipeline")]
    table = gr.Dataframe(
        value=rows(services.studio), headers=COLUMNS, interactive=False, wrap=True, elem_id="vault-table"
    )
    gr.Markdown(COLUMN_HELP, elem_id="vault-columns")
    with gr.Row():
        target = gr.Dropdown(label="Entry", choices=["(all)"] + names, value="(all)", scale=2)
        mode = gr.Radio(
            label="Check",
            choices=["quick", "deep"],
            value="quick",
            scale=1,
            info="quick: sizes and dates; deep: every byte re-hashed",
        )
        verify_btn = gr.Button("Verify", variant="primary", scale=0)
        cancel_btn = gr.Button("Cancel", scale=0)
        refresh_btn = gr.Button("Refresh", scale=0)
    status = gr.Markdown("", elem_id="vault-status")
    task = gr.State(None)
    with gr.Accordion("Import a model folder, a .safetensors file or a bundle", open=False):
        with gr.Row():
            src = gr.Textbox(label="Path on this machine", scale=3)
            new_name = gr.Textbox(label="Name (not needed for a bundle)", scale=2)
            kind = gr.Dropdown(label="Kind", choices=list(VAULT_KINDS), value=DEFAULT_KIND, scale=1)
        with gr.Row():
            license_ = gr.Textbox(label="License", scale=2)
            link = gr.Checkbox(label="Hard-link instead of copying (same disk only)", value=False, scale=2)
            import_btn = gr.Button("Import", scale=0)
    checkpoint = checkpoint_import.render(services)
    with gr.Accordion("Export a bundle for another machine", open=False), gr.Row():
        export_name = gr.Dropdown(label="Entry", choices=names, value=names[0] if names else None, scale=2)
        export_dir = gr.Textbox(label="Folder (e.g. a USB drive)", scale=3)
        export_btn = gr.Button("Export", scale=0)
    with gr.Accordion("Quantized copy (saved once, loads without re-quantizing)", open=False), gr.Row():
        q_name = gr.Dropdown(label="Pipeline", choices=pipelines, value=pipelines[0] if pipelines else None, scale=2)
        q_to = gr.Radio(label="Weights", choices=list(STORED_QUANTIZATIONS), value="fp8", scale=1)
        q_new = gr.Textbox(label="New name", scale=2)
        quantize_btn = gr.Button("Quantize", scale=0)
    with gr.Accordion("Sovereignty report", open=False):
        with gr.Row():
            self_test = gr.Checkbox(label="Run the network self-test (a render with the network blocked)", value=True)
            report_btn = gr.Button("Build report", scale=0)
        report_file = gr.File(label="Report (.md)", interactive=False)
        report_view = gr.Markdown("")
    gr.Markdown(PROVISION_HELP)
    return VaultTab(
        table,
        target,
        mode,
        verify_btn,
        cancel_btn,
        refresh_btn,
        status,
        task,
        src,
        new_name,
        kind,
        license_,
        link,
        import_btn,
        export_name,
        export_dir,
        export_btn,
        q_name,
        q_to,
        q_new,
        quantize_btn,
        self_test,
        report_btn,
        report_file,
        report_view,
        checkpoint,
    )


def on_vault_verify(services: Services, name: str, how: str):
    vault = services.studio.vault
    names_ = None if name in ("", "(all)", None) else [name]
    job = track(
        f"{how} verify",
        lambda progress, cancel: verify(vault, names_, deep=how == "deep", progress=progress, cancel=cancel),
    )
    try:
        while True:
            yield *next(job), gr.update()
    except StopIteration as done:
        report = done.value
    outcome = "all ok" if report.ok else plural(len(report.failures()), "problem")
    lines = [
        (
            f"**{report.mode} verify: {outcome}** ({plural(len(report.entries), 'entry', 'entries')}, "
            f"{human_bytes(report.hashed_bytes)} hashed in {report.seconds:.2f}s)"
        )
    ]
    lines += [f"- ✖ {f}" for f in report.failures()]
    yield "\n".join(lines), None, gr.update(value=rows(services.studio))


def on_vault_quantize(services: Services, name: str, to: str, new: str):
    yield (f"Quantizing {name} to {to}…",) + (gr.update(),) * 6
    try:
        entry = services.studio.quantize(name, to, (new or "").strip())  # holds the device meanwhile
    except StudioError as exc:
        raise refused(exc) from None
    yield (f"Saved **{entry.name}** ({human_bytes(entry.total_size)}); choose it in the Render tab.",) + lists(services)


def on_vault_report(services: Services, run_self_test: bool):
    from engine.selftest import network_self_test

    settings = services.studio.settings
    text = to_markdown(build_report(settings, network_self_test() if run_self_test else None))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = settings.outputs_dir / "reports" / f"sovereignty-{stamp}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, text)
    return str(out), text


def menus(tab: VaultTab, model_menu: Any, lora_menu: Any) -> list[Any]:
    """What `lists` updates, in its order; `model_menu` / `lora_menu` are the render form's."""
    return [tab.table, tab.target, tab.export_name, tab.q_name, model_menu, lora_menu]


def wire(tab: VaultTab, services: Services, model_menu: Any, lora_menu: Any) -> None:
    """Connect the tab's events; imports, quantized copies and trained LoRAs also show in the
    render form's `model_menu` and `lora_menu`."""
    private = {"api_visibility": "private"}
    listed = menus(tab, model_menu, lora_menu)
    tab.verify_btn.click(
        bind(on_vault_verify, services),
        inputs=[tab.target, tab.mode],
        outputs=[tab.status, tab.task, tab.table],
        **private,
    )
    tab.cancel_btn.click(on_vault_cancel, inputs=tab.task, outputs=tab.status, **private)
    tab.refresh_btn.click(bind(lists, services), outputs=listed, **private)
    tab.import_btn.click(
        bind(on_vault_import, services),
        inputs=[tab.src, tab.new_name, tab.kind, tab.license_, tab.link],
        outputs=[tab.status, tab.task, *listed],
        **private,
    )
    checkpoint_import.listen(tab.checkpoint, services, tab.status, tab.task, listed, tab.refresh_btn)
    tab.export_btn.click(
        bind(on_vault_export, services),
        inputs=[tab.export_name, tab.export_dir],
        outputs=[tab.status, tab.task],
        **private,
    )
    tab.quantize_btn.click(
        bind(on_vault_quantize, services),
        inputs=[tab.q_name, tab.q_to, tab.q_new],
        outputs=[tab.status, *listed],
        **private,
    )
    tab.report_btn.click(
        bind(on_vault_report, services), inputs=tab.self_test, outputs=[tab.report_file, tab.report_view], **private
    )
