"""The `aiprod-studio` command line (also `python -m aiprod_studio`).

The core owns parsing, output and exit codes (0 ok, 2 bad input, 3 integrity failure,
4 cancelled/interrupted, 5 a quality check failed (`qa`, `compare --min-psnr`, `reproduce`),
1 internal error). Commands that need tensors or a browser UI
live in the `engine` and `ui` packages and join this parser through the
`aiprod_studio.commands` entry-point group, so the core never imports them. Every
command takes `--models-dir`, `--data-dir`, `--device` and `--json`; `--json` prints
exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from aiprod_studio import __version__, offline
from aiprod_studio.choices import JOB_STATUSES
from aiprod_studio.commands import ENTRY_POINT_GROUP, Parser, Registry, add_common_options
from aiprod_studio.errors import Cancelled, StudioError
from aiprod_studio.numbers import whole_number
from aiprod_studio.settings import Settings, load_settings
from aiprod_studio.storyboard import cli as storyboard_cli
from aiprod_studio.vault import cli as vault_cli

log = logging.getLogger("aiprod_studio")


# -- the core's own commands ------------------------------------------------------------------
def _cmd_history(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.jobs.history import History
    from aiprod_studio.jobs.rows import qa_summary

    history = History(settings.db_path)
    try:
        rows = history.jobs(
            limit=whole_number(args.limit, "limit", high=100_000),
            status=args.status,
            text=args.search,
            model=args.model,
            findings=args.findings,
            order=args.sort,
        )
    finally:
        history.close()
    lines = [f"{'id':>6}  {'status':<11} {'model':<20} {'seed':>10}  {'wall_s':>7}  {'qa':<14} prompt"]
    for r in rows:
        wall = f"{r['wall_s']:.2f}" if r.get("wall_s") is not None else "-"
        lines.append(
            f"{r['id']:>6}  {'paused' if r['paused'] else r['status']:<11} {str(r['model'])[:20]:<20} "
            f"{r['seed']:>10}  {wall:>7}  {qa_summary(r.get('qa')):<14} {(r['prompt'] or '')[:60]}"
        )
    if not rows:
        filtered = args.status or args.search or args.model or args.findings is not None
        lines.append("(no matching jobs)" if filtered else "(no jobs yet)")
    return {"jobs": rows}, "\n".join(lines)


def _register_core(reg: Registry) -> None:
    p = reg.command("history", "list past and queued renders, newest first", _cmd_history)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--status", choices=JOB_STATUSES)
    p.add_argument("--search", help="text that the prompt contains")
    p.add_argument("--model", help="only jobs of this model")
    found = p.add_mutually_exclusive_group()
    found.add_argument("--findings", action="store_true", default=None, help="only clips whose QA found something")
    found.add_argument("--clean", dest="findings", action="store_false", help="only clips whose QA found nothing")
    p.add_argument("--sort", choices=("newest", "score"), default="newest", help="score: best prompt match first")
    vault_cli.register(reg)
    storyboard_cli.register(reg)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops long work the way Ctrl-C does (cleanly, exit 4)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _load_plugins(reg: Registry) -> None:
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(reg)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="aiprod-studio", description="AIPROD Studio: a local, offline video studio.")
    parser.add_argument("--version", action="version", version=f"aiprod-studio {__version__}")
    add_common_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    reg = Registry(subparsers)
    reg.group("vault", "the offline model vault")
    _register_core(reg)
    _load_plugins(reg)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    offline.enforce()
    argv = sys.argv[1:] if argv is None else argv
    want_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose)
        settings = load_settings(args.models_dir, args.data_dir, args.device)
        result, text = args.handler(args, settings)
    except StudioError as exc:
        return _fail(exc, exc.exit_code, want_json)
    except KeyboardInterrupt:
        return _fail(Cancelled("interrupted"), 4, want_json)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: report, exit 1
        log.debug("internal error", exc_info=True)
        return _fail(exc, 1, want_json)
    code = int(result.pop("_exit", 0))  # a report that is itself a failure (e.g. verify: exit 3)
    try:
        print(json.dumps({"ok": code == 0, **result}, default=str) if args.json else text, flush=True)
    except BrokenPipeError:  # `aiprod-studio history | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


def _fail(exc: BaseException, code: int, want_json: bool) -> int:
    message = str(exc) or type(exc).__name__
    if code == 1:
        message = f"internal error: {type(exc).__name__}: {message}"
    print(f"aiprod-studio: error: {message}", file=sys.stderr)
    if want_json:
        print(json.dumps({"ok": False, "error": message, "field": getattr(exc, "field", None), "exit_code": code}))
    return code
