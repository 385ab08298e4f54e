"""Reproduce a render: the same recipe on the same weights, compared frame by frame and sample
by sample with the clip it claims to reproduce.

The source is a history job or any studio MP4 (its embedded recipe). Before anything renders,
the model, every LoRA and the QA model the source was scored with must still be the ones in
the vault: same digests, files matching the manifest (`deep` hashes them all). The render
runs in deterministic mode on CUDA; on the CPU the studio's renders repeat bit for bit, so
there the target is "identical", on CUDA a lowest-frame PSNR above `CUDA_TARGET_DB`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.recipe import Recipe, recipe_from_json
from aiprod_studio.vault.verify import verify
from engine.render import media

CUDA_TARGET_DB = 55.0
CUDA_AUDIO_TARGET_DB = 40.0  # the sound's SNR on CUDA (the picture's lowest-frame PSNR is the main target)


def source_of(studio: Any, source: Any) -> tuple[Recipe, Path, dict[str, Any] | None, str]:
    """(recipe, the clip to compare with, its QA report if any, a label) for a job id or an MP4 path."""
    text = str(source).strip()
    if text.lower().endswith(".mp4"):
        path, _ = media.require_video(text, "source")
        data = media.read_metadata_json(path)
        if data is None:
            raise BadInput(f"source {text!r} carries no AIPROD recipe (was it made by the studio?)", field="source")
        return recipe_from_json(json.dumps(data)), path, None, text  # checked like any recipe file
    row = studio.finished_clip(source, "be reproduced")
    path = Path(row["output_path"])
    return recipe_from_json(json.dumps(row["recipe"])), path, row.get("qa"), f"job {row['id']}"


def check_weights(studio: Any, recipe: Recipe, qa: dict[str, Any] | None, deep: bool) -> list[str]:
    """Refuse (naming the entry and file) when a weight the source used changed; returns the entries checked."""
    vault = studio.vault
    model = vault.get(recipe.model, kind="pipeline", field="model")
    if model.digest != recipe.model_digest:
        raise IntegrityError(
            f"model {recipe.model!r} is not the one the clip was rendered with: digest {model.digest[:12]} in the "
            f"vault, {recipe.model_digest[:12]} in the recipe"
        )
    entries = [model]
    for ref in recipe.loras:
        lora = vault.get(ref.name, kind="lora", field="loras")
        files = {f.sha256 for f in lora.files.values()}
        if ref.sha256 and ref.sha256 not in files:
            raise IntegrityError(f"LoRA {ref.name!r} is not the one the clip was rendered with (sha256 differs)")
        entries.append(lora)
    if recipe.upscale > 1 and recipe.upsampler:
        upsampler = vault.get(recipe.upsampler, kind="upsampler", field="upsampler")
        if upsampler.digest != recipe.upsampler_digest:
            raise IntegrityError(
                f"upsampler {recipe.upsampler!r} is not the one the clip was upscaled with (digest differs)"
            )
        entries.append(upsampler)
    semantic = (qa or {}).get("semantic") or {}
    if semantic.get("model"):
        scorer = vault.get(semantic["model"], kind="qa", field="qa_model")
        if scorer.digest != semantic.get("model_digest"):
            raise IntegrityError(f"QA model {scorer.name!r} is not the one the clip was scored with (digest differs)")
        entries.append(scorer)
    if deep:
        report = verify(vault, [e.name for e in entries], deep=True)
        if report.failures():
            raise IntegrityError("the vault failed its check: " + "; ".join(report.failures()))
    for entry in entries:
        vault.require_ok(entry)  # (after a deep verify, its recorded result)
    return [e.name for e in entries]


def reproduce(studio: Any, source: Any, deep: bool = False, out_dir: Path | None = None) -> dict[str, Any]:
    """Render the source's recipe again and compare; the report says whether it reproduced."""
    recipe, original, qa, label = source_of(studio, source)
    checked = check_weights(studio, recipe, qa, deep)
    studio.image_store(original).adopt([c.image for c in recipe.conditions])  # (an `images/` beside the clip)
    folder = out_dir or studio.settings.outputs_dir / "reproduced"
    folder.mkdir(parents=True, exist_ok=True)
    row = studio.render(recipe, out_path=folder / f"{original.stem}-again.mp4", deterministic=True)
    try:
        result = media.compare(original, Path(row["output_path"]))
    except (ValueError, OSError) as exc:
        raise BadInput(f"the reproduction differs in form from {label}: {exc}", field="source") from None
    on_cuda = studio.plan.device.type == "cuda"
    passed = (result["psnr_min"] > CUDA_TARGET_DB if on_cuda else result["identical"]) and _sound_same(result, on_cuda)
    return {
        "source": label,
        "original": str(original),
        "reproduction": row["output_path"],
        "job_id": row["id"],
        "checked": checked,
        "device": studio.plan.label,
        "deterministic": on_cuda,
        "target": (
            f"lowest frame PSNR > {CUDA_TARGET_DB:g} dB, sound SNR > {CUDA_AUDIO_TARGET_DB:g} dB"
            if on_cuda
            else "bit-identical"
        ),
        "passed": passed,
        "comparison": result,
    }


def _sound_same(result: dict[str, Any], on_cuda: bool) -> bool:
    """The sound reproduced too: both files have it or neither, of the same length, and identical
    (on the CPU) or above `CUDA_AUDIO_TARGET_DB` of SNR (on CUDA)."""
    audio = result.get("audio")
    if audio is None:
        return True
    if audio.get("only_in") or audio["length_differs"]:
        return False
    return bool(audio["snr"] > CUDA_AUDIO_TARGET_DB) if on_cuda else bool(audio["identical"])
