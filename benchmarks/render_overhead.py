"""How much does the studio's engine cost on top of plain diffusers?

Renders the same recipe with (a) a plain diffusers script — `LTX2Pipeline` call plus
diffusers' own `encode_video` to MP4 — and (b) the engine (`Studio.render`: recipe,
history row, progress callback, atomic MP4 with metadata), alternating a/b in one
process so both see the same machine state. Prints the median engine/plain ratio
(target ≤ 1.02 warm), how many times the engine loaded the pipeline during its warm renders
(a second job on a loaded model loads nothing: target 0), and the cold start of
`aiprod-studio render` against the same plain script in a fresh process (both from process
start to MP4; target ≤ 1.15). The engine's quality checks (QA) are left out unless `--with-qa`:
they are work the plain script does not do.

    .venv/bin/python benchmarks/render_overhead.py [--repeats 15] [--device cpu|cuda]
                                                   [--width 64 --height 64 --frames 17 --steps 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio import offline  # noqa: E402

offline.enforce()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--quantize", default="none", choices=("none", "int8", "fp8"))
    ap.add_argument("--with-qa", action="store_true", help="keep the engine's QA of every clip in its time")
    args = ap.parse_args()

    import torch
    from diffusers import LTX2Pipeline
    from diffusers.utils.export_utils import encode_video

    from aiprod_studio.settings import load_settings
    from aiprod_studio.vault.store import Vault
    from engine.models.quantize import quantize_transformer
    from engine.models.tiny import make_tiny
    from engine.render.clip import pipeline_kwargs
    from engine.studio import Studio

    work = Path(tempfile.mkdtemp(prefix="aiprod-bench-"))
    models, data = work / "models", work / "data"
    entry = make_tiny(Vault(models))
    studio = Studio(load_settings(models_dir=models, data_dir=data, device=args.device))
    recipe = studio.build_recipe(
        {
            "prompt": "a red car drives through a rainy city at night",
            "seed": 1,
            "width": args.width,
            "height": args.height,
            "num_frames": args.frames,
            "steps": args.steps,
            "quantization": args.quantize,
        }
    )
    plan = studio.plan
    if not args.with_qa:
        studio.qa.check = lambda *_a, **_k: {"ok": True}  # type: ignore[method-assign]
    from engine.models import pipelines

    loads: list[str] = []
    real_load = pipelines.load_pipeline

    def counted_load(*a: object, **k: object) -> object:
        loads.append("load")
        return real_load(*a, **k)  # type: ignore[arg-type]

    pipelines.load_pipeline = counted_load  # type: ignore[assignment]

    # (a) the plain diffusers script, loaded once, like any warm notebook
    plain = LTX2Pipeline.from_pretrained(models / entry.path, local_files_only=True, dtype=plan.dtype)
    plain.set_progress_bar_config(disable=True)
    quantize_transformer(plain.transformer, args.quantize)
    plain.to(plan.device)
    call = pipeline_kwargs(plain, recipe)

    def run_plain(i: int) -> float:
        t = time.perf_counter()
        out = plain(**call, generator=torch.Generator("cpu").manual_seed(recipe.seed), output_type="np")
        encode_video(
            out.frames[0],
            fps=recipe.fps,
            output_path=str(work / f"plain-{i}.mp4"),
            audio=out.audio[0].float().cpu(),
            audio_sample_rate=plain.vocoder.config.output_sampling_rate,
        )
        if plan.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    def run_engine(i: int) -> float:
        t = time.perf_counter()
        studio.render(recipe, out_path=work / f"engine-{i}.mp4", progress=lambda s, n: None)
        if plan.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    run_plain(-1), run_engine(-1)  # warm both paths (model load, kernels, allocator)
    loads.clear()  # from here on the engine's pipeline is warm: a second job must load nothing
    plain_s, engine_s, ratios = [], [], []
    for i in range(args.repeats):
        order = (run_plain, run_engine) if i % 2 == 0 else (run_engine, run_plain)
        times = {fn.__name__: fn(i) for fn in order}
        plain_s.append(times["run_plain"])
        engine_s.append(times["run_engine"])
        ratios.append(times["run_engine"] / times["run_plain"])
    studio.close()

    # Cold start: a fresh process from `aiprod-studio render` to the finished MP4.
    env = {**os.environ, "AIPROD_MODELS_DIR": str(models), "AIPROD_DATA_DIR": str(data), "AIPROD_DEVICE": args.device}
    cold = []
    for i in range(3):
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "aiprod_studio",
                "render",
                "--prompt",
                recipe.prompt,
                "--seed",
                "1",
                "--width",
                str(args.width),
                "--height",
                str(args.height),
                "--frames",
                str(args.frames),
                "--steps",
                str(args.steps),
                "--quantize",
                args.quantize,
                "--out",
                str(work / f"cold-{i}.mp4"),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        cold.append(time.perf_counter() - t)
    plain_script = (
        "import sys, torch\n"
        "from diffusers import LTX2Pipeline\n"
        "from diffusers.utils.export_utils import encode_video\n"
        f"pipe = LTX2Pipeline.from_pretrained({str(models / entry.path)!r}, local_files_only=True, "
        f"dtype=torch.{str(plan.dtype)[6:]})\n"
        f"pipe.to({str(plan.device)!r}); pipe.set_progress_bar_config(disable=True)\n"
        f"out = pipe(**{call!r}, generator=torch.Generator('cpu').manual_seed({recipe.seed}), output_type='np')\n"
        "encode_video(out.frames[0], fps=%d, output_path=sys.argv[1], audio=out.audio[0].float().cpu(), "
        "audio_sample_rate=pipe.vocoder.config.output_sampling_rate)\n" % recipe.fps
    )
    cold_plain = []
    for i in range(3):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", plain_script, str(work / f"cold-plain-{i}.mp4")],
            check=True,
            env=env,
            capture_output=True,
        )
        cold_plain.append(time.perf_counter() - t)

    device_name = (
        torch.cuda.get_device_name(plan.device) if plan.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    print(
        f"device: {device_name}, {plan.label}; recipe {args.width}x{args.height}x{args.frames}, {args.steps} steps, "
        f"quantization {args.quantize}; {args.repeats} alternated repeats"
    )
    print(f"plain diffusers  median {statistics.median(plain_s) * 1000:8.1f} ms")
    print(f"engine           median {statistics.median(engine_s) * 1000:8.1f} ms")
    print(f"engine/plain     median ratio {statistics.median(ratios):.3f}  (target <= 1.02)")
    print(f"pipeline loads during the {args.repeats} warm engine renders: {len(loads)}  (target 0)")
    print(
        f"cold start `aiprod-studio render` (process start to MP4): median {statistics.median(cold):.2f} s "
        f"(runs: {', '.join(f'{c:.2f}' for c in cold)})"
    )
    print(
        f"cold start plain script: median {statistics.median(cold_plain):.2f} s; engine/plain cold "
        f"{statistics.median(cold) / statistics.median(cold_plain):.3f}  (target <= 1.15)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
