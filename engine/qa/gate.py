"""The quality gates every clip passes after it is written: the technical check of the file
against its recipe, then the semantic scores with the vault's local CLIP when it has one.

`QualityGate` keeps the loaded CLIP between clips (a new one is loaded when the vault's QA
entry changes). A gate that breaks never fails the render: its report then says what broke.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from aiprod_studio.errors import failure_text
from aiprod_studio.recipe import Recipe
from aiprod_studio.vault.store import Vault
from engine.qa import technical
from engine.qa.semantic import ClipScorer, best_entry, load_scorer, score_file
from engine.render import media

log = logging.getLogger(__name__)

NO_QA_MODEL = (
    "no QA model in the vault, so no semantic scores: `aiprod-studio vault make-tiny` builds a test one, "
    "`aiprod-studio vault provision clip-vit-b32` (on a connected machine) a real one"
)
AUDIO_FAMILIES = ("ltx2",)  # pipelines that render sound with the picture


def family_of(vault: Vault, model_digest: str | None) -> str | None:
    """The family of the vault pipeline with this digest (None: not in this vault any more)."""
    return next((e.family for e in vault.entries("pipeline") if e.digest == model_digest), None)


def expectations(recipe: Recipe | dict[str, Any], family: str | None) -> dict[str, Any]:
    """What the file must hold: the recipe's size, rate and length, and sound for an audio model."""
    data = recipe.model_dump(mode="json") if isinstance(recipe, Recipe) else recipe
    expect = {k: data[k] for k in ("width", "height", "fps", "num_frames") if data.get(k) is not None}
    for side in ("width", "height"):  # an upscaled clip is twice the recipe's (first stage's) size
        if side in expect:
            expect[side] *= int(data.get("upscale") or 1)
    if family is not None:
        expect["audio"] = family in AUDIO_FAMILIES
    return expect


class QualityGate:
    """Checks clips and films; safe to share between threads (one scoring at a time)."""

    def __init__(self, vault: Vault):
        self.vault = vault
        self._lock = threading.Lock()
        self._scorer: ClipScorer | None = None

    def scorer(self) -> ClipScorer | None:
        """The vault's best QA model, loaded once (again when the entry changes). It scores on the
        CPU: eight frames take well under a second there, and it never holds GPU memory that the
        next render or training run needs."""
        best = best_entry(self.vault)
        if best is None:
            self._scorer = None
            return None
        if self._scorer is None or self._scorer.entry.digest != best.digest:
            self._scorer = load_scorer(self.vault, best.name, device="cpu")
        return self._scorer

    def check(self, path: Path, prompt: str | None, expect: dict[str, Any] | None = None) -> dict[str, Any]:
        """The QA report of one file: the technical report, plus `semantic` (scores, or None with
        `semantic_note` saying why)."""
        with self._lock:
            try:
                report = technical.check_file(Path(path), expect)
            except Exception as exc:  # noqa: BLE001 - the clip is written; the report says the check broke
                log.exception("technical QA of %s failed", path)
                broke = {
                    "code": "check_failed",
                    "severity": "warning",
                    "message": f"the check broke: {failure_text(exc)}",
                }
                broke |= {"start_frame": None, "end_frame": None, "start_s": None, "end_s": None}
                report = {"version": 1, "ok": None, "errors": 0, "warnings": 1, "findings": [broke], "probe": {}}
                report["technical_error"] = failure_text(exc)  # not clean: listed with the findings
            report["semantic"], report["semantic_note"] = None, None
            try:
                scorer = self.scorer()
                if scorer is None:
                    report["semantic_note"] = NO_QA_MODEL
                else:
                    frames = report["probe"].get("frames")  # counted already: not decoded again
                    report["semantic"] = score_file(scorer, Path(path), prompt, count=frames or None)
                    report["semantic"]["test_model"] = scorer.entry.test_model  # random weights: no meaning
            except Exception as exc:  # noqa: BLE001 - as above: a QA model that breaks never fails the render
                log.exception("semantic QA of %s failed", path)
                report["semantic_note"] = f"the semantic check failed: {failure_text(exc)}"
            return report


def check_film(gate: QualityGate, info: dict[str, Any], recipe: Recipe | None) -> dict[str, Any]:
    """The QA report of an assembled film (`info` from `assemble`): its length and rate, the
    shots' size, and each shot's CLIP scores against its own prompt."""
    expect: dict[str, Any] = {"num_frames": info["frames"]}
    if recipe is not None:
        expect |= {"width": recipe.width, "height": recipe.height, "fps": recipe.fps}
    return gate.check(Path(info["path"]), None, expect)


def check_any_file(gate: QualityGate, path: Path, prompt: str | None = None) -> dict[str, Any]:
    """`aiprod-studio qa FILE`: the report of any MP4, judged against its embedded recipe when it
    has one (and `prompt`, else the recipe's)."""
    recipe = media.read_metadata_json(path) or {}
    expect = expectations(recipe, family_of(gate.vault, recipe.get("model_digest"))) if recipe.get("width") else None
    return gate.check(path, prompt or recipe.get("prompt"), expect)
