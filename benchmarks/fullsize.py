"""Full-size LTX-2 denoising-step timing with random weights: nothing to download.

Builds the LTX-2.0 transformer (`LTX2VideoTransformer3DModel`) and, separately, its text
encoder (Gemma 3 12B + the LTX-2 text connectors) at their published sizes from their
published configurations, with random weights. Each model is built on the `meta` device and
materialised one block at a time straight on the device in its dtype (never a float32 copy
on the host), quantized there block by block when the profile asks.

For every profile (QUANTIZATION:OFFLOAD) it times a denoising step at each size: one
transformer forward with the pipeline's own arguments (video + audio latents, connector-sized
text states, timestep = sigma = sigma*1000, RoPE coords from `rope.prepare_video_coords` /
`audio_rope.prepare_audio_coords`), batch 2 = the classifier-free-guidance call. It reports the
median seconds after a warm-up and, on CUDA, the peak `torch.cuda.max_memory_allocated`
(reset for each profile and size). With `LTX2Pipeline`'s default guidance (stg_scale 1,
modality_scale 3) a step adds two batch-1 forwards, about twice this; a distilled model
(guidance 1) runs one batch-1 forward (`--batch 1`). The text encoder is timed on one prompt
of `--text-tokens` tokens (the pipeline pads every prompt to 1024).

Quantization: none (bf16 on CUDA, float32 on CPU), fp8, int8 (optimum-quanto weights, every
Linear, as the engine quantizes). Offload: none; model (accelerate hook, the model moves over
on its first call); group (diffusers group offloading, CUDA streams); sequential (accelerate,
leaf by leaf). A toy model tries each combination first, so one the libraries cannot run
(quanto weights with group or sequential offload) fails in a second, not after a 19 B build.
A failed profile is recorded with its error; the run goes on and exits 1.

Defaults on CUDA: published size (48 layers), 768x512x121 and 1280x704x121, 3 timed steps.
Defaults on a CPU (no CUDA, or --device cpu): a 1/8-width copy (head_dim / 8, so width =
published / 8), 4 transformer and 8 Gemma layers, float32, 256x160x25, 3 timed steps, one
timed prompt encode: about a minute on 2 idle cores. There the offload profiles have nowhere
to offload to; their hooks still run (group offloading without streams), which proves the
wiring, not the speed. --smoke: 1/8 width, 2 layers, 64x64x9, 128 text tokens, 1 timed step.

    python benchmarks/fullsize.py --json fullsize-h200.json          # CUDA, published size
    python benchmarks/fullsize.py --profiles none:none,fp8:none --size 1280x704x121
    python benchmarks/fullsize.py --device cpu --threads 2             # 1/8 width
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio import offline

offline.enforce()

# sibling modules (benchmarks/ is sys.path[0] when this file is run as a script)
from fullsize_models import (
    GEMMA3_12B_CONFIG,
    LTX2_CONNECTORS_CONFIG,
    LTX2_TRANSFORMER_CONFIG,
    PUBLISHED_GEMMA_PARAMS,
    PUBLISHED_TRANSFORMER_PARAMS,
    VAE_SPATIAL,
    VAE_TEMPORAL,
    count_params,
    meta_text_encoder,
    meta_transformer,
    scaled_configs,
)
from fullsize_profiles import run_profile, run_text_encoder

log = logging.getLogger("benchmarks.fullsize")

QUANTIZATIONS = ("none", "fp8", "int8")
OFFLOADS = ("none", "model", "group", "sequential")
DEFAULT_PROFILES = "none:none,fp8:none,int8:none,fp8:group,none:sequential"
SCALES = (1, 2, 4, 8)


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            width, height, frames = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHTxFRAMES[,...], got {item!r}") from None
        if width <= 0 or height <= 0 or width % VAE_SPATIAL or height % VAE_SPATIAL:
            raise argparse.ArgumentTypeError(f"width and height must be positive multiples of 32, got {item!r}")
        if frames < 1 or (frames - 1) % VAE_TEMPORAL:
            raise argparse.ArgumentTypeError(f"frames must be 8k+1 (9, 25, 121, ...), got {frames} in {item!r}")
        sizes.append((width, height, frames))
    return sizes


def parse_profiles(text: str) -> list[tuple[str, str]]:
    profiles = []
    for item in text.split(","):
        quantization, _, offload = item.partition(":")
        if quantization not in QUANTIZATIONS or offload not in OFFLOADS:
            raise argparse.ArgumentTypeError(
                f"each profile is QUANTIZATION:OFFLOAD with quantization in {'/'.join(QUANTIZATIONS)} and offload "
                f"in {'/'.join(OFFLOADS)}, got {item!r}"
            )
        profiles.append((quantization, offload))
    return profiles


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    ap.add_argument("--profiles", type=parse_profiles, help=f"QUANT:OFFLOAD,... (default {DEFAULT_PROFILES})")
    ap.add_argument(
        "--size", type=parse_sizes, help="WxHxF,... (default 768x512x121,1280x704x121 on CUDA, 256x160x25 on CPU)"
    )
    ap.add_argument("--scale", type=int, choices=SCALES, help="width divisor (default 1 on CUDA, 8 on CPU)")
    ap.add_argument("--layers", type=positive, help="transformer blocks (default 48 on CUDA, 4 on CPU)")
    ap.add_argument("--text-layers", type=positive, help="Gemma layers (default 48 on CUDA, 8 on CPU)")
    ap.add_argument("--text-tokens", type=positive, help="prompt length, a multiple of 128 (default 1024)")
    ap.add_argument("--steps", type=positive, help="timed steps; the median is reported (default 3)")
    ap.add_argument("--text-steps", type=positive, help="timed prompt encodes (default 3 on CUDA, 1 on CPU)")
    ap.add_argument("--warmup", type=non_negative, default=1, help="untimed calls before timing (default 1)")
    ap.add_argument("--batch", type=positive, default=2, help="2 = classifier-free guidance, as the pipeline runs")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--group-offload-type", choices=("block_level", "leaf_level"), default="block_level")
    ap.add_argument("--blocks-per-group", type=positive, default=1)
    ap.add_argument("--no-text-encoder", action="store_true", help="skip the Gemma 3 + connectors timing")
    ap.add_argument("--smoke", action="store_true", help="1/8 width, 2 layers, 64x64x9, 128 tokens, 1 step")
    ap.add_argument("--threads", type=positive, help="CPU threads for torch (default: torch's own choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here (rewritten after each profile)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    # 1. Check the flags, then resolve the device and the defaults: explicit flags, then --smoke, then the device's.
    if args.text_tokens is not None and args.text_tokens % 128:
        ap.error(f"--text-tokens must be a multiple of 128 (the connectors' 128 registers), got {args.text_tokens}")
    if args.json and not args.json.parent.is_dir():
        ap.error(f"--json: folder {args.json.parent} does not exist")

    import diffusers
    import optimum.quanto
    import torch
    import transformers

    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    on_cpu = device.type == "cpu"
    keys = ("scale", "layers", "text_layers", "size", "text_tokens", "steps", "text_steps")
    defaults = {
        "smoke": (8, 2, 2, "64x64x9", 128, 1, 1),
        "cpu": (8, 4, 8, "256x160x25", 1024, 3, 1),
        "cuda": (1, 48, 48, "768x512x121,1280x704x121", 1024, 3, 3),
    }["smoke" if args.smoke else device.type]
    for key, value in zip(keys, defaults, strict=True):
        if getattr(args, key) is None:
            setattr(args, key, parse_sizes(value) if key == "size" else value)
    args.profiles = args.profiles or parse_profiles(DEFAULT_PROFILES)
    if on_cpu and args.scale == 1:
        ap.error("--scale 1 on the CPU: the published 19 B transformer needs ~76 GB in float32; use --scale 8")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float32 if on_cpu else torch.bfloat16
    device_name = torch.cuda.get_device_name(device) if not on_cpu else f"CPU, {os.cpu_count()} cores"

    # 2. Parameter counts: the published size on meta (free), against the published figures.
    t_config, gemma_config, c_config = scaled_configs(args.scale, args.layers, args.text_layers)
    full = meta_transformer(LTX2_TRANSFORMER_CONFIG, dtype)
    full_gemma, full_connectors = meta_text_encoder(GEMMA3_12B_CONFIG, LTX2_CONNECTORS_CONFIG, dtype)
    report: dict[str, Any] = {
        "device": device_name,
        "dtype": str(dtype).removeprefix("torch."),
        "scale": args.scale,
        "layers": args.layers,
        "text_layers": args.text_layers,
        "batch": args.batch,
        "fps": args.fps,
        "warmup": args.warmup,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "optimum-quanto": optimum.quanto.__version__,
        },
        "config_source": "huggingface/diffusers scripts/convert_ltx2_to_diffusers.py @ 8d8a656 (LTX-2.0), "
        "Gemma 3 12B config.json via ostris/ai-toolkit extensions_built_in/diffusion_models/ltx2/ltx2.py",
        "transformer_config": {k: list(v) if isinstance(v, tuple) else v for k, v in t_config.items()},
        "published": {
            "transformer_params": count_params(full),
            "transformer_reference": PUBLISHED_TRANSFORMER_PARAMS,
            "gemma_params": count_params(full_gemma),
            "gemma_reference": PUBLISHED_GEMMA_PARAMS,
            "connectors_params": count_params(full_connectors),
        },
        "profiles": [],
    }
    del full, full_gemma, full_connectors
    pub = report["published"]
    log.info(
        "published size: transformer %.3f B (LTX-2 '19B': x%.4f), Gemma 3 %.3f B (x%.6f), connectors %.3f B",
        pub["transformer_params"] / 1e9,
        pub["transformer_params"] / pub["transformer_reference"],
        pub["gemma_params"] / 1e9,
        pub["gemma_params"] / pub["gemma_reference"],
        pub["connectors_params"] / 1e9,
    )

    def write() -> None:
        if args.json:
            tmp = args.json.with_name(args.json.name + ".tmp")
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            os.replace(tmp, args.json)

    # 3. Each profile on its own, everything freed in between; then the text encoder.
    for profile in args.profiles:
        report["profiles"].append(run_profile(args, profile, t_config, device, dtype))
        write()
    if not args.no_text_encoder:
        report["text_encoder"] = run_text_encoder(args, gemma_config, c_config, device, dtype)
        write()

    # 4. The table.
    width = "published" if args.scale == 1 else f"1/{args.scale}"
    built = next((p["params"] for p in report["profiles"] if "params" in p), None)
    threads = f"; {report['threads']} threads" if on_cpu else ""
    print(f"device: {device_name}{threads}; {report['dtype']}; {width} width, {args.layers} layers; batch {args.batch}")
    print(
        f"transformer: published size {pub['transformer_params'] / 1e9:.3f} B "
        f"(LTX-2 '19B': x{pub['transformer_params'] / pub['transformer_reference']:.4f}); "
        f"built {built / 1e9 if built else float('nan'):.4f} B"
    )
    print(f"{'profile':<16} {'size':<14} {'tokens v/a':>11} {'s/step':>9} {'peak GiB':>9} {'weights GiB':>12}")
    for p in report["profiles"]:
        if "error" in p:
            print(f"{p['profile']:<16} failed: {p['error']}")
        for s in p.get("sizes", []):
            peak = "-" if s["peak_gib"] is None else f"{s['peak_gib']:.2f}"
            tokens = f"{s['video_tokens']}/{s['audio_tokens']}"
            print(
                f"{p['profile']:<16} {s['size']:<14} {tokens:>11} {s['seconds_per_step']:>9.3f} {peak:>9} "
                f"{p['weight_bytes'] / 2**30:>12.2f}"
            )
    te = report.get("text_encoder")
    if te is not None:
        print(
            f"text encoder: Gemma 3 published {pub['gemma_params'] / 1e9:.3f} B "
            f"(reference x{pub['gemma_params'] / pub['gemma_reference']:.6f}) + connectors "
            f"{pub['connectors_params'] / 1e9:.3f} B"
        )
        if "error" in te:
            print(f"text encoder failed: {te['error']}")
        else:
            peak = "-" if te["peak_gib"] is None else f"{te['peak_gib']:.2f} GiB"
            print(
                f"  built {te['gemma_params'] / 1e9:.4f} B + {te['connectors_params'] / 1e9:.4f} B; "
                f"{te['text_tokens']} tokens: Gemma {te['gemma_s']:.3f} s + connectors {te['connectors_s']:.3f} s, "
                f"peak {peak}"
            )
    failed = [p["profile"] for p in report["profiles"] if "error" in p] + (
        ["text encoder"] if te and "error" in te else []
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
