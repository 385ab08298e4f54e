"""`aiprod-studio qa FILE.mp4`: the quality gates of any MP4, from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings


def report_lines(report: dict[str, Any]) -> list[str]:
    """A QA report in words: the verdict, each finding, the semantic scores (or why there are none)."""
    if report.get("technical_error"):
        lines = [f"technical check failed to run: {report['technical_error']}"]
    elif report["ok"]:
        lines = ["technical check: ok" + (f" ({report['warnings']} warnings)" if report["warnings"] else "")]
    else:
        lines = [f"technical check: {report['errors']} errors, {report['warnings']} warnings"]
    lines += [f"  [{f['severity']}] {f['code']}: {f['message']}" for f in report["findings"]]
    semantic = report.get("semantic")
    if semantic is None:
        lines.append(f"semantic scores: none — {report.get('semantic_note')}")
    else:
        for s in semantic.get("shots") or [semantic]:
            where = f"shot {s['shot']}: " if "shot" in s else ""
            temporal = f", temporal coherence {s['temporal']:.3f}" if s.get("temporal") is not None else ""
            lines.append(
                f"semantic ({semantic['model']}): {where}prompt match {s['prompt_mean']:.3f} "
                f"(lowest frame {s['prompt_min']:.3f}){temporal}"
            )
        if semantic.get("test_model"):
            lines.append("  (a test QA model with random weights: these scores exercise the path, they mean nothing)")
    return lines


def cmd_qa(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from engine.qa.gate import QualityGate, check_any_file
    from engine.render import media

    path, _ = media.require_video(args.file)
    if args.prompt is not None and not args.prompt.strip():
        raise BadInput("prompt must not be empty", field="prompt")
    report = check_any_file(QualityGate(Vault(settings.models_dir)), path, args.prompt)
    result = {"file": str(path), "qa": report}
    if report.get("ok") is False:
        result["_exit"] = 5
    return result, "\n".join(report_lines(report))


def register(reg: Any) -> None:
    p = reg.command(
        "qa",
        "check an MP4: technical findings (exit 5 on an error) and, with a QA model in the vault, CLIP scores",
        cmd_qa,
    )
    p.add_argument("file")
    p.add_argument("--prompt", help="score the frames against this text (default: the embedded recipe's prompt)")
