"""`vault make-tiny` and `vault quantize`: the vault commands that need tensors."""

from __future__ import annotations

import argparse
from typing import Any

from aiprod_studio.choices import COMPUTE_DTYPES, STORED_QUANTIZATIONS
from aiprod_studio.generations import VERSIONS
from aiprod_studio.settings import Settings


def cmd_make_tiny(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from engine.models.tiny_generations import make_tiny_generation
    from engine.models.tiny_upsampler import make_tiny_upsampler
    from engine.qa.tiny_clip import make_tiny_clip

    vault = Vault(settings.ensure_dirs().models_dir)
    entry = make_tiny_generation(vault, args.generation, name=args.name)
    clip = make_tiny_clip(vault)  # so the semantic QA runs out of the box too
    upsampler = make_tiny_upsampler(vault)  # and the two-stage upscale
    data = {
        "name": entry.name,
        "generation": args.generation,
        "path": str(settings.models_dir / entry.path),
        "digest": entry.digest,
        "files": len(entry.files),
        "total_size": entry.total_size,
        "clip": clip.name,
        "upsampler": upsampler.name,
    }
    return data, (
        f"built LTX-{args.generation} test model {entry.name} ({len(entry.files)} files, {entry.total_size:,d} bytes, "
        f"digest {entry.digest[:12]}) in {settings.models_dir / entry.path}\n"
        f"built test CLIP {clip.name} for the semantic QA ({clip.total_size:,d} bytes, digest {clip.digest[:12]}) "
        f"in {settings.models_dir / clip.path}\n"
        f"built test latent upsampler {upsampler.name} for Upscale 2× ({upsampler.total_size:,d} bytes)"
    )


def cmd_quantize(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from engine.models.quantized import save_quantized

    # (a process of its own: nothing else holds the device here, so no lease to take; the
    # studio's Vault tab quantizes through `Studio.quantize`, which holds the device)
    entry = save_quantized(Vault(settings.models_dir), args.name, args.to, args.new_name, dtype=args.dtype)
    data = entry.model_dump(mode="json") | {"total_size": entry.total_size}
    return data, (
        f"saved {entry.name}: {args.name} with its transformer stored {args.to} "
        f"({len(entry.files)} files, {entry.total_size:,d} bytes, digest {entry.digest[:12]}); "
        f"render with --model {entry.name}"
    )


def register(reg: Any) -> None:
    p = reg.subcommand(
        "vault", "make-tiny", "build the studio's tiny LTX-2 test model and tiny CLIP into the vault", cmd_make_tiny
    )
    p.add_argument(
        "--generation",
        choices=VERSIONS,
        default="2.0",
        help="the LTX-2 generation to build a tiny model of (default: 2.0)",
    )
    p.add_argument(
        "--name",
        help="the test model's name (default: aiprod-tiny-ltx2, aiprod-tiny-ltx23 or aiprod-tiny-ltx25 by "
        "generation; the CLIP's is aiprod-tiny-clip)",
    )

    p = reg.subcommand(
        "vault",
        "quantize",
        "save a copy of a pipeline with its transformer quantized once (int8 or fp8), loadable without re-quantizing",
        cmd_quantize,
    )
    p.add_argument("name", help="the pipeline entry to quantize")
    p.add_argument("--to", required=True, choices=STORED_QUANTIZATIONS)
    p.add_argument("--name", dest="new_name", required=True, help="the new entry's name")
    p.add_argument(
        "--dtype", choices=COMPUTE_DTYPES, help="dtype it will run in (default: bfloat16 with CUDA, else float32)"
    )
