"""Rendering through the engine: recorded jobs, progress, cancel, determinism, integrity."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.generations import DEFAULTS
from aiprod_studio.settings import load_settings
from engine.models.pipelines import warm_pipeline
from engine.render import media
from engine.render.clip import RenderNotFinite, check_finite, run_pipeline
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
    # the model's own (max_sequence_length) over its generation's recommended guidance extras
    assert r.generation == "2.0"
    assert r.advanced == {**DEFAULTS[("2.0", False)]["advanced"], "max_sequence_length": 64}


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


# -- cancel inside a step, one-step renders, non-finite output ---------------------------------
def warm_pipe(studio):
    """The pipeline `studio.render` will use for a default recipe (the cache's warm copy)."""
    entry = studio.vault.get(studio.default_model(), kind="pipeline")
    with studio.device_lease("test") as lease:
        return warm_pipeline(lease, studio.vault, entry, "none", "none")


def pre_hook_count(pipe) -> int:
    return sum(
        len(m._forward_pre_hooks)
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for m in c.modules()
    )


def test_cancel_inside_a_step_stops_within_one_block_and_leaves_the_pipeline_clean(studio, tmp_path):
    recipe = studio.build_recipe({"prompt": "a slow pan", "seed": 5, "steps": 4})
    pipe = warm_pipe(studio)
    hooks_before = pre_hook_count(pipe)
    reference = studio.render(recipe, out_path=tmp_path / "reference.mp4")["output_path"]

    blocks = pipe.transformer.transformer_blocks
    cancel, seen, calls = threading.Event(), [], []

    def count(_module, _args, _out):
        calls.append(cancel.is_set())
        if len(calls) == 1:  # the first block of the first step has run
            cancel.set()

    handles = [b.register_forward_hook(count) for b in blocks]
    try:
        with pytest.raises(Cancelled):
            studio.render(
                recipe, out_path=tmp_path / "cancelled.mp4", progress=lambda s, t: seen.append(s), cancel=cancel
            )
    finally:
        for h in handles:
            h.remove()
    assert len(blocks) == 2 and calls == [False]  # no block ran after the event, the step never ended
    assert seen == []
    assert not (tmp_path / "cancelled.mp4").exists()
    assert not media.temp_path_for(tmp_path / "cancelled.mp4").exists()
    row = studio.history.jobs()[0]
    assert row["status"] == "cancelled" and row["output_path"] is None
    assert pre_hook_count(pipe) == hooks_before  # no cancel point outlived the render

    # The same warm pipeline renders again, bit for bit as before the cancel.
    again = studio.render(recipe, out_path=tmp_path / "again.mp4")["output_path"]
    assert np.array_equal(media.read_frames(again), media.read_frames(reference))
    audio_a, rate_a = media.read_audio(again)
    audio_r, rate_r = media.read_audio(reference)
    assert rate_a == rate_r and np.array_equal(audio_a, audio_r)


def test_cancel_during_vae_decode_stops_before_the_decode_finishes(studio, tmp_path):
    recipe = studio.build_recipe({"prompt": "a quiet lake", "steps": 3})
    pipe = warm_pipe(studio)
    decoder = pipe.vae.decoder
    blocks = [decoder.mid_block, *decoder.up_blocks]
    cancel, ran, seen = threading.Event(), [], []

    def count(module, _args, _out):
        ran.append(module)
        cancel.set()  # from the first decoder block's call

    handles = [b.register_forward_hook(count) for b in [*blocks, pipe.vocoder]]
    try:
        with pytest.raises(Cancelled):
            studio.render(recipe, out_path=tmp_path / "x.mp4", progress=lambda s, t: seen.append(s), cancel=cancel)
    finally:
        for h in handles:
            h.remove()
    assert seen == [1, 2, 3]  # denoising had finished: the cancel came during the decode
    assert len(blocks) == 3 and ran == [decoder.mid_block]  # the up blocks and the vocoder never ran
    assert not (tmp_path / "x.mp4").exists() and pre_hook_count(pipe) == 0


def test_one_step_renders_finite_frames_from_pure_noise(studio, tmp_path):
    recipe = studio.build_recipe({"prompt": "a red car", "steps": 1})
    pipe = warm_pipe(studio)
    scheduler = pipe.scheduler
    timesteps, steps = [], []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: timesteps.extend(kw["timestep"].flatten().tolist()), with_kwargs=True
    )
    try:
        frames, audio, _rate = run_pipeline(pipe, recipe)
        row = studio.render(recipe, out_path=tmp_path / "one.mp4", progress=lambda s, t: steps.append((s, t)))
    finally:
        handle.remove()
    assert steps == [(1, 1)] and timesteps and set(timesteps) == {1000.0}  # one step, from sigma 1 (pure noise)
    assert np.isfinite(frames).all() and np.isfinite(audio).all() and frames.std() > 0
    decoded = media.read_frames(row["output_path"])
    assert decoded.shape == (17, 64, 64, 3) and decoded.std() > 0
    assert pipe.scheduler is scheduler and scheduler.config.shift_terminal == 0.1  # the warm one is untouched


def test_non_finite_frames_or_audio_fail_before_encoding_and_write_nothing(studio, tmp_path):
    recipe = studio.build_recipe({"prompt": "a storm", "steps": 2})
    pipe = warm_pipe(studio)

    def nan_frame(_m, _a, out):  # decoder output [B, C, F, H, W]: poison frame 3
        out[:, :, 3] = float("nan")
        return out

    def nan_audio(_m, _a, out):
        out[..., :10] = float("inf")
        return out

    for module, hook, expected in (
        (pipe.vae.decoder, nan_frame, "in 1 of 17 frames (video)"),
        (pipe.vocoder, nan_audio, "audio samples"),
    ):
        target = tmp_path / f"{type(module).__name__}.mp4"
        handle = module.register_forward_hook(hook)
        try:
            with pytest.raises(RenderNotFinite, match="NaN/Inf") as info:
                studio.render(recipe, out_path=target)
        finally:
            handle.remove()
        assert expected in str(info.value) and "more steps" in str(info.value)
        assert info.value.exit_code == 2
        assert not target.exists() and not media.temp_path_for(target).exists()
        row = studio.history.jobs()[0]
        assert row["status"] == "failed" and "NaN/Inf" in row["error"]
    frames = np.zeros((2, 4, 4, 3), np.float32)
    frames[1, 0, 0, 0] = np.nan
    with pytest.raises(RenderNotFinite, match="1 of 2 frames"):
        check_finite(frames, None)
    check_finite(np.zeros((2, 4, 4, 3)), np.zeros((2, 100)))  # finite: nothing raised


def test_cancel_stops_a_tiled_decode_between_tiles(studio, tmp_path):
    recipe = studio.build_recipe({"prompt": "a wide desert", "steps": 2, "vae_tiling": True})
    pipe = warm_pipe(studio)
    pipe.vae.enable_tiling(
        tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=16, tile_sample_stride_width=16
    )  # 64×64 decodes as several 32×32 tiles
    cancel, tiles = threading.Event(), []

    def tile_done(_module, _args, _out):
        tiles.append(1)
        cancel.set()  # the first tile is decoded: cancel

    handle = pipe.vae.decoder.register_forward_hook(tile_done)
    try:
        with pytest.raises(Cancelled):
            studio.render(recipe, out_path=tmp_path / "x.mp4", cancel=cancel)
        tiles_when_cancelled = len(tiles)
        tiles.clear()
        studio.render(recipe, out_path=tmp_path / "tiled.mp4")  # no cancel: how many tiles a whole decode takes
    finally:
        handle.remove()
        pipe.vae.disable_tiling()
    assert tiles_when_cancelled == 1 and len(tiles) > 1
    assert not (tmp_path / "x.mp4").exists() and (tmp_path / "tiled.mp4").exists()


def test_vae_tiling_follows_each_recipe_on_the_warm_pipeline(studio, tmp_path):
    whole = studio.render(studio.build_recipe({"prompt": "a red ball", "seed": 3}), out_path=tmp_path / "whole.mp4")
    tiled = studio.render(
        studio.build_recipe({"prompt": "a red ball", "seed": 3, "vae_tiling": True}), out_path=tmp_path / "tiled.mp4"
    )
    pipe = warm_pipe(studio)
    assert pipe.vae.use_tiling and pipe.vae.use_framewise_decoding  # as the last recipe asked
    again = studio.render(studio.build_recipe({"prompt": "a red ball", "seed": 3}), out_path=tmp_path / "again.mp4")
    assert not pipe.vae.use_tiling and not pipe.vae.use_framewise_decoding
    assert tiled["recipe"]["vae_tiling"] is True and whole["recipe"]["vae_tiling"] is False
    assert media.count_frames(tiled["output_path"]) == media.count_frames(whole["output_path"]) == 17
    assert media.compare(whole["output_path"], again["output_path"])["identical"]  # nothing carried over
    # 17 frames decode as two overlapping 16-frame tiles, blended: close to the whole decode, not equal
    assert not media.compare(whole["output_path"], tiled["output_path"])["identical"]


def test_fast_is_recorded_by_its_cache_and_a_warm_pipeline_forgets_it(studio, tmp_path):
    plain = studio.render(studio.build_recipe({"prompt": "a red ball", "seed": 4}), out_path=tmp_path / "plain.mp4")
    fast = studio.render(
        studio.build_recipe({"prompt": "a red ball", "seed": 4, "fast": True}), out_path=tmp_path / "fast.mp4"
    )
    again = studio.render(studio.build_recipe({"prompt": "a red ball", "seed": 4}), out_path=tmp_path / "again.mp4")
    assert fast["recipe"]["fast"] == "taylorseer" and plain["recipe"]["fast"] == "off"
    assert media.count_frames(fast["output_path"]) == 17
    compared = media.compare(plain["output_path"], fast["output_path"])
    assert not compared["identical"] and compared["psnr_min"] > 25  # close, not equal
    assert media.compare(plain["output_path"], again["output_path"])["identical"]
