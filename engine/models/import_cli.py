"""`vault import-checkpoint`: an original single-file LTX-2 checkpoint into a diffusers-format vault entry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aiprod_studio.settings import Settings


def cmd_import_checkpoint(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.cli import human_bytes, progress_printer
    from aiprod_studio.vault.store import Vault
    from engine.models.single_file import import_checkpoint

    def step(text: str) -> None:  # long steps are named on stderr (stdout keeps the one JSON object)
        if not args.json:
            print(f"{text}…", file=sys.stderr, flush=True)

    done = import_checkpoint(
        Vault(settings.ensure_dirs().models_dir),
        args.file,
        args.like,
        name=args.name,
        variant=args.variant,
        replace=args.replace,
        progress=progress_printer(args, "hash"),
        on_step=step,
    )
    entry = done.entry
    assert entry.imported_from is not None
    data = entry.model_dump(mode="json") | {
        "total_size": entry.total_size,
        "not_converted": done.not_converted,
        "seconds": round(done.seconds, 2),
    }
    kept = ", ".join(f"{group} ({n} keys)" for group, n in done.not_converted.items())
    return data, (
        f"imported {entry.name} from {entry.imported_from.file}: converted "
        f"{', '.join(entry.imported_from.components)}, everything else from {entry.imported_from.like} "
        f"({len(entry.files)} files, {human_bytes(entry.total_size)}, digest {entry.digest[:12]})"
        + (f"\nnot converted: {kept}" if kept else "")
        + f"\nsource sha256 {entry.imported_from.sha256}; render with --model {entry.name}"
    )


def register(reg: Any) -> None:
    from aiprod_studio.generations import VARIANTS

    p = reg.subcommand(
        "vault",
        "import-checkpoint",
        "convert an original single-file LTX-2 checkpoint (Lightricks / ComfyUI layout) into a vault pipeline, "
        "configured by and completed from an existing LTX-2 pipeline entry",
        cmd_import_checkpoint,
    )
    p.add_argument("file", help="the .safetensors checkpoint (transformer, or transformer + VAEs)")
    p.add_argument("--like", required=True, help="the LTX-2 pipeline entry of the same model generation and size")
    p.add_argument("--name", help="the new entry's name (default: the file's name without .safetensors)")
    p.add_argument(
        "--variant", choices=VARIANTS, help="e.g. distilled for a few-step model (default: the like entry's)"
    )
    p.add_argument("--replace", action="store_true", help="replace an existing entry of that name")
