"""The studio's Gradio app: builds the Blocks and serves them, locked down.

Loopback only unless `--listen` (which needs `--auth`); never a share link, no
monitoring endpoint, no MCP server; a request guard in front of Gradio (see
`ui/security.py`); Gradio's file cache inside the studio's data dir.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from aiprod_studio import offline

offline.enforce()

import gradio as gr
from starlette.middleware import Middleware

from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.errors import BadInput
from aiprod_studio.settings import DEFAULT_HOST, Settings
from engine.jobs.queue import QueueWorker
from engine.jobs.workers import Supervisor, shared_limits
from engine.runners import make_worker
from engine.studio import Studio
from ui import api
from ui.components import saved_storyboards, vault_table
from ui.context import Services, bind
from ui.security import StudioGuard, normalize_origin
from ui.tabs import history as history_tab
from ui.tabs import render as render_tab
from ui.tabs import storyboard as storyboard_tab
from ui.tabs import training as training_tab
from ui.tabs import vault as vault_tab

log = logging.getLogger(__name__)

TITLE = "AIPROD Studio"
MAX_UPLOAD = "2gb"


# table headers never break inside a word; on a phone the five tabs fit in one row instead of a "⋯" menu
STUDIO_CSS = """
.header-content .header { white-space: nowrap; word-break: keep-all; }
.overflow-menu > button::after { content: "more tabs"; margin-left: 4px; font-size: 12px; }
@media (max-width: 560px) {
  .tab-wrapper .tab-container button { padding-left: 4px; padding-right: 4px; font-size: 13px; }
}
"""

# Ctrl+Enter (⌘+Enter) in the Render prompt presses Generate, and radio groups are one tab stop
# each; runs in the page, loads nothing
SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    if (!e.target.closest || !e.target.closest("#render-prompt")) return;
    const button = document.querySelector("#render-generate");
    if (button) { e.preventDefault(); button.click(); }
  });
  // each radio group is one tab stop, its options chosen with the arrow keys: one name per group
  let groups = 0;
  const groupRadios = () => document.querySelectorAll("fieldset").forEach((set) => {
    const radios = set.querySelectorAll("input[type=radio]");
    if (!radios.length) return;
    set.dataset.aiprodRadios ||= `aiprod-radios-${++groups}`;
    radios.forEach((r) => { if (r.name !== set.dataset.aiprodRadios) r.name = set.dataset.aiprodRadios; });
  });
  const watched = { childList: true, subtree: true, attributeFilter: ["name"] };  // Svelte resets names
  new MutationObserver(groupRadios).observe(document.body, watched);
  groupRadios();
  document.documentElement.dataset.aiprodShortcuts = "on";
}
"""


def build_app(studio: Studio, worker: QueueWorker) -> gr.Blocks:
    """The page: each tab laid out, then wired to the services every browser session shares."""
    services = Services(studio, worker)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nLocal, offline video generation — nothing leaves this machine.")
        with gr.Tabs(selected="render") as tabs:  # the page opens where a first clip is made
            with gr.Tab("Storyboard", id="storyboard"):
                board = storyboard_tab.layout(services)
                storyboard_tab.wire(board, services)
            with gr.Tab("Render", id="render"):
                render = render_tab.layout(services)
                render_tab.wire(render, services)
            with gr.Tab("Training", id="training"):
                training_tab.wire(training_tab.layout(services), services)
            with gr.Tab("History", id="history"):
                history_tab.wire(history_tab.layout(services), services, render.form, tabs)
            with gr.Tab("Model Vault", id="vault"):
                vault = vault_tab.layout(services)
                menus = (render.field("model"), render.field("loras"))
                vault_tab.wire(vault, services, *menus)
        # a reload shows models added since the app was built (CLI imports, quantized copies)
        app.load(bind(vault_table.lists, services), outputs=vault_tab.menus(vault, *menus), api_visibility="private")
        app.load(
            bind(saved_storyboards.on_sb_page_load, services),
            outputs=[board.saved, board.model],
            api_visibility="private",
        )
        api.build(studio, worker)
    return app


def gradio_cache_dir(settings: Settings) -> Path:
    return settings.data_dir / "gradio-cache"


def parse_auth(auth: str | None, auth_file: str | None) -> list[tuple[str, str]]:
    pairs = []
    lines = [auth] if auth else []
    if auth_file:
        try:
            lines += [ln.strip() for ln in Path(auth_file).read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise BadInput(f"auth_file {auth_file!r} cannot be read: {exc.strerror}", field="auth_file") from None
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise BadInput("auth must be user:password (both non-empty)", field="auth")
        pairs.append((user, password))
    return pairs


def launch_kwargs(
    studio: Studio,
    port: int,
    listen: bool = False,
    auth: list[tuple[str, str]] | None = None,
    allow_hosts: tuple[str, ...] = (),
    allow_origins: tuple[str, ...] = (),
) -> dict:
    """The locked-down launch settings."""
    if listen and not auth:
        raise BadInput(
            "--listen makes the studio reachable from the network: it needs --auth user:password (or --auth-file FILE)",
            field="auth",
        )
    try:
        origins = {normalize_origin(o) for o in allow_origins}
    except ValueError as exc:
        raise BadInput(f"allow_origin: {exc}", field="allow_origin") from None
    hosts = set(allow_hosts)
    if listen:
        hosts |= {socket.gethostname(), socket.getfqdn()}
        try:
            hosts |= {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    roots = [studio.settings.outputs_dir, gradio_cache_dir(studio.settings)]
    return {
        "server_name": "0.0.0.0" if listen else DEFAULT_HOST,
        "server_port": port,
        "share": False,
        "auth": auth or None,
        "enable_monitoring": False,
        "mcp_server": False,
        "max_file_size": MAX_UPLOAD,
        "allowed_paths": [str(studio.settings.outputs_dir)],
        "blocked_paths": [str(studio.settings.models_dir), str(studio.settings.db_path)],
        "show_error": True,
        "js": SHORTCUTS_JS,
        "css": STUDIO_CSS,
        "quiet": True,  # the studio prints its own address; Gradio's banner would suggest a share link
        "footer_links": ["api"],
        "run_history": False,  # its routes can save runs to, and fetch assets from, a remote bucket
        "strict_cors": "null" not in origins,  # an allowed `null` page may also read the answers
        "app_kwargs": {
            "middleware": [Middleware(StudioGuard, allowed_hosts=hosts, file_roots=roots, allowed_origins=origins)]
        },
    }


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, before any work starts."""
    if not 1 <= port <= 65535:
        raise BadInput(f"port must be 1…65535, got {port}", field="port")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BadInput(
                f"port {port} is in use on {host} ({exc.strerror}): choose another with --port", field="port"
            ) from None


def prepare(studio: Studio, build_tiny_if_empty: bool = True) -> list[int]:
    """First-run work before serving: a test model if the vault is empty, crash recovery."""
    if build_tiny_if_empty and not studio.pipelines():
        from engine.models.tiny import make_tiny
        from engine.qa.tiny_clip import make_tiny_clip

        print("The vault holds no pipeline: building the tiny test model…", flush=True)
        make_tiny(studio.vault)
        if not studio.vault.entries("qa"):  # and a tiny CLIP, so every clip gets its scores
            make_tiny_clip(studio.vault)
        if not studio.vault.entries("upsampler"):  # and a tiny latent upsampler, so Upscale 2× works
            from engine.models.tiny_upsampler import make_tiny_upsampler

            make_tiny_upsampler(studio.vault)
    recovered = studio.recover()
    if recovered["interrupted"]:
        log.warning(
            "jobs %s were running when their process stopped: marked interrupted (Resume them in the queue)",
            recovered["interrupted"],
        )
    return recovered["interrupted"]


def serve(
    settings: Settings,
    port: int,
    build_tiny_if_empty: bool = True,
    listen: bool = False,
    auth: str | None = None,
    auth_file: str | None = None,
    allow_hosts: tuple[str, ...] = (),
    allow_origins: tuple[str, ...] = (),
    devices: Sequence[str] = (),
) -> None:
    """Serve the studio; `devices`: one render worker on each (`engine/jobs/workers.py`
    `worker_devices`), the studio's own on the first, the others as worker processes."""
    credentials = parse_auth(auth, auth_file)
    check_port_free("0.0.0.0" if listen else DEFAULT_HOST, port)
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_cache_dir(settings))
    limits = shared_limits(devices, settings.memory_limit_gb) if devices else []  # workers on one device share it
    if devices:
        settings = dataclasses.replace(settings, device=devices[0], memory_limit_gb=limits[0])
    studio = Studio(settings)
    # refuses --listen without auth, and a malformed origin
    kwargs = launch_kwargs(studio, port, listen, credentials, allow_hosts, allow_origins)
    prepare(studio, build_tiny_if_empty)
    worker = make_worker(studio).start()
    app = build_app(studio, worker)
    app.queue(default_concurrency_limit=4, max_size=200)
    host = "0.0.0.0 (all interfaces)" if listen else DEFAULT_HOST
    print(
        f"AIPROD Studio: http://{DEFAULT_HOST}:{port}  (listening on {host}; models: {settings.models_dir}, "
        f"data: {settings.data_dir})",
        flush=True,
    )
    if len(devices) > 1:
        print(
            f"Render workers: {len(devices)}, on {', '.join(devices)} (logs: {settings.data_dir / 'logs'})", flush=True
        )
    workers = Supervisor(
        settings, devices[1:], studio.history, limits=limits[1:]
    ).start()  # also sweeps dead workers' jobs
    try:
        with sigterm_as_interrupt():  # a stop from a service manager is a Ctrl-C: the workers stop with the studio
            app.launch(**kwargs)
    finally:
        workers.stop()
        worker.stop()
        studio.close()
