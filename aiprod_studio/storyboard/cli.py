"""`storyboard split`: a script file → a storyboard JSON (`storyboard render` is the engine's)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aiprod_studio.choices import QUANTIZATIONS
from aiprod_studio.commands import Registry
from aiprod_studio.errors import BadInput
from aiprod_studio.files import atomic
from aiprod_studio.recipe import RECIPE_DEFAULTS
from aiprod_studio.settings import Settings
from aiprod_studio.storyboard.board import shot_frames
from aiprod_studio.storyboard.scenarist import split_script


def cmd_split(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    path = Path(args.script)
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"script file {args.script!r} cannot be read: {exc}", field="script") from None
    extra = {
        k: v
        for k, v in {
            "model": args.model,
            "preset": args.preset,
            "quantization": args.quantize,
            "crossfade_s": args.crossfade,
        }.items()
        if v is not None
    }
    board = split_script(script, fps=args.fps, target_s=args.target, base_seed=args.seed, **extra)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".json":
            raise BadInput(f"out must end in .json, got {args.out!r}", field="out")
        atomic.write_text(out, board.to_json() + "\n")
    lines = [
        f"{board.title}: {len(board.shots)} shots, "
        f"{sum(shot_frames(s.duration_s, board.fps) for s in board.shots) / board.fps:.2f}s at {board.fps} fps"
        + (f", style: {board.style}" if board.style else "")
    ]
    for i, s in enumerate(board.shots, start=1):
        lines.append(f"{i:>3}. {s.duration_s:>6.2f}s  seed {s.seed:<6} {s.prompt}")
    if args.out:
        lines.append(
            f"written to {args.out}; render it with: aiprod-studio storyboard render {args.out} --out film.mp4"
        )
    return board.model_dump(mode="json"), "\n".join(lines)


def register(reg: Registry) -> None:
    reg.group("storyboard", "script → shots → one film with sound")
    p = reg.subcommand("storyboard", "split", "turn a script file into shots (a storyboard JSON)", cmd_split)
    p.add_argument("script", help="a text file: shots marked `Shot 1:`, `---`, `INT.`…, or plain paragraphs")
    p.add_argument("--fps", type=int, default=RECIPE_DEFAULTS["fps"])
    p.add_argument("--target", type=float, help="total length in seconds, shared by shots without a (3s) hint")
    p.add_argument("--seed", type=int, default=0, help="base seed: shot i gets seed + i")
    p.add_argument("--model", help="vault pipeline (default: the studio's default)")
    p.add_argument("--preset", help="a render preset id from presets/ (sizes, steps)")
    p.add_argument("--quantize", choices=QUANTIZATIONS)
    p.add_argument("--crossfade", type=float, help="seconds of crossfade between shots (default 0: hard cuts)")
    p.add_argument("--out", help="write the storyboard JSON here (edit it, then `storyboard render` it)")
