"""Following a render from the page: who follows which job, its status line, Generate and Cancel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr

from aiprod_studio.errors import BadInput, StudioError
from aiprod_studio.jobs.history import FINAL_STATUSES
from aiprod_studio.jobs.takes import check_retakes, check_takes, passed, summary, take_line, takes_of
from engine.jobs.queue import Done, Progress, Stopped
from ui.components.qa_report import qa_markdown
from ui.components.render_form import values
from ui.context import Services
from ui.errors import refused, shown


class Followed:
    """The jobs each browser session is following (one clip, or a group of takes), so its Cancel
    button can reach them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, list[int]] = {}

    def set(self, session: str, job_ids: list[int] | None) -> None:
        with self._lock:
            if not job_ids:
                self._jobs.pop(session, None)
            else:
                self._jobs[session] = list(job_ids)

    def get(self, session: str) -> list[int]:
        with self._lock:
            return list(self._jobs.get(session, []))


def status_text(event: Any) -> str:
    if isinstance(event, Progress):
        if event.status == "queued":
            return f"Job {event.job_id} is waiting in the queue (position {event.position})…"
        if event.loading:
            return f"Job {event.job_id}: loading the model…"
        eta = f"about {event.eta_s:.1f}s left" if event.eta_s is not None else "estimating the time left…"
        return f"Job {event.job_id}: step {event.step}/{event.total} · {eta}"
    row = event.row
    if isinstance(event, Done):
        done = f"Done: job {row['id']} in {row['wall_s']:.2f}s → `{row['output_path']}`"
        return f"{done}\n\n{qa_markdown(row.get('qa'))}".strip()
    if isinstance(event, Stopped):
        return f"Job {row['id']} {row['status']}: the partial clip was discarded."
    return f"Failed: job {row['id']}: {event.error}"


def picture_roots(services: Services) -> list[Path]:
    """Where a picture the page or a script names may be read from: Gradio's upload folder (an upload)
    and the studio's image store (a restored clip's pictures) — never any other file of this machine."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve(), services.studio.image_store().root.resolve()]


def checked_form(services: Services, *args: Any) -> dict[str, Any]:
    """`values(*args)`, refusing (by field) a picture path that is not an upload or a stored picture."""
    form = values(*args)
    roots = picture_roots(services)
    for picture in form.get("conditions") or []:
        path = picture.get("path")
        field = str(picture.get("field", "image"))
        if not isinstance(path, str) or not path:
            raise BadInput(f"{field}: an empty picture entry; upload a PNG, JPEG or WebP file", field=field)
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            raise BadInput(
                f"{field}: give the picture as an upload (gradio_client's handle_file), not a path", field=field
            )
    return form


def enqueue(services: Services, *args: Any) -> int:
    try:
        return services.worker.enqueue(services.studio.build_recipe(checked_form(services, *args)))
    except StudioError as exc:
        raise refused(exc) from None


def enqueue_group(services: Services, takes: Any, *args: Any, deterministic: bool = False) -> list[int]:
    """Queue the form's clip `takes` times (one seed each, grouped), or once; the job ids.
    `deterministic` asks for CUDA's deterministic mode (the API's switch; the form has none)."""
    try:
        count = check_takes(1 if takes in (None, "") else takes)
        asked = {"deterministic": True} if deterministic is True else {}
        recipe = services.studio.build_recipe(checked_form(services, *args) | asked)
        return [services.worker.enqueue(recipe)] if count == 1 else services.worker.enqueue_takes(recipe, count)
    except StudioError as exc:
        raise refused(exc) from None


def on_generate(
    services: Services,
    followed: Followed,
    prompt,
    negative_prompt,
    model,
    quantization,
    offload,
    width,
    height,
    num_frames,
    fps,
    steps,
    guidance,
    seed,
    loras,
    profile,
    vae_tiling,
    fast,
    auto_duration,
    decoder,
    image,
    end_image,
    end_strength,
    keyframes,
    keyframe_frames,
    upscale,
    takes,
    retakes,
    request: gr.Request,
):
    # (explicit parameters: Gradio only injects `request` next to named positional ones)
    args = (prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps, steps, guidance)
    try:
        extra = check_retakes(0 if retakes in (None, "") else retakes)
        pictures = (image, end_image, end_strength, keyframes, keyframe_frames)
        form = (*args, seed, loras, profile, vae_tiling, fast, auto_duration, decoder, *pictures, upscale)
        ids = enqueue_group(services, takes, *form)
    except StudioError as exc:
        yield gr.update(), gr.update(), shown(refused(exc))
        return
    except gr.Error as exc:  # the last clip and its recipe stay on screen; the message goes to the status line
        yield gr.update(), gr.update(), shown(exc)
        return
    session = request.session_hash or "default"
    followed.set(session, ids)
    try:
        n = 0
        while n < len(ids):
            job_id, n = ids[n], n + 1
            take = f"Take {n} of {len(ids)}: " if len(ids) > 1 else ""
            for event in services.worker.follow(job_id):
                if isinstance(event, Progress):
                    yield gr.update(), gr.update(), take + status_text(event)
                elif len(ids) > 1:
                    yield gr.update(), gr.update(), take + status_text(event).split("\n")[0]
                elif isinstance(event, Done):
                    row = event.row
                    yield row["output_path"], row["recipe"] | {"job_id": row["id"]}, status_text(event)
                else:
                    yield None, gr.update(), status_text(event)
            if n == len(ids) and extra and not any(passed(services.studio.history.get(i)) for i in ids):
                extra -= 1  # every take failed its technical check: one more seed
                ids.append(services.worker.enqueue_retake(ids[0]))
                followed.set(session, ids)
        if len(ids) > 1:
            yield best_take(services, ids[0])
    finally:
        followed.set(session, None)  # leaving the page does not cancel: the jobs stay in the queue


def best_take(services: Services, first: int) -> tuple[Any, Any, str]:
    """The group's best finished take on screen, and every take ranked."""
    ranking = takes_of(services.studio.history, first)
    lines = [take_line(summary(r)) for r in ranking]
    best = ranking[0]
    if not best["best"]:
        return None, gr.update(), "No take finished:\n" + "\n".join(f"- {line.strip()}" for line in lines)
    head = f"Best of {len(ranking)} takes: job {best['id']} (seed {best['seed']}) → `{best['output_path']}`"
    text = "\n".join([head, "", *(f"- {line.strip()}" for line in lines), "", qa_markdown(best.get("qa"))])
    return best["output_path"], best["recipe"] | {"job_id": best["id"]}, text.strip()


def on_cancel(services: Services, followed: Followed, request: gr.Request) -> str:
    job_ids = followed.get(request.session_hash or "default")
    if not job_ids:
        return "Nothing is rendering from this page (cancel queued jobs in the queue panel)."
    said = []
    for job_id in job_ids:
        if services.worker.status(job_id)["status"] in FINAL_STATUSES:
            continue
        try:
            said.append(f"Job {job_id}: {services.worker.cancel(job_id)}…")
        except StudioError as exc:
            said.append(str(exc))
    return " ".join(said) or "Nothing is rendering from this page."
