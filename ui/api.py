"""The stable scripting API: named endpoints with few keyword parameters.

`/render` (blocking: MP4 + record), `/enqueue` (job id), `/job` (status, progress,
MP4 when done), `/cancel`, `/history`, `/storyboard_split`, `/storyboard_render`,
`/vault_list`, `/vault_verify`, `/lora_train`. They are typed functions (`gr.api`), so
`gradio_client` sees named parameters with their defaults; the names are part of the
contract (tests/snapshots/gradio_api.json pins them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from aiprod_studio.errors import BadInput, StudioError
from aiprod_studio.jobs.takes import check_retakes, passed, summary, takes_of
from aiprod_studio.numbers import whole_number
from aiprod_studio.storyboard.board import storyboard_from_json
from aiprod_studio.storyboard.db import StoryboardStore
from aiprod_studio.storyboard.scenarist import split_script
from aiprod_studio.training import make_train_config
from aiprod_studio.vault.manifest import check_kind
from aiprod_studio.vault.verify import last_results, verify
from engine.film import produce
from engine.film import shots as sb
from engine.jobs.queue import QueueWorker
from engine.studio import Studio
from engine.training.jobs import queue_training
from ui import api_edits as edits
from ui.components.render_job import enqueue_group
from ui.context import Services
from ui.errors import refused

RECORD_KEYS = (
    "id",
    "kind",
    "status",
    "paused",
    "prompt",
    "model",
    "model_digest",
    "seed",
    "output_path",
    "error",
    "step",
    "total_steps",
    "position",
    "progress",
    "wall_s",
    "created_at",
    "started_at",
    "finished_at",
    "recipe",
    "metrics",
    "qa",
    "take_of",
    "parent_id",
)


def json_safe(value: Any) -> Any:
    """`value` with every infinite or NaN float as the text "inf", "-inf" or "nan" (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def record(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in RECORD_KEYS}


def build(studio: Studio, worker: QueueWorker) -> None:  # long: ten endpoints, each a few lines
    """Register the typed API functions on the current Blocks (size, length and sampling
    parameters default to None: the chosen model's own defaults).

    They are closures over `studio` and `worker` on purpose: `gr.api` reads each function's own
    signature, return annotation and docstring as the published contract, exactly as written here.
    """

    services = Services(studio, worker)

    def _status(job_id: int) -> dict[str, Any]:
        try:
            return worker.status(job_id)
        except StudioError as exc:
            raise refused(exc) from None

    def render(
        prompt: str,
        negative_prompt: str = "",
        model: str = "",
        quantization: str = "auto",
        offload: str = "auto",
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        fps: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        loras: list[str] | None = None,
        takes: int = 1,
        retakes: int = 0,
        deterministic: bool = False,
        profile: str = "auto",
        vae_tiling: bool | None = None,
        fast: bool = False,
        auto_duration: bool = False,
        decoder: str = "vae",
        image: FileData | None = None,
        keyframes: list[FileData] | None = None,
        keyframe_frames: list[str] | None = None,
        upscale: int = 1,
    ) -> tuple[FileData, dict]:
        """Render one clip through the queue and wait: returns the MP4 and its history record (with its `qa`).
        `loras`: vault LoRA names, each optionally `name:strength` (−2…2). `takes` > 1 (up to 8) renders that many
        seeds (the seed, then the next ones) and returns the best, with every take ranked under `takes`; `retakes`
        (0–4): while no take passes its technical check, one more seed at a time. `deterministic`: CUDA's
        deterministic mode (slower; renders repeat exactly, as they always do on the CPU). `profile`: `auto` (the
        fastest hardware profile that fits this machine's memory), `custom` or a profile's name; `quantization`,
        `offload` and `vae_tiling` left `auto`/null are the profile's. `fast`: reuse cached transformer work between
        steps (faster, a little different). `auto_duration` (LTX-2.5): the model's duration head picks the frame
        count, at most `num_frames`; the record's recipe holds the count it picked. `decoder`: `vae`, or `diffusion`
        for LTX-2.5's diffusion decoder (quality decode). `image`: a start picture (PNG, JPEG or WebP;
        image-to-video), cropped to the clip's size. `keyframes`: more pictures, each held at the frame its
        `keyframe_frames` entry gives (`FRAME[:STRENGTH]`, FRAME a number or `last`, strength above 0 and at most 1).
        `upscale` 2: the two-stage upscale (the vault's latent upsampler, then a short refine): the clip is twice
        `width` and `height`.
        Left-out sizes, steps and guidance are the model's generation's recommended ones. A render that cannot fit in
        memory is refused with a change that fits."""
        size = (width, height, num_frames, fps, steps, guidance)
        try:
            extra = check_retakes(retakes)
        except StudioError as exc:
            raise refused(exc) from None
        form = (prompt, negative_prompt, model, quantization, offload, *size, seed, loras, profile, vae_tiling, fast)
        form += (auto_duration, decoder, image, None, None, keyframes, keyframe_frames, upscale)
        ids = enqueue_group(services, takes, *form, deterministic=deterministic)
        for job_id in ids:
            worker.wait(job_id)
        while extra and not any(passed(studio.history.get(i)) for i in ids):
            extra -= 1
            ids.append(worker.enqueue_retake(ids[0]))
            worker.wait(ids[-1])
        ranking = takes_of(studio.history, ids[0])
        row = ranking[0]
        if row["status"] != "done":
            raise refused(f"job {row['id']} {row['status']}: {row.get('error') or ''}".strip())
        extra = {"takes": [summary(r) for r in ranking]} if len(ids) > 1 else {}
        return FileData(path=row["output_path"]), record(row) | extra

    def enqueue(
        prompt: str,
        negative_prompt: str = "",
        model: str = "",
        quantization: str = "auto",
        offload: str = "auto",
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        fps: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        loras: list[str] | None = None,
        takes: int = 1,
        deterministic: bool = False,
        profile: str = "auto",
        vae_tiling: bool | None = None,
        fast: bool = False,
        auto_duration: bool = False,
        decoder: str = "vae",
        image: FileData | None = None,
        keyframes: list[FileData] | None = None,
        keyframe_frames: list[str] | None = None,
        upscale: int = 1,
    ) -> dict:
        """Add one clip to the queue and return at once: its record (id, status, position). `takes` > 1 (up to 8)
        queues that many seeds as one group: the first take's record, every take's id under `take_ids`.
        `deterministic`: CUDA's deterministic mode for this render. `profile`, `quantization`, `offload`, `vae_tiling`,
        `fast`, `auto_duration`, `decoder`, `image`, `keyframes`, `keyframe_frames` and `upscale` as in /render."""
        size = (width, height, num_frames, fps, steps, guidance)
        form = (prompt, negative_prompt, model, quantization, offload, *size, seed, loras, profile, vae_tiling, fast)
        form += (auto_duration, decoder, image, None, None, keyframes, keyframe_frames, upscale)
        ids = enqueue_group(services, takes, *form, deterministic=deterministic)
        return record(_status(ids[0])) | ({"take_ids": ids} if len(ids) > 1 else {})

    def job(job_id: int) -> tuple[dict, FileData | None]:
        """A job's record (status, step/total_steps, progress 0–1, position, error; a training run's loss per step in
        `metrics`, `paused` when it was paused) and its MP4 once done (a clip written outside the outputs folder by a
        command-line `--out` is not served: its path is in the record)."""
        row = _status(job_id)
        if row.get("kind") == "train":
            row["metrics"] = studio.history.metrics(row["id"])
        is_clip = row["status"] == "done" and row.get("kind", "render") == "render"
        served = is_clip and Path(row["output_path"]).resolve().is_relative_to(studio.settings.outputs_dir.resolve())
        return record(row), FileData(path=row["output_path"]) if served else None

    def cancel(job_id: int) -> dict:
        """Cancel a queued job (it never starts) or a running one (it stops within about a second; a render another
        process runs, within a few)."""
        try:
            return {"job_id": job_id, "result": worker.cancel(job_id)}
        except StudioError as exc:
            raise refused(exc) from None

    def history(
        limit: int = 20,
        offset: int = 0,
        status: str = "",
        text: str = "",
        model: str = "",
        findings: str = "",
        order: str = "newest",
    ) -> list[dict]:
        """Past and queued jobs as records, newest first (order "score": best prompt match first); filter by status,
        prompt text, model, and findings ("yes": clips whose QA found something, "no": clean clips)."""
        try:
            if findings not in ("", "yes", "no"):
                raise BadInput(f"findings must be '', 'yes' or 'no', got {str(findings)[:40]!r}", field="findings")
            rows = studio.history.jobs(
                limit=whole_number(limit, "limit", high=500),
                offset=whole_number(offset, "offset", low=0),
                status=status or None,
                text=text or None,
                model=model or None,
                findings={"": None, "yes": True, "no": False}[findings],
                order=order,
            )
        except StudioError as exc:
            raise refused(exc) from None
        return [record(r) for r in rows]

    def qa(job_id: int) -> dict:
        """A finished clip's quality report: technical findings (code, severity, frame and time range, message),
        the file's probe, and semantic scores from the vault's CLIP (prompt match mean and minimum, temporal
        coherence; None with a `semantic_note` when the vault has no QA model)."""
        try:
            return {"job_id": whole_number(job_id, "job_id"), "qa": studio.clip_qa(job_id)}
        except StudioError as exc:
            raise refused(exc) from None

    def reproduce(job_id: int, deep: bool = False) -> dict:
        """Render a finished clip's recipe again, after checking that its model, LoRAs and QA model are still the
        vault's (refused naming the mismatch), and compare: per-frame PSNR (lowest, mean), largest pixel difference,
        the sound's SNR, and `passed` (bit-identical on the CPU, lowest frame above 55 dB on CUDA)."""
        from engine.render.reproduce import reproduce as again

        try:
            result = again(studio, whole_number(job_id, "job_id"), deep=bool(deep))
        except StudioError as exc:
            raise refused(exc) from None
        return json_safe(result)

    def vault_list(kind: str = "") -> list[dict]:
        """The vault's entries: name, kind, family, location, source, license, files (sha256, size), last check."""
        try:
            check_kind(kind) if kind else None
        except StudioError as exc:
            raise refused(exc) from None
        checks = last_results(studio.vault)
        out = []
        for e in studio.vault.entries(kind=kind or None):
            d = e.model_dump(mode="json", exclude={"path"})  # a "path" key would read as a file to download
            out.append(d | {"location": e.path, "total_size": e.total_size, "last_check": checks.get(e.name)})
        return out

    def vault_verify(name: str = "", deep: bool = False) -> dict:
        """Check one entry (or all) against the manifest: per entry ok/failed with each problem's kind and path."""
        try:
            return verify(studio.vault, [name] if name else None, deep=deep).to_json()
        except StudioError as exc:
            raise refused(exc) from None

    def storyboard_split(
        script: str,
        fps: int = 24,
        target_s: float | None = None,
        base_seed: int = 0,
        model: str = "",
        preset: str = "",
        crossfade_s: float = 0.0,
    ) -> dict:
        """A script → a storyboard (title, style, settings, shots with prompt, duration_s and seed) as JSON."""
        try:
            board = split_script(
                script,
                fps=fps,
                target_s=target_s or None,
                base_seed=base_seed,
                model=model or None,
                preset=preset or None,
                crossfade_s=crossfade_s,
            )
        except StudioError as exc:
            raise refused(exc) from None
        return board.model_dump(mode="json")

    def storyboard_render(storyboard: str, wait: bool = True) -> tuple[FileData | None, dict]:
        """Queue the shots of a storyboard (JSON) that have no current render. With wait (default), follow
        them and return the assembled film and its facts; without, return at once with the job ids."""
        try:
            board = storyboard_from_json(storyboard)
            board = StoryboardStore(studio.history).save(board)  # new, or an existing id (a missing one is refused)
            if not wait:
                ids = sb.enqueue(worker, sb.plan(studio, board))
                return None, {"storyboard_id": board.id, "job_ids": ids, "film": None}
            info: dict[str, Any] = {"storyboard_id": board.id}
            for event in produce.render_queued(studio, worker, board):
                if isinstance(event, produce.ShotsQueued):
                    info |= {"job_ids": event.job_ids, "rendered_shots": event.to_render}
                elif isinstance(event, produce.FilmReady):
                    info |= {
                        "film": event.info["path"],
                        "frames": event.info["frames"],
                        "seconds": event.info["seconds"],
                        "chapters": event.info["chapters"],
                        "qa": event.info.get("qa"),
                    }
        except StudioError as exc:
            raise refused(exc) from None
        return FileData(path=info["film"]), info

    def lora_train(
        dataset: str,
        name: str,
        model: str = "",
        rank: int = 32,
        steps: int = 1500,
        lr: float = 1e-4,
        trigger: str = "",
        save_every: int = 250,
        seed: int = 0,
    ) -> dict:
        """Queue a LoRA training run on a dataset folder of this machine; returns its record (poll `/job` with its
        `id` for step and loss progress; when done, the LoRA is in the vault under `name`)."""
        try:
            config = make_train_config(
                {
                    "dataset": dataset,
                    "name": name,
                    "model": model or None,
                    "rank": rank,
                    "steps": steps,
                    "lr": lr,
                    "trigger": trigger,
                    "save_every": save_every,
                    "seed": seed,
                }
            )
            return record(_status(queue_training(worker, config)))
        except StudioError as exc:
            raise refused(exc) from None

    for fn in (
        render,
        enqueue,
        job,
        cancel,
        history,
        qa,
        reproduce,
        storyboard_split,
        storyboard_render,
        vault_list,
        vault_verify,
        lora_train,
        *edits.endpoints(studio, worker, lambda job_id: record(_status(job_id))),
    ):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
