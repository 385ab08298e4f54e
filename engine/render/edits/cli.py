"""`render extend JOB_ID` and `render retake JOB_ID`: a finished clip edited from the command line
(the flags are `render`'s, registered in `engine.render.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings

# `render` flags an edit does not take (it keeps the parent clip's size, model and settings)
NOT_FOR_EDITS = (
    "negative", "width", "height", "fps", "steps", "guidance", "model", "profile", "quantize", "offload",
    "vae_tiling", "fast", "auto_duration", "decoder", "estimate", "lora", "image", "keyframe", "upscale",
    "recipe", "takes", "deterministic", "retakes",
)  # fmt: skip
FLAG_DEFAULTS = {"takes": 1, "retakes": 0}  # (the others are None or False when not given)


def cmd_render_edit(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    """`render extend JOB_ID --frames N` or `render retake JOB_ID --from S --to S` (`--prompt TEXT`,
    `--seed N`, `--out FILE` optional)."""
    from engine.render.edits.extend import extend_recipe
    from engine.render.edits.retake import retake_recipe
    from engine.studio import Studio

    if len(args.edit) != 2 or args.edit[0] not in ("extend", "retake"):
        raise BadInput(f"edit must be `extend JOB_ID` or `retake JOB_ID`, got {' '.join(args.edit)!r}", field="edit")
    kind, job_id = args.edit
    if kind == "extend" and args.frames is None:
        raise BadInput("frames is required: --frames N, the new frames (a multiple of 8)", field="frames")
    if kind == "retake" and (args.from_ is None or args.to is None):
        field = "start" if args.from_ is None else "end"
        raise BadInput(f"{field} is required: --from S --to S, the seconds of the clip to render again", field=field)
    # 1. Only the flags an edit takes (the rest of the recipe is the parent's).
    takes = {"extend": ("frames",), "retake": ("from_", "to")}[kind]
    for name in NOT_FOR_EDITS + tuple(n for n in ("frames", "from_", "to") if n not in takes):
        value = getattr(args, name, None)
        if value not in (None, False, []) and value != FLAG_DEFAULTS.get(name):
            flag = "--" + name.rstrip("_").replace("_", "-")
            field = {"from_": "start", "to": "end"}.get(name, name)
            raise BadInput(f"{flag} does not go with `render {kind}`: the clip's own settings are kept", field=field)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() != ".mp4":
        raise BadInput(f"out must end in .mp4, got {str(out)!r}", field="out")
    studio = Studio(settings)
    try:
        if kind == "extend":
            recipe = extend_recipe(studio, job_id, args.frames, args.prompt, args.seed)
        else:
            recipe = retake_recipe(studio, job_id, args.from_, args.to, args.prompt, args.seed)
        with sigterm_as_interrupt():
            row = studio.render(recipe, out_path=out)
    finally:
        studio.close()
    result = {"id": row["id"], "status": row["status"], "output": row["output_path"], "parent_id": row["parent_id"]}
    result |= {"recipe": row["recipe"], "qa": row["qa"]}
    edit = row["recipe"]["edit"]
    if kind == "extend":
        text = f"extended job {row['parent_id']} by {args.frames} frames"
    else:
        fps = row["recipe"]["fps"]
        first, end = edit["start"], edit["start"] + edit["frames"]
        text = f"retook frames {first}…{end - 1} ({first / fps:g}–{end / fps:g} s) of job {row['parent_id']}"
    return result, f"{text}: job {row['id']} → {row['output_path']}"
