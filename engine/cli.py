"""The engine's CLI commands, registered into `aiprod-studio` through the `aiprod_studio.commands`
entry point: each room registers its own (render, vault make-tiny/quantize, storyboard
render/enhance, train, worker), and the sovereignty report is here. Nothing heavy is imported
until a command actually runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings
from engine.film import cli as film_cli
from engine.jobs import cli as jobs_cli
from engine.models import cli as models_cli
from engine.models import import_cli
from engine.qa import cli as qa_cli
from engine.render import cli as render_cli
from engine.training import cli as train_cli


def cmd_report(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.files import atomic
    from aiprod_studio.vault.report import build_report, to_markdown

    self_test = None
    if not args.no_self_test:
        from engine.selftest import network_self_test

        self_test = network_self_test()
    report = build_report(settings, self_test)
    text = to_markdown(report)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".md":
            raise BadInput(f"out must end in .md, got {args.out!r}", field="out")
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out, text)
        report["out"] = str(out)
    passed = self_test is None or self_test["ok"]
    return report | ({} if passed else {"_exit": 1}), (f"report written to {args.out}" if args.out else text)


def register(reg: Any) -> None:
    render_cli.register(reg)
    models_cli.register(reg)
    import_cli.register(reg)
    film_cli.register(reg)
    qa_cli.register(reg)
    p = reg.command(
        "report",
        "the sovereignty report: models and their sources, licences, offline settings, and a network self-test render",
        cmd_report,
    )
    p.add_argument("--out", help="write the report to this .md file (default: print it)")
    p.add_argument("--no-self-test", action="store_true", help="skip the self-test render")

    train_cli.register(reg)
    jobs_cli.register(reg)
