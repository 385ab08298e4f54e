"""The `aiprod-studio ui` command (registered through the commands entry point)."""

from __future__ import annotations

import argparse
from typing import Any

from aiprod_studio.settings import DEFAULT_PORT, Settings


def cmd_ui(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from engine.jobs.workers import worker_devices

    devices = worker_devices(args.workers, args.gpus, settings.device)  # refused before anything starts
    from ui.app import serve

    serve(
        settings,
        devices=devices,
        port=args.port,
        build_tiny_if_empty=not args.no_tiny,
        listen=args.listen,
        auth=args.auth,
        auth_file=args.auth_file,
        allow_hosts=tuple(args.allow_host or ()),
        allow_origins=tuple(args.allow_origin or ()),
    )
    return {"stopped": True}, "studio stopped"


def register(reg: Any) -> None:
    p = reg.command("ui", "start the studio in the browser (http://127.0.0.1:7860)", cmd_ui)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860)")
    p.add_argument(
        "--listen",
        action="store_true",
        help="serve on every network interface instead of 127.0.0.1 (requires --auth or --auth-file)",
    )
    p.add_argument("--auth", help="user:password required to open the studio")
    p.add_argument("--auth-file", help="a file of user:password lines")
    p.add_argument("--allow-host", action="append", help="another host name the server answers to (repeatable)")
    p.add_argument(
        "--allow-origin",
        action="append",
        help="another origin allowed to upload and run jobs: 'null' (a sandboxed iframe or a file: page) "
        "or scheme://host[:port] (repeatable)",
    )
    p.add_argument("--no-tiny", action="store_true", help="do not build the tiny test model into an empty vault")
    p.add_argument(
        "--workers",
        metavar="N",
        help="render N jobs at once (1…16, default 1): the studio's own worker and N-1 `worker` processes, "
        "all on --device (use --gpus to give each a GPU of its own)",
    )
    p.add_argument(
        "--gpus",
        metavar="LIST",
        help="one render worker per listed CUDA device, e.g. 0,1 (the studio's own on the first); "
        "logs of the others in <data dir>/logs/",
    )
