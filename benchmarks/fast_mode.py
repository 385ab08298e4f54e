"""Fast mode on vs off: the same recipe, the same warm pipeline, the same steps, alternated.

Each repeat renders the recipe to an MP4 with Fast off and with Fast on (the order flips
every repeat), timing the whole clip (pipeline call, VAE decode, vocoder, MP4 encode) and
the denoising loop alone (first transformer call to the last one's return), and counting
the transformer blocks that computed. Prints the medians, the Fast/off time ratios (target
≤ 0.7 for the whole clip) and the PSNR of the Fast clip against the Fast-off one.

The default is the studio's tiny LTX-2 model at 64×64×17, 8 steps (denoising is about 70% of
its clip on a CPU; text encoding, VAE decode, vocoder and MP4 encoding the rest). `--layers N`
swaps in a random transformer of N blocks (same widths) so the transformer's share grows, as in
a real model; `--model DIR` renders a real diffusers LTX-2 folder instead (a vault entry's
folder). On a shared CPU use `--threads 1`: one thread's CPU time is the work itself, and the
wall-time figures then agree with it.

    .venv/bin/python benchmarks/fast_mode.py [--repeats 7] [--steps 8] [--mode taylorseer|firstblock]
        [--layers 8] [--threads 1] [--device cuda --size 768x512x121 --steps 30 --compile] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio import offline  # noqa: E402

offline.enforce()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="64x64x17", help="WIDTHxHEIGHTxFRAMES")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--mode", default="taylorseer", choices=("taylorseer", "firstblock"))
    ap.add_argument("--layers", type=int, default=0, help="a random transformer of this many blocks (0: the tiny one)")
    ap.add_argument("--model", type=Path, default=None, help="a diffusers LTX-2 folder to render instead")
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer (CUDA only)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    args = ap.parse_args()
    width, height, frames = (int(v) for v in args.size.lower().split("x"))

    import torch
    from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel

    from aiprod_studio.recipe import Recipe
    from engine.device.plan import resolve
    from engine.models.speed import apply_fast, compile_transformer, count_block_calls
    from engine.models.tiny import MAX_TOKENS, TINY_NAME, build_pipeline
    from engine.render import media
    from engine.render.clip import render_to_file

    # 1. The pipeline: the tiny model, a deeper random transformer in it, or a real model folder.
    if args.threads:
        torch.set_num_threads(args.threads)  # one thread: CPU time is the work done, however busy the machine
    plan = resolve(args.device)
    if args.model is not None:
        pipe = LTX2Pipeline.from_pretrained(args.model, local_files_only=True, use_safetensors=True, dtype=plan.dtype)
        model_label = args.model.name
    else:
        pipe = build_pipeline()
        model_label = "tiny LTX-2 (2 blocks)"
        if args.layers:
            torch.manual_seed(0)
            config = {**pipe.transformer.config, "num_layers": args.layers}
            pipe.register_modules(transformer=LTX2VideoTransformer3DModel.from_config(config))
            model_label = f"tiny LTX-2 with a random {args.layers}-block transformer"
    pipe.set_progress_bar_config(disable=True)
    if plan.device.type != "cpu" or plan.dtype != torch.float32:  # built or loaded on the CPU in float32
        pipe.to(plan.device, plan.dtype)
    if args.compile:
        compile_transformer(pipe, plan.device)
    recipe = Recipe(
        prompt="a red car drives through a rainy city at night",
        model=args.model.name if args.model is not None else TINY_NAME,
        seed=1,
        width=width,
        height=height,
        num_frames=frames,
        steps=args.steps,
        guidance=args.guidance,
        advanced={} if args.model is not None else {"max_sequence_length": MAX_TOKENS},
    )

    # 2. Time the denoising loop from the transformer's own calls (first one in, last one out).
    span: dict[str, float] = {}

    def sync() -> None:
        if plan.device.type == "cuda":
            torch.cuda.synchronize(plan.device)

    def first_in(_module: Any, _args: Any) -> None:
        if "start" not in span:
            sync()
            span["start"], span["cpu_start"] = time.perf_counter(), time.process_time()

    def last_out(_module: Any, _args: Any, _output: Any) -> None:
        sync()
        span["end"], span["cpu_end"] = time.perf_counter(), time.process_time()

    pipe.transformer.register_forward_pre_hook(first_in)
    pipe.transformer.register_forward_hook(last_out)
    work = Path(tempfile.mkdtemp(prefix="aiprod-fast-"))

    def run(fast: str, i: int) -> dict[str, Any]:
        span.clear()
        out = work / f"{fast}-{i}.mp4"
        sync()
        started, cpu_started = time.perf_counter(), time.process_time()
        apply_fast(pipe, fast, recipe.steps)
        with count_block_calls(pipe.transformer) as calls:
            render_to_file(pipe, recipe, out)
        sync()
        return {
            "clip": time.perf_counter() - started,
            "denoise": span["end"] - span["start"],
            "clip_cpu": time.process_time() - cpu_started,
            "denoise_cpu": span["cpu_end"] - span["cpu_start"],
            "blocks": (calls.computed, calls.calls),
            "path": out,
        }

    # 3. Warm both (kernels, allocator, compiled shapes), then alternate.
    run("off", -1), run(args.mode, -1)
    results: dict[str, list[dict[str, Any]]] = {"off": [], args.mode: []}
    for i in range(args.repeats):
        for fast in ("off", args.mode) if i % 2 == 0 else (args.mode, "off"):
            results[fast].append(run(fast, i))
    off, on = results["off"], results[args.mode]
    compare = media.compare(off[0]["path"], on[0]["path"])

    # 4. Report: medians and the best run of each (the least disturbed by anything else on the
    #    machine), in wall time and in this process's CPU time (which another busy process hardly moves).
    def stat(rows: list[dict[str, Any]], key: str, how: Any = statistics.median) -> float:
        return float(how(r[key] for r in rows))

    device_name = (
        torch.cuda.get_device_name(plan.device) if plan.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    computed_on, calls = on[0]["blocks"]
    computed_off = off[0]["blocks"][0]
    audio = compare["audio"] or {}
    print(
        f"device: {device_name}, {plan.label}; {model_label}; {width}x{height}x{frames}, {args.steps} steps, "
        f"guidance {args.guidance}; fast {args.mode}{' + compile' if args.compile else ''}; "
        f"{torch.get_num_threads()} torch thread(s); "
        f"{args.repeats} alternated repeats"
    )
    print(
        f"blocks computed: off {computed_off}/{calls}, fast {computed_on}/{calls} ({computed_on / computed_off:.2f}x)"
    )
    print(f"{'':24s}{'fast off':>12s}{'fast on':>12s}{'fast/off':>10s}")
    for key, label in (("clip", "whole clip"), ("denoise", "denoising")):
        for how, how_label in ((statistics.median, "median"), (min, "best")):
            for suffix, clock in (("", "wall"), ("_cpu", "cpu")):
                if clock == "cpu" and plan.device.type == "cuda":
                    continue  # the CPU waits on the GPU: its time says nothing there
                a, b = stat(off, key + suffix, how), stat(on, key + suffix, how)
                name = f"{label} {how_label} {clock}"
                print(f"{name:24s}{a * 1000:10.1f}ms{b * 1000:10.1f}ms{b / a:10.3f}")
    share = stat(off, "denoise", min) / stat(off, "clip", min)
    print(f"share of the clip in denoising (fast off, best wall): {share:.0%}")
    print(
        f"fast vs off: PSNR {compare['psnr']:.2f} dB (lowest frame {compare['psnr_min']:.2f} dB), "
        f"sound SNR {audio.get('snr', float('nan')):.2f} dB   (target: whole clip fast/off <= 0.7)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
