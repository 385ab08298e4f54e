"""One render worker against several: the same batch, side by side, in one run.

Queues the same batch of renders of the tiny model (sized so the work dominates) twice, in
two fresh data dirs: first for one `aiprod-studio worker` process, then for one per device
of `--devices` (default: two on `--device`), each time started by the studio's supervisor
(`engine/jobs/workers.py`, what `ui --workers/--gpus` uses). Times the batch from the
workers' start to its last clip and prints both and the speed-up; every job must end done,
claimed by exactly one worker. Worker start-up (imports, model load) is inside the times,
as it is for a user; `--jobs` sets how much it weighs.

On one device (a CPU, or one GPU) expect little gain, or a loss: the workers share it. It is
meant for machines with several GPUs: `--devices cuda:0,cuda:1`.

    .venv/bin/python benchmarks/workers.py [--jobs 6] [--device cpu] [--devices cuda:0,cuda:1]
                                           [--width 128 --height 128 --frames 33 --steps 8]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiprod_studio import offline  # noqa: E402

offline.enforce()


def run_batch(models: Path, data: Path, devices: list[str], values: dict, jobs: int, timeout_s: float) -> dict:
    """Queue `jobs` renders, start one worker per device, wait for the last clip; the timings."""
    from aiprod_studio.settings import load_settings
    from engine.jobs.workers import Supervisor
    from engine.runners import make_worker
    from engine.studio import Studio

    studio = Studio(load_settings(models_dir=models, data_dir=data, device="cpu"))  # only queues here
    queue = make_worker(studio)  # never started: the worker processes take every job
    ids = [queue.enqueue(studio.build_recipe({**values, "seed": i})) for i in range(jobs)]
    started = time.perf_counter()
    workers = Supervisor(studio.settings, devices, studio.history).start()
    seen: dict[int, set[int]] = {}  # job → the worker processes seen running it
    try:
        while True:
            with sqlite3.connect(studio.settings.db_path) as conn:
                rows = conn.execute("SELECT id, status, owner_pid FROM jobs").fetchall()
            for job_id, status, pid in rows:
                if status == "running" and pid:
                    seen.setdefault(job_id, set()).add(pid)
            ended = [r for r in rows if r[1] not in ("queued", "running")]
            if len(ended) == jobs:
                break
            if time.perf_counter() - started > timeout_s:
                raise SystemExit(f"the batch on {devices} did not finish in {timeout_s:.0f} s")
            time.sleep(0.05)
        wall = time.perf_counter() - started
    finally:
        workers.stop()
    rows = [studio.history.get(j) for j in ids]
    studio.close()
    bad = [(r["id"], r["status"], r["error"]) for r in rows if r["status"] != "done"]
    if bad:
        raise SystemExit(f"jobs did not end done: {bad}")
    twice = [j for j, pids in seen.items() if len(pids) > 1]
    if twice:
        raise SystemExit(f"jobs run by more than one worker: {twice}")
    return {
        "wall_s": wall,
        "render_s": sorted(r["wall_s"] for r in rows),
        "processes": len({p for pids in seen.values() for p in pids}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--device", default="cpu", help="the device of the one-worker run (and of both workers)")
    ap.add_argument("--devices", help="the devices of the several-worker run, e.g. cuda:0,cuda:1")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument(
        "--split-threads",
        action="store_true",
        help="in the several-worker run, give each worker its share of the CPU cores (OMP_NUM_THREADS), "
        "not all of them each",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one batch may take")
    args = ap.parse_args()

    from aiprod_studio.vault.store import Vault
    from engine.models.tiny import make_tiny
    from engine.qa.tiny_clip import make_tiny_clip

    several = args.devices.split(",") if args.devices else [args.device] * 2
    work = Path(tempfile.mkdtemp(prefix="aiprod-bench-workers-"))
    models = work / "models"
    make_tiny(Vault(models))
    make_tiny_clip(Vault(models))  # every clip gets its QA, as in the studio
    values = {
        "prompt": "a red car drives through a rainy city at night",
        "width": args.width,
        "height": args.height,
        "num_frames": args.frames,
        "steps": args.steps,
    }
    print(
        f"batch: {args.jobs} renders of the tiny LTX-2 model, {args.width}x{args.height}, {args.frames} frames, "
        f"{args.steps} steps; {os.cpu_count()} CPU core(s); load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    one = run_batch(models, work / "one", [args.device], values, args.jobs, args.timeout)
    print(f"1 worker  on {args.device}: {one['wall_s']:7.1f} s", flush=True)
    threads = ""
    if args.split_threads:  # the worker processes inherit the environment
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(several)))
        threads = f", {os.environ['OMP_NUM_THREADS']} CPU thread(s) each"
    many = run_batch(models, work / "many", several, values, args.jobs, args.timeout)
    print(
        f"{len(several)} workers on {','.join(several)}: {many['wall_s']:7.1f} s  "
        f"({many['processes']} worker processes took jobs{threads})",
        flush=True,
    )
    median = sorted(one["render_s"])[len(one["render_s"]) // 2], sorted(many["render_s"])[len(many["render_s"]) // 2]
    print(f"median render: {median[0]:.1f} s alone, {median[1]:.1f} s beside the others")
    print(f"speed-up: {one['wall_s'] / many['wall_s']:.2f}x with {len(several)} workers (ideal {len(several)}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
