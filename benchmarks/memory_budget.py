"""The memory budget's error: the estimate against the measured peak, render by render.

Each size renders in a fresh process (so one render's peak does not hide the next one's):
the studio loads the model and renders a small warm-up clip, the peak counter is reset, then
the measured render runs through `Studio.render` (pipeline, decode, MP4 encode). On the CPU
the peak is the process's resident memory (`VmHWM`, reset through `/proc/self/clear_refs`);
on CUDA it is `torch.cuda.max_memory_allocated`. The estimate is what the studio would check
before the render (`Studio.fit_memory`), less what was already resident (the weights on the
CPU; the CUDA context on a GPU, which the allocator does not count).

Run: .venv/bin/python benchmarks/memory_budget.py [--device cuda] [--models-dir DIR] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (
    (192, 192, 33, False),
    (256, 256, 33, False),
    (256, 256, 17, False),
    (320, 320, 17, False),
    (256, 256, 33, True),
    (384, 384, 17, True),
)


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def measure(args: argparse.Namespace) -> dict[str, object]:
    """One render in this process: (estimate, measured peak), bytes."""
    import torch

    from aiprod_studio.settings import load_settings
    from engine.budget.estimate import CUDA_CONTEXT, Job, weight_bytes
    from engine.studio import Studio

    studio = Studio(load_settings(args.models_dir, args.data_dir, args.device))
    studio.qa.check = lambda *_a, **_k: {"ok": True}  # type: ignore[method-assign] # the render's peak, not QA's
    model = args.model or studio.default_model()
    common = {"prompt": "a red ball bouncing", "model": model, "steps": 2, "profile": "custom"}
    studio.render(studio.build_recipe({**common, "width": 64, "height": 64, "num_frames": 9}))  # load, warm up
    recipe = studio.build_recipe(
        {**common, "width": args.width, "height": args.height, "num_frames": args.frames, "vae_tiling": args.tiling}
    )
    entry = studio.vault.get(model, kind="pipeline")
    _, est = studio.fit_memory(entry, recipe)
    on_cuda = studio.plan.device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        studio.render(recipe)
        peak = torch.cuda.max_memory_allocated()
        predicted = est.device_bytes - CUDA_CONTEXT
    else:
        import gc

        gc.collect()
        before = _status_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        studio.render(recipe)
        peak = _status_bytes("VmHWM") - before
        job = Job(recipe.width, recipe.height, recipe.num_frames)
        predicted = est.host_bytes - sum(weight_bytes(studio.facts(entry), job, 4).values())  # already resident
    studio.close()
    return {"predicted": int(predicted), "measured": int(peak), "device": studio.plan.label}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--models-dir", help="the vault (default: a tiny one built in a temporary folder)")
    p.add_argument("--model", help="vault pipeline (default: the vault's first)")
    p.add_argument("--one", nargs=4, metavar=("W", "H", "F", "TILING"), help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:  # a child: one render, one JSON line
        args.width, args.height, args.frames = (int(v) for v in args.one[:3])
        args.tiling = args.one[3] == "1"
        print(json.dumps(measure(args)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        models = args.models_dir
        if models is None:  # the tiny model, as `vault make-tiny` builds it
            models = str(Path(tmp) / "vault")
            subprocess.run(
                [sys.executable, "-m", "aiprod_studio", "--models-dir", models, "vault", "make-tiny"],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
        print(f"{'size':>16} {'tiling':>6} {'estimate':>10} {'measured':>10} {'error':>7}")
        errors: list[float] = []
        signed: list[float] = []
        for width, height, frames, tiling in SIZES:
            cmd = [sys.executable, __file__, "--device", args.device, "--models-dir", models]
            cmd += ["--data-dir", str(Path(tmp) / f"data-{width}-{frames}-{tiling}")]
            cmd += [*(["--model", args.model] if args.model else []), "--one", str(width), str(height), str(frames)]
            cmd.append("1" if tiling else "0")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            error = (row["predicted"] - row["measured"]) / row["measured"]
            errors.append(abs(error))
            signed.append(error)
            print(
                f"{width:>5}×{height}×{frames:<4} {'on' if tiling else 'off':>6} "
                f"{row['predicted'] / 2**20:>8.0f} MB {row['measured'] / 2**20:>8.0f} MB {error:>+7.1%}"
            )
        under = [e for e in signed if e < -0.15]
        print(
            f"device: {row['device']}; largest error {max(errors):.1%} (target: within 15%); "
            f"{len(under)} of {len(signed)} under by more than 15% (the dangerous side)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
