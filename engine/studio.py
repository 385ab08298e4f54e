"""The in-process engine the CLI and the UI both drive.

`Studio` ties the settings, the vault, the history and the warm pipeline together:
`build_recipe` turns loose values into a validated recipe (user values over the model's
own defaults over the studio's), `render` runs one job end to end and records it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from aiprod_studio.choices import AUTO
from aiprod_studio.errors import BadInput
from aiprod_studio.files import partials
from aiprod_studio.generations import Generation, check_features, detect
from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.timing import typical_step_s
from aiprod_studio.numbers import whole_number
from aiprod_studio.recipe import MAX_KEYINT, RECIPE_DEFAULTS, Recipe, make_recipe
from aiprod_studio.settings import Settings
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.staging import recover_staging
from aiprod_studio.vault.store import Vault
from engine.budget.check import PROFILE_KEYS, Room, dtype_bytes, plan_job, room
from engine.budget.estimate import Estimate, GiB, Job, weight_bytes
from engine.budget.facts import ModelFacts, read_facts
from engine.device.environment import deterministic as determinism
from engine.device.environment import environment
from engine.device.lease import DeviceLease, DeviceOwner
from engine.device.plan import DevicePlan, resolve
from engine.jobs.lifecycle import job_lifecycle
from engine.models import loras
from engine.models.limits import check_limits, read_grid
from engine.models.pipelines import stored_copy, warm_pipeline
from engine.models.speed import compile_transformer
from engine.qa.gate import QualityGate, expectations, family_of
from engine.render.clip import ProgressFn, render_to_file
from engine.render.conditioned import load_pictures
from engine.render.edits.parent import check_parent, find_parent
from engine.render.images import ImageStore, store_for
from engine.render.inputs import prepared_pictures, with_upsampler
from engine.render.upscale import upsampler_for

log = logging.getLogger(__name__)


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "render"


class Studio:
    def __init__(self, settings: Settings):
        self.settings = settings.ensure_dirs()
        self.vault = Vault(settings.models_dir)
        self.plan: DevicePlan = resolve(settings.device)
        self.device = DeviceOwner(self.plan)  # renders, training, export, quantize: one at a time
        self._history: History | None = None
        self._history_lock = threading.Lock()
        self.qa = QualityGate(self.vault)  # the checks every clip passes once written
        self._facts: dict[str, ModelFacts] = {}  # by model digest: sizes read from the files once
        self._generations: dict[str, Generation | None] = {}  # by model digest and variant: read from the configs once

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def history(self) -> History:
        with self._history_lock:
            if self._history is None:
                self._history = History(self.settings.db_path)
            return self._history

    def device_lease(self, purpose: str) -> contextlib.AbstractContextManager[DeviceLease]:
        """Hold the device until the block ends: every GPU user (render, training, export,
        quantize) takes it, and it frees the warm pipeline when the next user needs another."""
        return self.device.lease(purpose)

    def close(self) -> None:
        self.device.clear()
        if self._history is not None:
            self._history.close()
            self._history = None

    def recover(self) -> dict[str, Any]:
        """After a crash: jobs whose process is gone become interrupted, the partial files
        nobody is writing any more are removed, and killed vault imports are cleared. A render
        or an import still running in another process (its owner lives, its files are
        locked) is left alone."""
        interrupted = self.history.recover_interrupted()
        removed = partials.sweep_tree(self.settings.outputs_dir)
        removed += partials.sweep(partials.temp_path_for(t) for t in self.history.stale_targets())
        staging = recover_staging(self.vault)  # imports killed mid-copy or before their record
        for problem in staging.errors:
            log.warning("vault import leftover not cleared: %s", problem)
        return {"interrupted": interrupted, "partials": [str(p) for p in removed], "vault": staging.to_json()}

    def finished_clip(self, job_id: Any, purpose: str) -> dict[str, Any]:
        """The row of a finished render whose clip is still on disk, else a refusal naming the job
        and why it cannot serve `purpose` ("have a quality report", "be reproduced")."""
        number = whole_number(job_id, "job_id")
        try:
            row = self.history.get(number)
        except KeyError:
            raise BadInput(f"job_id {number} does not exist", field="job_id") from None
        if row.get("kind", "render") != "render" or row["status"] != "done":
            raise BadInput(
                f"job {number} is a {row.get('kind') or 'render'} job that is {row['status']}; "
                f"only a finished clip can {purpose}",
                field="job_id",
            )
        if not Path(row["output_path"]).is_file():
            raise BadInput(f"job {number}'s clip {row['output_path']!r} is no longer on disk", field="job_id")
        return row

    def clip_qa(self, job_id: Any) -> dict[str, Any]:
        """A finished clip's QA report: the one stored with it, or (a clip rendered before the
        studio checked clips) made now and stored."""
        row = self.finished_clip(job_id, "have a quality report")
        if row["qa"] is None:
            expect = expectations(row["recipe"], family_of(self.vault, row["model_digest"]))
            row["qa"] = self.qa.check(Path(row["output_path"]), row["prompt"], expect)
            self.history.set_qa(row["id"], row["qa"])
        return dict(row["qa"])

    # -- models ------------------------------------------------------------------------------
    def pipelines(self) -> list[Entry]:
        return self.vault.entries(kind="pipeline")

    def default_model(self) -> str | None:
        """The first real pipeline of the vault, else the first test model, else None."""
        entries = sorted(self.pipelines(), key=lambda e: (e.test_model, e.name))
        return entries[0].name if entries else None

    def quantize(self, name: str, to: str, new_name: str, dtype: str | None = None) -> Entry:
        """`vault quantize`: a copy of pipeline `name` with its transformer stored quantized, made
        while holding the device (the warm pipeline is freed first: quantizing needs the memory)."""
        from engine.models.quantized import save_quantized

        with self.device_lease("quantize") as lease:
            lease.free()
            return save_quantized(self.vault, name, to, new_name, dtype=dtype)

    # -- recipes -----------------------------------------------------------------------------
    def build_recipe(self, values: dict[str, Any]) -> Recipe:
        """Validated recipe from user values (None = not given) over model and studio defaults."""
        return self._build(values)[0]

    def _build(self, values: dict[str, Any], space: Room | None = None) -> tuple[Recipe, Estimate]:
        """`build_recipe`, with the memory estimate its profile was chosen by."""
        given = {k: v for k, v in values.items() if v is not None and not (k in PROFILE_KEYS and v == AUTO)}
        profile = given.pop("profile", None) or AUTO
        pictures = given.pop("conditions", None) or []
        model = given.get("model") or self.default_model()
        if not model:
            raise BadInput(
                "model is required: the vault holds no pipeline (run `aiprod-studio vault make-tiny` or provision one)",
                field="model",
            )
        entry = self.vault.get(model, kind="pipeline")
        # user values over the model entry's defaults over its generation's over the studio's
        generation = self.generation(entry)
        defaults = self.model_defaults(entry)
        del defaults["generation"]
        advanced = defaults.pop("advanced")
        if isinstance(given.get("advanced"), dict):  # a whole recipe's (a file, a history row): complete as it is
            advanced = dict(given["advanced"])  # (so a recipe made before a default existed renders as it did)
        elif advanced.get("sigmas") and isinstance(given.get("steps"), int):
            if len(advanced["sigmas"]) != given["steps"]:
                del advanced["sigmas"]  # other step counts than the distilled schedule's run the model's own
        data = {
            **RECIPE_DEFAULTS,
            **defaults,
            **given,
            "generation": generation.tag if generation else None,
            "model": model,
            "model_digest": entry.digest,
            "advanced": advanced,
            "versions": environment(self.plan),
            "loras": [r.model_dump() for r in loras.resolve(self.vault, entry, given.get("loras") or [])],
        }
        if "keyint" not in given:  # a keyframe a second, so any second of the clip can be retaken
            data["keyint"] = data["fps"] if isinstance(data["fps"], int) and 0 < data["fps"] <= MAX_KEYINT else 0
        recipe = make_recipe({**data, "profile": "custom" if profile == AUTO else profile})
        if pictures:  # prepared at the clip's final size, stored, named by sha256
            if entry.family != "ltx2":
                raise BadInput(
                    f"conditions: start images and keyframes need an LTX-2 model; {entry.name!r} renders from text",
                    field="conditions",
                )
            temporal = read_grid(self.vault.entry_dir(entry), entry.family).temporal
            conditions = prepared_pictures(self.image_store(), pictures, recipe, temporal)
            recipe = make_recipe({**recipe.model_dump(), "conditions": conditions})
        recipe = with_upsampler(self.vault, recipe, given.get("upsampler"))
        check_limits(self.vault, entry, recipe)  # sizes the model cannot render are refused before anything runs
        check_features(generation, entry.name, recipe.auto_duration, recipe.decoder)
        chosen = {k: given[k] for k in PROFILE_KEYS if k in given}
        if entry.quantization:  # a stored quantized copy runs as stored
            if chosen.get("quantization", "none") not in ("none", entry.quantization):
                raise BadInput(
                    f"model {entry.name!r} is stored quantized as {entry.quantization}; choose quantization "
                    f"none or {entry.quantization}, got {chosen['quantization']!r}",
                    field="quantization",
                )
            chosen["quantization"] = entry.quantization
        return self.fit_memory(entry, recipe, profile, chosen, space)

    def image_store(self, clip: Path | None = None) -> ImageStore:
        """The prepared pictures recipes name (beside the outputs; also beside `clip` when given)."""
        return store_for(self.settings.outputs_dir, clip)

    def generation(self, entry: Entry) -> Generation | None:
        """The entry's LTX-2 generation, read from its configs once per digest (None: not LTX-2)."""
        key = f"{entry.digest}:{entry.variant}"  # (the same files imported as a distilled variant differ)
        if key not in self._generations:
            self._generations[key] = detect(self.vault.entry_dir(entry), entry.variant)
        return self._generations[key]

    def model_defaults(self, entry: Entry) -> dict[str, Any]:
        """What a render on `entry` uses where the user sets nothing: the entry's own defaults over
        its generation's recommended ones over the studio's (`advanced` merged the same way), and
        the generation itself (`generation`: its JSON, or None for a model that is not LTX-2)."""
        generation = self.generation(entry)
        recommended = generation.defaults if generation else {}
        plain = {k: v for k, v in RECIPE_DEFAULTS.items() if k in ("width", "height", "num_frames", "fps", "steps")}
        merged = {**plain, "guidance": RECIPE_DEFAULTS["guidance"], **recommended, **entry.defaults}
        merged["advanced"] = {**recommended.get("advanced", {}), **entry.defaults.get("advanced", {})}
        merged["generation"] = generation.to_json() if generation else None
        return merged

    # -- the memory budget -------------------------------------------------------------------
    def facts(self, entry: Entry) -> ModelFacts:
        """The pipeline's sizes, read from its files' headers once per digest."""
        if entry.digest not in self._facts:
            self._facts[entry.digest] = read_facts(
                self.vault.entry_dir(entry), entry.name, entry.family, entry.quantization
            )
        return self._facts[entry.digest]

    def room(self) -> Room:
        """The memory free for a job now. The warm model's weights count as free (the lease frees
        them for another model, and this job reuses them if it is the same one): on the CPU they
        are in RAM; on a GPU the allocator's cache holds them, and RAM holds those an offload mode
        keeps waiting there."""
        key = self.device.warm_key
        resident = 0
        if isinstance(key, tuple) and len(key) >= 6 and (self.plan.device.type == "cpu" or key[5] != "none"):
            with contextlib.suppress(BadInput):
                warm = self.vault.get(str(key[0]), kind="pipeline")
                job = Job(32, 32, 1, quantization=str(key[4]))
                resident = sum(weight_bytes(self.facts(warm), job, dtype_bytes(self.plan)).values())
        return room(self.plan, self.settings.memory_limit_gb, resident)

    def fit_memory(
        self,
        entry: Entry,
        recipe: Recipe,
        profile: str = "custom",
        given: dict[str, Any] | None = None,
        space: Room | None = None,
    ) -> tuple[Recipe, Estimate]:
        """`recipe` with the settings of `profile` (`auto`: the fastest that fits) under the `given`
        ones, and its estimate; `OverBudget` (exit 2, naming a fix) when it cannot fit."""
        job = Job(
            recipe.width * recipe.upscale,  # (an upscale's second stage needs the most)
            recipe.height * recipe.upscale,
            recipe.num_frames,
            recipe.fps,
            recipe.guidance,
            entry.quantization or recipe.quantization,  # a stored 8-bit copy runs as stored
            recipe.offload,
            recipe.vae_tiling,
            int(recipe.advanced.get("max_sequence_length") or 1024),
        )
        if profile == "custom":
            given = {k: getattr(recipe, k) for k in PROFILE_KEYS}
        space = space or self.room()
        name, job, est = plan_job(self.facts(entry), job, dict(given or {}), profile, self.plan, space)
        settings = {"quantization": job.quantization, "offload": job.offload, "vae_tiling": job.vae_tiling}
        return make_recipe({**recipe.model_dump(), **settings, "profile": name}), est

    def forecast(self, values: dict[str, Any]) -> dict[str, Any]:
        """What a render of `values` will need before it is queued: the profile and settings the
        budget chose, peak memory against what is free, and the time this machine took for
        renders like it. Refusals (bad values, over budget) raise as `build_recipe` does."""
        space = self.room()
        recipe, est = self._build(values, space)
        row = {"kind": "render", "recipe": recipe.model_dump(mode="json"), "model_digest": recipe.model_digest}
        step_s = typical_step_s(self.history, row)
        return {
            "profile": recipe.profile,
            "quantization": recipe.quantization,
            "offload": recipe.offload,
            "vae_tiling": recipe.vae_tiling,
            **est.to_json(),
            "free_device_gib": round(space.device_bytes / GiB, 3),
            "free_host_gib": round(space.host_bytes / GiB, 3),
            "device": space.label,
            "step_s": step_s,
            "expected_s": round(step_s * recipe.steps, 1) if step_s else None,
        }

    # -- rendering ---------------------------------------------------------------------------
    def output_path_for(self, job_id: int, recipe: Recipe) -> Path:
        return self.settings.outputs_dir / f"{job_id:06d}-{_slug(recipe.prompt)}-{recipe.seed}.mp4"

    def stamp(self, recipe: Recipe) -> Recipe:
        """The recipe as it will render: the model's current digest and the library versions."""
        entry = self.vault.get(recipe.model, kind="pipeline")
        return recipe.model_copy(update={"model_digest": entry.digest, "versions": environment(self.plan)})

    def render(
        self,
        recipe: Recipe,
        out_path: Path | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        deterministic: bool = False,
    ) -> dict[str, Any]:
        """Render one recipe now, as a recorded job (created `running`, so no queue worker takes it);
        `deterministic`: in CUDA's deterministic mode (what `reproduce` asks for)."""
        job_id = self.history.create_job(self.stamp(recipe), status="running")
        return self.run_job(job_id, out_path=out_path, progress=progress, cancel=cancel, deterministic=deterministic)

    def run_job(
        self,
        job_id: int,
        out_path: Path | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        deterministic: bool = False,
    ) -> dict[str, Any]:
        """Render a job whose row is already `running`; returns the finished row.

        The row ends done, or failed/cancelled with the error, and the exception propagates;
        the encoder removes its own partial file on any failure (a kill leaves it to the next
        start's sweep).
        """
        history = self.history
        row = history.get(job_id)
        recipe = Recipe.model_validate(row["recipe"])
        deterministic = deterministic or recipe.deterministic  # asked by the caller, or by the recipe
        target = Path(out_path).resolve() if out_path else self.output_path_for(job_id, recipe)
        cancel = cancel if cancel is not None else threading.Event()  # also set by a cancel from elsewhere
        with job_lifecycle(history, job_id, cancel) as run:
            # 1. The model must still be in the vault, unchanged since the recipe was stamped.
            entry = self.vault.get(recipe.model, kind="pipeline")
            if entry.digest != recipe.model_digest:
                recipe = self.stamp(recipe)
                history.set_recipe(job_id, recipe)
            check_limits(self.vault, entry, recipe)  # a resumed or hand-written recipe is checked too
            check_features(self.generation(entry), entry.name, recipe.auto_duration, recipe.decoder)
            parent = find_parent(self, recipe.edit) if recipe.edit is not None else None  # (an edit's)
            if parent is not None:
                check_parent(parent, recipe)
                if target == parent.resolve():
                    raise BadInput(f"out {str(target)!r} is the parent clip itself; the edit keeps it", field="out")
            pictures = load_pictures(self.image_store(), recipe)  # there, unchanged, at the clip's size: read once
            # 2. Wait for the device, then render.
            # (deterministic mode is process-wide: it is on only while this render holds the device)
            with self.device_lease("render") as lease, determinism(self.plan) if deterministic else nullcontext():
                self.fit_memory(entry, recipe)  # memory may have gone to other work since it was queued
                if deterministic:  # the recipe says which mode it was rendered in
                    recipe = recipe.model_copy(update={"versions": environment(self.plan, deterministic=True)})
                    history.set_recipe(job_id, recipe)
                run.started(target=str(target))
                weights = stored_copy(self.vault, entry, recipe.quantization, self.plan)  # 8 bits as stored, if kept
                pipe = warm_pipeline(lease, self.vault, weights, recipe.quantization, recipe.offload)
                if self.settings.compile:  # once per warm pipeline; a no-op (logged) off CUDA
                    compile_transformer(pipe, self.plan.device)
                loras.resolve(self.vault, entry, recipe.loras)  # still in the vault, unchanged, right base
                loras.apply(pipe, self.vault, recipe.loras)
                upsampler = None
                if recipe.upscale > 1:  # the same upsampler, or its current files (the row says which)
                    up_entry = self.vault.get(str(recipe.upsampler), kind="upsampler", field="upsampler")
                    if up_entry.digest != recipe.upsampler_digest:
                        recipe = recipe.model_copy(update={"upsampler_digest": up_entry.digest})
                        history.set_recipe(job_id, recipe)
                    upsampler = upsampler_for(pipe, self.vault, up_entry)

                def on_progress(step: int, total: int) -> None:
                    run.step(step, total)
                    if progress is not None:
                        progress(step, total)

                rendered = render_to_file(pipe, recipe, target, on_progress, cancel, pictures, upsampler, parent)
                if rendered != recipe:  # the duration head picked the frame count: the row says which
                    recipe = rendered
                    history.set_recipe(job_id, recipe)
                # 3. The quality gates, on the device still held: the file, then the CLIP scores.
                expect = expectations(recipe, entry.family)
                history.set_qa(job_id, self.qa.check(target, recipe.prompt, expect))
                run.done(str(target))
        return history.get(job_id)
