"""The `aiprod-studio ui` command (registered through the commands entry point)."""

from __future__ import annotations

import argparse
from typing import Any

from aiprod_studio.settings import DEFAULT_PORT, Settings


def cmd_ui(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from ui.app import serve

    serve(settings, port=args.port, build_tiny_if_empty=not args.no_tiny)
    return {"stopped": True}, "studio stopped"


def register(reg: Any) -> None:
    p = reg.command("ui", "start the studio in the browser (http://127.0.0.1:7860)", cmd_ui)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default 7860)")
    p.add_argument("--no-tiny", action="store_true", help="do not build the tiny test model into an empty vault")
