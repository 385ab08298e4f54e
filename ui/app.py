"""The studio's Gradio app: builds the Blocks and serves them on the loopback interface."""

from __future__ import annotations

import logging
import os

from aiprod_studio import offline

offline.enforce()

import gradio as gr  # noqa: E402

from aiprod_studio.settings import DEFAULT_HOST, Settings  # noqa: E402
from engine.studio import Studio  # noqa: E402
from ui import render_tab  # noqa: E402

log = logging.getLogger(__name__)

TITLE = "AIPROD Studio"
MAX_UPLOAD = "2gb"


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nLocal, offline video generation — nothing leaves this machine.")
        with gr.Tabs():
            with gr.Tab("Render", id="render"):
                render_tab.build(studio)
    return app


def launch_kwargs(studio: Studio, port: int) -> dict:
    """The locked-down launch settings: loopback only, no share link, no monitoring, no MCP."""
    return {
        "server_name": DEFAULT_HOST,
        "server_port": port,
        "share": False,
        "enable_monitoring": False,
        "mcp_server": False,
        "max_file_size": MAX_UPLOAD,
        "allowed_paths": [str(studio.settings.outputs_dir)],
        "show_error": True,
        "footer_links": ["api"],
    }


def prepare(studio: Studio, build_tiny_if_empty: bool = True) -> None:
    """First-run work before serving: a test model if the vault is empty, crash recovery."""
    if build_tiny_if_empty and not studio.pipelines():
        from engine.tiny import make_tiny

        print("The vault holds no pipeline: building the tiny test model…", flush=True)
        make_tiny(studio.vault)
    interrupted = studio.history.recover_interrupted()
    if interrupted:
        log.warning("jobs %s were running when the studio stopped; marked interrupted", interrupted)


def serve(settings: Settings, port: int, build_tiny_if_empty: bool = True) -> None:
    # Gradio's file cache lives in the studio's data dir, not a shared /tmp folder.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / "gradio-cache"))
    studio = Studio(settings)
    prepare(studio, build_tiny_if_empty)
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=100)
    print(f"AIPROD Studio: http://{DEFAULT_HOST}:{port}  (models: {settings.models_dir}, data: {settings.data_dir})",
          flush=True)
    try:
        app.launch(**launch_kwargs(studio, port))
    finally:
        studio.close()
