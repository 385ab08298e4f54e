"""Rendering through the engine: recorded jobs, progress, cancel, determinism, integrity."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.settings import load_settings
from engine import media
from engine.studio import Studio


def test_render_writes_a_recorded_mp4_with_sound(studio):
    recipe = studio.build_recipe({"prompt": "a red car at night", "seed": 7})
    steps = []
    row = studio.render(recipe, progress=lambda s, t: steps.append((s, t)))
    assert row["status"] == "done" and row["wall_s"] > 0
    assert steps == [(i, recipe.steps) for i in range(1, recipe.steps + 1)]
    info = media.probe(row["output_path"])
    assert info["video"]["frames"] == 17 and (info["video"]["width"], info["video"]["height"]) == (64, 64)
    assert info["audio"]["sample_rate"] == 16000
    assert abs(info["audio"]["duration_s"] - 17 / 24) < 1 / 24
    embedded = media.read_metadata_json(row["output_path"])
    assert embedded == row["recipe"]
    assert embedded["model_digest"] == studio.vault.get("aiprod-tiny-ltx2").digest
    assert embedded["seed"] == 7 and embedded["versions"]["device"] == "cpu (float32)"
    assert row["step"] == recipe.steps


def test_same_recipe_same_frames_other_seed_differs(studio, tmp_path):
    r = studio.build_recipe({"prompt": "waves on a beach", "seed": 3})
    a = studio.render(r, out_path=tmp_path / "a.mp4")["output_path"]
    b = studio.render(r, out_path=tmp_path / "b.mp4")["output_path"]
    c = studio.render(r.model_copy(update={"seed": 4}), out_path=tmp_path / "c.mp4")["output_path"]
    fa, fb, fc = media.read_frames(a), media.read_frames(b), media.read_frames(c)
    assert np.array_equal(fa, fb)
    assert not np.array_equal(fa, fc)


def test_cancel_stops_at_the_next_step_and_leaves_no_file(studio):
    recipe = studio.build_recipe({"prompt": "a slow pan", "steps": 20})
    cancel = threading.Event()
    seen = []

    def progress(step, total):
        seen.append(step)
        if step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        studio.render(recipe, progress=progress, cancel=cancel)
    assert seen == [1, 2, 3]
    [row] = studio.history.jobs()
    assert row["status"] == "cancelled" and row["output_path"] is None
    assert list(studio.settings.outputs_dir.iterdir()) == []


def test_model_defaults_fill_what_the_user_left_out(studio):
    r = studio.build_recipe({"prompt": "x", "steps": 3})
    assert (r.width, r.height, r.num_frames, r.steps, r.guidance) == (64, 64, 17, 3, 3.0)
    assert r.advanced == {"max_sequence_length": 64}


def test_unknown_model_is_bad_input_and_records_nothing(studio):
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "model": "ltx-huge"})
    assert info.value.field == "model" and "'ltx-huge'" in str(info.value)
    assert studio.history.count() == 0


def test_a_damaged_model_is_refused_and_the_job_fails(tiny_vault, tmp_path):
    vault = tmp_path / "vault"
    shutil.copytree(tiny_vault, vault)
    weights = vault / "pipelines/aiprod-tiny-ltx2/transformer/diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    s = Studio(load_settings(models_dir=vault, data_dir=tmp_path / "data", device="cpu"))
    try:
        with pytest.raises(IntegrityError, match="transformer/diffusion_pytorch_model.safetensors"):
            s.render(s.build_recipe({"prompt": "x"}))
        [row] = s.history.jobs()
        assert row["status"] == "failed" and "transformer/diffusion_pytorch_model.safetensors" in row["error"]
    finally:
        s.close()
