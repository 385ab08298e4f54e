"""`render`, `inspect` and `compare`: one clip from the command line, and what is inside a clip."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from aiprod_studio.choices import AUTO, DECODERS
from aiprod_studio.cli import sigterm_as_interrupt
from aiprod_studio.conditions import parse_keyframe
from aiprod_studio.errors import BadInput
from aiprod_studio.files.folders import writable_folder
from aiprod_studio.jobs.takes import check_retakes, check_takes, summary, take_line
from aiprod_studio.recipe import MAX_SEED, OFFLOADS, QUANTIZATIONS, random_seed, recipe_from_json
from aiprod_studio.settings import Settings
from engine.qa.cli import report_lines


def _json_float(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return round(x, 4)


def _min_psnr(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"min-psnr must be a number of dB, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"min-psnr must be a number of dB above 0, got {text!r}")
    return value


def _seed(text: str) -> int:
    if text == "random":
        return random_seed()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer or 'random', got {text!r}") from None


def cmd_render(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from engine.render.takes import copy_best, render_takes
    from engine.studio import Studio

    if args.edit:
        from engine.render.edits.cli import cmd_render_edit

        return cmd_render_edit(args, settings)
    if args.from_ is not None or args.to is not None:
        raise BadInput("--from and --to go with `render retake JOB_ID`", field="start" if args.from_ else "end")

    # 1. Values from a recipe file (optional), overridden by explicit flags.
    values: dict[str, Any] = {}
    if args.recipe:
        try:
            text = Path(args.recipe).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"recipe file {args.recipe!r} cannot be read: {exc.strerror}", field="recipe") from None
        values = recipe_from_json(text).model_dump(exclude={"model_digest", "versions", "profile"})
        if args.profile:  # a profile asked for by name chooses the settings the file's recipe had
            values = {k: v for k, v in values.items() if k not in ("quantization", "offload", "vae_tiling")}
    flags = {
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "seed": args.seed,
        "width": args.width,
        "height": args.height,
        "num_frames": args.frames,
        "fps": args.fps,
        "steps": args.steps,
        "guidance": args.guidance,
        "model": args.model,
        "quantization": args.quantize,
        "offload": args.offload,
        "loras": args.lora,
        "deterministic": True if args.deterministic else None,
        "profile": args.profile,
        "vae_tiling": args.vae_tiling,
        "fast": True if args.fast else None,
        "auto_duration": True if args.auto_duration else None,
        "decoder": args.decoder,
        "upscale": args.upscale,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    pictures = [{"path": args.image, "frame": 0, "strength": 1.0, "field": "image"}] if args.image else []
    for text in args.keyframe or []:
        path, frame, strength = parse_keyframe(text)
        pictures.append({"path": path, "frame": frame, "strength": strength, "field": "keyframe"})
    if pictures:  # (they replace a recipe file's pictures)
        values["conditions"] = pictures
    if "prompt" not in values:
        raise BadInput("prompt is required (--prompt TEXT or --recipe FILE)", field="prompt")

    # 2. Validate everything before anything is recorded or written.
    studio = Studio(settings)
    try:
        if args.recipe and values.get("conditions") and not pictures:  # (an `images/` beside the recipe file)
            studio.image_store(Path(args.recipe)).adopt([c["image"] for c in values["conditions"]])
        if args.estimate:  # what it would need, and stop
            forecast = studio.forecast(values)
            from engine.budget.check import forecast_line

            return forecast, forecast_line(forecast)
        recipe = studio.build_recipe(values)
        out = Path(args.out) if args.out else None
        if out is not None and out.suffix.lower() != ".mp4":
            raise BadInput(f"out must end in .mp4, got {str(out)!r}", field="out")

        def progress(step: int, total: int) -> None:
            if not args.json and sys.stderr.isatty():
                print(f"\rstep {step}/{total}", end="" if step < total else "\n", file=sys.stderr, flush=True)

        takes, retakes = check_takes(args.takes), check_retakes(args.retakes)
        if out is not None and (
            takes > 1 or retakes
        ):  # the best take is copied there: refuse a bad folder before rendering
            writable_folder(out.parent, "out")
        with sigterm_as_interrupt():
            if takes == 1 and retakes == 0:
                row, ranking = studio.render(recipe, out_path=out, progress=progress), []
            else:
                ranking = render_takes(studio, recipe, takes, progress, retakes)
                row = ranking[0]
                if out is not None:
                    row = row | {"output_path": str(copy_best(row, out))}
    finally:
        studio.close()
    result = {
        "id": row["id"],
        "status": row["status"],
        "output": row["output_path"],
        "seed": row["seed"],
        "model": recipe.model,
        "model_digest": row["model_digest"],
        "wall_s": round(row["wall_s"], 4),
        "recipe": row["recipe"],
        "qa": row["qa"],
    }
    text = [f"rendered job {row['id']} in {row['wall_s']:.2f}s → {row['output_path']}"]
    if len(ranking) > 1:
        result["takes"] = [summary(r) for r in ranking]
        text[0] = f"best of {len(ranking)} takes: job {row['id']} (seed {row['seed']}) → {row['output_path']}"
        text += [take_line(t) for t in result["takes"]]
    return result, "\n".join([*text, *report_lines(row["qa"])]) if row["qa"] else "\n".join(text)


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    """A clip's recipe, or the storyboard a film was assembled from (each renderable again as printed)."""
    import json

    from aiprod_studio.storyboard.board import Storyboard
    from engine.render import media

    path, info = media.require_video(args.file)
    info.pop("metadata", None)
    recipe = media.read_metadata_json(path)
    if recipe is not None:
        text = json.dumps(recipe, indent=2, sort_keys=True)
        return {"file": str(path), "recipe": recipe, "streams": info}, text
    record = media.read_metadata_json(path, media.STORYBOARD_TAG)
    if record is None or not isinstance(record.get("shots"), list):
        raise BadInput(f"file {str(path)!r} carries no AIPROD recipe or storyboard", field="file")
    # A film: its storyboard as `storyboard render` takes it; the jobs behind its shots beside it.
    board = {k: v for k, v in record.items() if k in Storyboard.model_fields}
    text = json.dumps(board, indent=1, ensure_ascii=False)
    return {"file": str(path), "storyboard": board, "shot_jobs": record.get("shot_jobs"), "streams": info}, text


def cmd_compare(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from engine.render import media

    for name in (args.a, args.b):
        if not Path(name).is_file():
            raise BadInput(f"file {name!r} does not exist", field="file")
    try:
        result = media.compare(Path(args.a), Path(args.b))
    except ValueError as exc:
        raise BadInput(str(exc), field="file") from None
    return comparison_report(result, args.a, args.b, args.min_psnr)


def comparison_report(
    result: dict[str, Any], a: str, b: str, min_psnr: float | None = None
) -> tuple[dict[str, Any], str]:
    """`media.compare`'s result as the CLI prints it; exit 5 when the video's lowest frame PSNR
    is below `min_psnr`."""
    per = [_json_float(x) for x in result["psnr_per_frame"]]
    lines = [f"frame {i:>4}: PSNR {p} dB" for i, p in enumerate(per)]
    lines.append(
        f"video: PSNR {_json_float(result['psnr'])} dB over {result['frames']} frames, lowest frame "
        f"{_json_float(result['psnr_min'])} dB, mean {_json_float(result['psnr_mean'])} dB, largest pixel "
        f"difference {result['max_abs_diff']}" + (" (identical)" if result["identical"] else "")
    )
    audio = result.get("audio")
    if audio is None:
        lines.append("sound: neither file has any")
    elif audio.get("only_in"):
        lines.append(f"sound: only {'A' if audio['only_in'] == 'a' else 'B'} has a sound track")
    else:
        audio = {**audio, "snr": _json_float(audio["snr"])}
        lines.append(
            f"sound: SNR {audio['snr']} dB over {audio['samples']} samples"
            + (" (identical)" if audio["identical"] else "")
        )
    report: dict[str, Any] = {
        "a": a,
        "b": b,
        "frames": result["frames"],
        "psnr": _json_float(result["psnr"]),
        "psnr_min": _json_float(result["psnr_min"]),
        "psnr_mean": _json_float(result["psnr_mean"]),
        "max_abs_diff": result["max_abs_diff"],
        "psnr_per_frame": per,
        "identical": result["identical"],
        "audio": audio,
    }
    if min_psnr is not None:
        report["min_psnr"] = min_psnr
        report["passed"] = result["psnr_min"] >= min_psnr
        verdict = "passes" if report["passed"] else "FAILS"
        lines.append(f"{verdict} --min-psnr {min_psnr:g} (lowest frame {_json_float(result['psnr_min'])} dB)")
        if not report["passed"]:
            report["_exit"] = 5
    return report, "\n".join(lines)


def cmd_reproduce(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    """Render a job's (or an MP4's) recipe again and compare; exit 5 when it did not reproduce."""
    from engine.render.reproduce import reproduce
    from engine.studio import Studio

    studio = Studio(settings)
    try:
        with sigterm_as_interrupt():
            result = reproduce(studio, args.source, deep=args.deep)
    finally:
        studio.close()
    compared, text = comparison_report(result["comparison"], result["original"], result["reproduction"])
    verdict = "reproduced" if result["passed"] else "did NOT reproduce"
    head = (
        f"{result['source']} {verdict} on {result['device']} (target: {result['target']}); "
        f"checked {', '.join(result['checked'])}; new clip: job {result['job_id']}"
    )
    report = {**result, "comparison": compared}
    if not result["passed"]:
        report["_exit"] = 5
    return report, f"{text}\n{head}"


def register(reg: Any) -> None:
    p = reg.command(
        "render", "render one clip (video + audio) to an MP4, or extend or retake a finished one", cmd_render
    )
    p.add_argument(
        "edit",
        nargs="*",
        metavar="extend|retake JOB_ID",
        help="extend: continue finished clip JOB_ID by --frames N new frames (a multiple of 8); retake: render "
        "its seconds --from S --to S again, widened to its keyframes (one a second), the rest kept "
        "(--prompt and --seed optional: the clip's prompt; extend: its seed, retake: a new one)",
    )
    p.add_argument("--from", dest="from_", metavar="S", help="retake: the first second to render again")
    p.add_argument("--to", metavar="S", help="retake: the second the retake ends at")
    p.add_argument("--prompt", help="what the clip shows (required unless --recipe gives it)")
    p.add_argument("--negative", help="what to avoid")
    p.add_argument("--seed", type=_seed, help=f"0…{MAX_SEED}, or 'random' (default: 0)")
    p.add_argument("--width", type=int, help="multiple of 32 (default: the model's)")
    p.add_argument("--height", type=int, help="multiple of 32 (default: the model's)")
    p.add_argument("--frames", type=int, help="8k+1 frames, e.g. 17, 121 (default: the model's)")
    p.add_argument("--fps", type=int, help="1–60 (default: the model's)")
    p.add_argument("--steps", type=int, help="denoising steps, 1–200")
    p.add_argument("--guidance", type=float, help="classifier-free guidance, ≥ 1")
    p.add_argument("--model", help="vault pipeline name (default: the first in the vault)")
    p.add_argument(
        "--profile",
        help="hardware profile: auto (default: the fastest that fits this machine's memory), custom, "
        "or a profile's name (gpu-24gb, cpu, … see presets/)",
    )
    p.add_argument(
        "--quantize",
        choices=(AUTO, *QUANTIZATIONS),
        help="transformer weights: none, int8 or fp8 (default: the profile's)",
    )
    p.add_argument(
        "--offload",
        choices=(AUTO, *OFFLOADS),
        help="CUDA memory saving, least first: none, model, group or sequential (default: the profile's)",
    )
    p.add_argument(
        "--vae-tiling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode the video in tiles: far less memory for large frames (default: the profile's)",
    )
    p.add_argument(
        "--fast", action="store_true", help="reuse cached transformer work between steps: faster, a little different"
    )
    p.add_argument(
        "--auto-duration",
        action="store_true",
        help="LTX-2.5: the model's duration head picks the frame count, at most --frames (recorded in the recipe)",
    )
    p.add_argument(
        "--decoder",
        choices=DECODERS,
        help="vae (default), or diffusion: LTX-2.5's diffusion decoder (quality decode, slower)",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print what the render would need (memory, profile, time) and stop; exit 2 if it cannot fit",
    )
    p.add_argument(
        "--lora",
        action="append",
        metavar="NAME[:STRENGTH]",
        help="apply a vault LoRA (strength −2…2, default 1); repeat for several",
    )
    p.add_argument(
        "--image",
        help="start from this picture (PNG, JPEG or WebP; image-to-video), cropped to the clip's size",
    )
    p.add_argument(
        "--keyframe",
        action="append",
        metavar="PATH@FRAME[:STRENGTH]",
        help="hold the clip to a picture at a frame (a number or 'last'; strength 0–1, default 1); repeat for more",
    )
    p.add_argument(
        "--upscale",
        type=int,
        choices=(1, 2),
        help="2: two stages, the vault's latent upsampler doubles width and height, then a short refine",
    )
    p.add_argument("--recipe", help="start from a recipe JSON file (flags override its values)")
    p.add_argument(
        "--takes",
        type=int,
        default=1,
        help="render N seeds (the seed, then the next) and keep the best: 1–8 (default 1)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="CUDA's deterministic mode: slower, repeats exactly (the CPU always does)",
    )
    p.add_argument(
        "--retakes", type=int, default=0, help="while no take passes its technical check, try up to K more seeds: 0–4"
    )
    p.add_argument("--out", help="where to write the MP4 (default: the outputs folder)")

    p = reg.command(
        "reproduce",
        "render a job's (or a studio MP4's) recipe again after checking its weights; compare (exit 5 if it differs)",
        cmd_reproduce,
    )
    p.add_argument("source", help="a job id from `history`, or a studio MP4")
    p.add_argument("--deep", action="store_true", help="hash every weight file first (slow for large models)")

    p = reg.command("inspect", "print the recipe embedded in an MP4 made by the studio", cmd_inspect)
    p.add_argument("file")

    p = reg.command(
        "compare",
        "PSNR per frame and overall, and the sound's SNR, between two videos ('inf' when identical)",
        cmd_compare,
    )
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--min-psnr", type=_min_psnr, help="exit 5 when any frame's PSNR is below this many dB (e.g. 55)")
