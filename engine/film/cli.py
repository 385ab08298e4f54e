"""`storyboard render` and `storyboard enhance`: a storyboard to a film, and its prompts rewritten."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings
from engine.qa.cli import report_lines


def cmd_storyboard_render(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.storyboard.board import read_storyboard_file
    from aiprod_studio.storyboard.db import StoryboardStore
    from engine.film import assembly, edl
    from engine.film import shots as sb
    from engine.studio import Studio

    board = read_storyboard_file(args.file)  # a storyboard JSON, or what `storyboard split --json` printed
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise BadInput(f"out must end in .mp4, got {args.out!r}", field="out")
    studio = Studio(settings)
    try:
        if board.id is not None:  # an id names a storyboard saved in this studio's database
            StoryboardStore(studio.history).check_exists(board.id)
        plans = sb.plan(studio, board)
        todo = [p.index for p in plans if not p.current]

        def progress(index: int, step: int, total: int) -> None:
            if not args.json and sys.stderr.isatty():
                print(f"\rshot {index + 1}/{len(plans)}: step {step}/{total}   ", end="", file=sys.stderr, flush=True)

        with sigterm_as_interrupt():
            sb.render_now(studio, plans, progress)
        film = assembly.assemble(board, plans, out)
        from engine.qa.gate import check_film

        film["qa"] = check_film(studio.qa, film, plans[0].recipe if plans else None)
        exported = str(edl.export(board, plans, out, args.export)) if args.export else None
    finally:
        studio.close()
    result = film | {
        "rendered_shots": [i + 1 for i in todo],
        "reused_shots": [p.index + 1 for p in plans if p.index not in todo],
        "export": exported,
    }
    summary = (
        f"film {out}: {film['shots']} shots, {film['frames']} frames ({film['seconds']:.2f}s); "
        f"rendered shots {result['rendered_shots'] or 'none'}, reused {result['reused_shots'] or 'none'}"
        + (f"; exported to {exported}" if exported else "")
    )
    return result, "\n".join([summary, *report_lines(film["qa"])])


def cmd_storyboard_enhance(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.files import atomic
    from aiprod_studio.storyboard.board import read_storyboard_file
    from aiprod_studio.vault.store import Vault
    from engine.film.scenarist import enhance

    board = read_storyboard_file(args.file)
    enhanced, report = enhance(Vault(settings.models_dir), board, args.scenarist)
    out = Path(args.out or args.file)
    atomic.write_text(out, enhanced.to_json() + "\n")
    lines = [
        f"{r['shot']:>3}. {'LLM  ' if r['used'] == 'llm' else 'rules'} {s.prompt}"
        + (f"   ({r['reason']})" if r["reason"] else "")
        for r, s in zip(report, enhanced.shots, strict=False)
    ]
    return {"storyboard": enhanced.model_dump(mode="json"), "report": report, "out": str(out)}, "\n".join(
        lines + [f"written to {out}"]
    )


def cmd_enhance(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from engine.film.scenarist import enhance_prompt

    result = enhance_prompt(Vault(settings.models_dir), args.prompt, args.seed, args.scenarist)
    note = "" if result["used"] == "llm" else f"   (kept: {result['reason']})"
    return result, result["prompt"] + note


def register(reg: Any) -> None:
    p = reg.command(
        "enhance",
        "rewrite a short prompt into a detailed one (subject, action, camera, light, sound) with the vault's local LLM",
        cmd_enhance,
    )
    p.add_argument("--prompt", required=True, help="the short idea to rewrite")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed (same seed, same rewrite)")
    p.add_argument("--scenarist", help="the vault's scenarist entry (default: the first)")

    p = reg.subcommand(
        "storyboard", "render", "render the shots that changed and assemble the film", cmd_storyboard_render
    )
    p.add_argument("file", help="a storyboard JSON (from `storyboard split --out`)")
    p.add_argument("--out", required=True, help="the film's MP4")
    p.add_argument(
        "--export",
        metavar="DIR",
        help="also write DIR/<title>/ with the film, each shot's clip, the storyboard JSON and an EDL",
    )

    p = reg.subcommand(
        "storyboard",
        "enhance",
        "rewrite the shots' prompts with the vault's local LLM (a shot keeps its prompt when the output is unusable)",
        cmd_storyboard_enhance,
    )
    p.add_argument("file", help="a storyboard JSON")
    p.add_argument("--scenarist", help="the vault's scenarist entry (default: the first)")
    p.add_argument("--out", help="where to write the result (default: over FILE)")
