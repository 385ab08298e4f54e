"""`train lora` and `train check`: the LoRA wizard on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aiprod_studio.choices import LR_SCHEDULES, QUANTIZATIONS, RESUMABLE_STATUSES
from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings
from aiprod_studio.training import train_default


def cmd_check(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from engine.training import dataset as ds

    report = ds.check(args.dataset, args.memory_gb)
    bucket = report.bucket
    lines = [
        f"{len(report.items)} usable items in {report.folder}"
        + (f"; proposed bucket {bucket[0]}×{bucket[1]}, {bucket[2]} frames" if bucket else "")
    ]
    lines += [f"  - {f}" for f in report.findings]
    if not report.items:  # nothing to train on is bad input: exit 2, with every finding printed
        lines.append("no usable item: fix the findings above, then check again")
        return report.to_json() | {"_exit": 2}, "\n".join(lines)
    return report.to_json(), "\n".join(lines)


def cmd_lora(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    # (one function on purpose: a new run, a resume and a secondary `accelerate` process share the same row and exit
    # paths)
    import os

    from aiprod_studio.numbers import whole_number
    from aiprod_studio.training import TrainConfig, make_train_config
    from engine.studio import Studio
    from engine.training.jobs import run_training as run_job

    studio = Studio(settings)
    secondary = int(os.environ.get("RANK", "0")) != 0  # another process of `accelerate launch` / `torchrun`
    try:
        if args.resume is not None:
            try:
                row = studio.history.get(whole_number(args.resume, "resume", what="resume run"))
            except KeyError:
                raise BadInput(f"resume: run {args.resume} does not exist", field="resume") from None
            if row.get("kind") != "train" or row["status"] not in RESUMABLE_STATUSES:
                raise BadInput(
                    f"resume: job {args.resume} is a {row.get('kind')} job that is {row['status']}; only a "
                    "stopped training run can be resumed",
                    field="resume",
                )
            if studio.history.owner_alive(row["id"]):
                raise BadInput(
                    f"resume: run {args.resume} is still owned by process {row['owner_pid']}, which is "
                    "alive; wait for it to stop",
                    field="resume",
                )
            job_id = args.resume
            config = TrainConfig.model_validate(row["recipe"])
        else:
            if not args.dataset or not args.name:
                raise BadInput("--dataset and --name are required (or --resume RUN)", field="dataset")
            config = make_train_config(
                {
                    "dataset": args.dataset,
                    "name": args.name,
                    "model": args.model,
                    "rank": args.rank,
                    "alpha": args.alpha,
                    "lr": args.lr,
                    "steps": args.steps,
                    "save_every": args.save_every,
                    "warmup_steps": args.warmup,
                    "schedule": args.schedule,
                    "seed": args.seed,
                    "width": args.width,
                    "height": args.height,
                    "num_frames": args.frames,
                    "trigger": args.trigger,
                    "quantization": args.quantize,
                    "train_feed_forward": args.feed_forward or None,
                    "gradient_checkpointing": args.gradient_checkpointing or None,
                    "batch_size": args.batch_size,
                }
            )
            job_id = None if secondary else studio.history.create_train_job(config, status="running")
        if secondary:  # the main process owns the run's row, checkpoints and export
            from engine.training.loop import train

            done = train(studio, None, config)
            return done, f"process {done.get('process')}: trained {done['step']} steps with the main process"
        if args.resume is not None:  # a resumed run goes back through `running`, owned by this process
            studio.history.requeue(job_id)
            if not studio.history.claim(job_id):
                raise BadInput(
                    f"resume: the studio's queue took run {job_id} first; follow it in the Training tab", field="resume"
                )

        def progress(p: Any) -> None:
            if args.json or not sys.stderr.isatty():
                return
            if p.phase == "train":
                eta = f", ETA {p.eta_s:.0f}s" if p.eta_s else ""
                print(
                    f"\rstep {p.step}/{p.total}  loss {p.loss:.4f}  lr {p.lr:.2e}  {p.s_per_step:.2f}s/step{eta}   ",
                    end="\n" if p.step == p.total else "",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(f"\r{p.phase} {p.step}/{p.total}   ", end="", file=sys.stderr, flush=True)

        with sigterm_as_interrupt():
            row = run_job(studio, job_id, progress)
        metrics = studio.history.metrics(job_id)
    finally:
        studio.close()
    result = row["result"] | {"run": job_id, "first_loss": metrics[0]["loss"], "last_loss": metrics[-1]["loss"]}
    return result, (
        f"run {job_id}: LoRA {result['lora']} after {result['step']} steps (loss {result['first_loss']:.4f} → "
        f"{result['last_loss']:.4f}) → {result['file']}\nComfyUI copy: {result['comfyui_file']}\n"
        f'use it: aiprod-studio render --prompt "…" --lora {result["lora"]}:0.8'
    )


def register(reg: Any) -> None:
    reg.group("train", "train LoRAs on your own clips")
    p = reg.subcommand("train", "check", "validate a dataset folder and propose a bucket (writes nothing)", cmd_check)
    p.add_argument("--dataset", required=True, help="clips/images with same-name .txt captions, or dataset.jsonl/.csv")
    p.add_argument("--memory-gb", type=float, help="GPU memory to plan the bucket for (default: a CPU-sized bucket)")

    p = reg.subcommand(
        "train", "lora", "train a LoRA and record it in the vault (Ctrl-C stops it; --resume continues)", cmd_lora
    )
    p.add_argument("--dataset", help="the dataset folder")
    p.add_argument("--name", help="the LoRA's name in the vault")
    p.add_argument("--model", help="the base pipeline (default: the studio's default)")
    p.add_argument("--rank", type=int, help=f"LoRA rank (default {train_default('rank')})")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: = rank)")
    p.add_argument("--lr", type=float, help=f"learning rate (default {train_default('lr'):g})")
    p.add_argument("--steps", type=int, help=f"training steps (default {train_default('steps')})")
    p.add_argument("--save-every", type=int, help=f"checkpoint interval (default {train_default('save_every')})")
    p.add_argument("--warmup", type=int, help=f"warmup steps (default {train_default('warmup_steps')})")
    p.add_argument("--schedule", choices=LR_SCHEDULES)
    p.add_argument("--seed", type=int)
    p.add_argument("--width", type=int, help="bucket width (default: proposed from the data)")
    p.add_argument("--height", type=int)
    p.add_argument("--frames", type=int, help="bucket frames, 8k+1")
    p.add_argument("--trigger", help="a word added to every caption at encode time (never to your files)")
    p.add_argument("--quantize", choices=QUANTIZATIONS, help="train on a quantized base")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--feed-forward", action="store_true", help="also train the feed-forward layers")
    p.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower steps")
    p.add_argument("--resume", type=int, metavar="RUN", help="continue a stopped run from its last checkpoint")
