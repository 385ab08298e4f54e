"""Fast mode: fewer transformer blocks, a valid clip, bit-exact off and repeat, the warm pipeline kept."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from aiprod_studio.errors import BadInput, Cancelled
from aiprod_studio.recipe import Recipe
from engine.models import loras, pipelines
from engine.models.speed import (
    FAST_MODES,
    apply_fast,
    compile_transformer,
    count_block_calls,
    disable_fast,
    fast_is_on,
    fast_mode,
)
from engine.models.tiny import TINY_DEFAULTS, TINY_NAME, build_pipeline, make_tiny_lora
from engine.render import media
from engine.render.clip import render_to_file, run_pipeline

# Measured on the tiny model (2 blocks, 8 steps, guidance 3: 3 transformer passes a step), seeds
# 3/7/11/21: Fast computes 24 of 48 block calls; its frames are 37.5-39.5 dB from Fast off before
# encoding and 32.1-32.9 dB after both are encoded to MP4 (H.264 at this size adds its own noise).
MAX_COMPUTED_RATIO = 0.75
MIN_PSNR_DB = 35.0  # frames as the pipeline returns them
MIN_PSNR_DB_MP4 = 30.0  # decoded MP4s


def tiny_recipe(**values) -> Recipe:
    return Recipe(
        prompt="a red car drives through a rainy city at night", model=TINY_NAME, seed=3, **{**TINY_DEFAULTS, **values}
    )


def with_fast(recipe: Recipe, fast: bool | str) -> Recipe:
    """The recipe asking for `fast` (the render applies it: `run_pipeline` calls `apply_fast`)."""
    return recipe.model_copy(update={"fast": fast_mode(fast)})


def render(pipe, recipe: Recipe, fast: bool | str = False):
    """Frames, audio and the block calls of one render of `recipe` with Fast as asked."""
    with count_block_calls(pipe.transformer) as calls:
        frames, audio, _rate = run_pipeline(pipe, with_fast(recipe, fast))
    return frames, audio, calls


@pytest.fixture(scope="module")
def pipe():
    built = build_pipeline()
    built.set_progress_bar_config(disable=True)
    return built


@pytest.fixture(scope="module", autouse=True)
def never_fast(pipe):
    """Frames and audio of the default recipe from `pipe` before Fast was ever on (the bit-exact
    reference); autouse, so it renders before any test turns Fast on."""
    assert not fast_is_on(pipe)
    frames, audio, _rate = run_pipeline(pipe, tiny_recipe())
    return frames, audio


def test_fast_computes_fewer_blocks_and_still_writes_a_valid_clip(pipe, tmp_path, record_property):
    recipe = tiny_recipe()
    with count_block_calls(pipe.transformer) as off:
        render_to_file(pipe, with_fast(recipe, "off"), tmp_path / "off.mp4")
    with count_block_calls(pipe.transformer) as on:
        render_to_file(pipe, with_fast(recipe, True), tmp_path / "fast.mp4")

    # every block is still called (3 passes a step × 2 blocks × 8 steps), but far fewer compute
    assert off.calls == on.calls == 3 * 2 * recipe.steps and off.computed == off.calls
    assert on.computed <= MAX_COMPUTED_RATIO * off.computed, (on, off)
    # a real clip: right length, size and sound, close to the Fast-off one
    info = media.probe(tmp_path / "fast.mp4")
    assert info["video"]["frames"] == 17 and (info["video"]["width"], info["video"]["height"]) == (64, 64)
    assert info["audio"]["sample_rate"] == 16000
    report = media.compare(tmp_path / "off.mp4", tmp_path / "fast.mp4")
    record_property("fast_psnr_db", report["psnr"])
    record_property("fast_computed_blocks", f"{on.computed}/{off.computed}")
    logging.getLogger(__name__).info("fast: %d/%d blocks, PSNR %.2f dB", on.computed, off.computed, report["psnr"])
    assert not report["identical"] and report["psnr"] > MIN_PSNR_DB_MP4, report["psnr"]
    assert report["audio"]["samples"] > 0


def test_fast_repeats_bit_for_bit_even_after_a_cancel_and_off_gives_the_plain_render_back(pipe, never_fast):
    recipe = tiny_recipe()
    first, first_audio, calls = render(pipe, recipe, fast=True)
    assert fast_is_on(pipe) and np.isfinite(first).all() and first.shape == (17, 64, 64, 3)
    assert not np.array_equal(first, never_fast[0])

    # a render cancelled half-way leaves the cache mid-state (diffusers resets it only at the end)
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        run_pipeline(
            pipe,
            with_fast(recipe, True),
            progress=lambda step, _total: cancel.set() if step == 3 else None,
            cancel=cancel,
        )
    again, again_audio, again_calls = render(pipe, recipe, fast=True)
    assert np.array_equal(first, again) and np.array_equal(first_audio, again_audio) and again_calls == calls

    # off on the same (warm) pipeline object: every hook gone, the render the pipeline gave before Fast
    frames, audio, off_calls = render(pipe, recipe, fast=False)
    assert not fast_is_on(pipe) and off_calls.computed == off_calls.calls
    assert np.array_equal(frames, never_fast[0]) and np.array_equal(audio, never_fast[1])
    disable_fast(pipe)  # idempotent
    assert not fast_is_on(pipe)


def test_fast_without_classifier_free_guidance_runs_a_batch_of_one(pipe):
    recipe = tiny_recipe(guidance=1.0, advanced={**TINY_DEFAULTS["advanced"], "audio_guidance_scale": 1.0})
    frames_off, _audio, off = render(pipe, recipe, fast=False)
    frames, audio, on = render(pipe, recipe, fast=True)
    assert on.computed <= MAX_COMPUTED_RATIO * off.computed
    assert np.isfinite(frames).all() and np.isfinite(audio).all()
    assert media.psnr(media.to_uint8_frames(frames), media.to_uint8_frames(frames_off)) > MIN_PSNR_DB


def test_first_block_cache_runs_on_the_audio_video_block(pipe, never_fast):
    off_frames, off_audio = never_fast
    frames, audio, calls = render(pipe, tiny_recipe(), fast="firstblock")
    # the LTX-2 block is registered: skipped steps reuse both streams' residuals (shapes kept, values finite)
    assert 0 < calls.computed < calls.calls
    assert frames.shape == off_frames.shape and audio.shape == off_audio.shape
    assert np.isfinite(frames).all() and np.isfinite(audio).all()
    assert media.psnr(media.to_uint8_frames(frames), media.to_uint8_frames(off_frames)) > MIN_PSNR_DB
    # switching to the other cache replaces it
    apply_fast(pipe, "taylorseer", 8)
    assert type(pipe.transformer._cache_config).__name__ == "TaylorSeerCacheConfig"


def test_settings_are_checked_and_too_few_steps_leave_fast_off(pipe):
    assert fast_mode(True) == fast_mode("on") == "taylorseer" and fast_mode(False) == "off"
    assert set(FAST_MODES) == {"off", "taylorseer", "firstblock"}
    with pytest.raises(BadInput) as info:
        apply_fast(pipe, "turbo", 8)
    assert info.value.field == "fast" and "'turbo'" in str(info.value)
    with pytest.raises(BadInput) as info:
        apply_fast(pipe, True, 0)
    assert info.value.field == "steps" and "0" in str(info.value)
    apply_fast(pipe, True, 2)  # both steps are computed anyway: no cache at all
    assert not fast_is_on(pipe)


def test_compile_is_a_logged_no_op_on_the_cpu(pipe, caplog):
    with caplog.at_level(logging.INFO, logger="engine.models.speed"):
        assert compile_transformer(pipe, "cpu") is False
        assert compile_transformer(pipe, "cpu") is False
    assert "CUDA only" in caplog.text
    assert not getattr(pipe.transformer, "_aiprod_compiled", False)
    assert all(block._compiled_call_impl is None for block in pipe.transformer.transformer_blocks)


def test_a_lora_switch_keeps_the_warm_pipeline_and_its_fast_cache(own_studio, monkeypatch):
    studio, loads = own_studio, []
    original = pipelines.load_pipeline
    monkeypatch.setattr(pipelines, "load_pipeline", lambda *a, **k: loads.append(1) or original(*a, **k))
    entry = studio.vault.get(TINY_NAME)
    a = loras.resolve(studio.vault, entry, [make_tiny_lora(studio.vault, name="style-a", seed=1).name])
    b = loras.resolve(studio.vault, entry, [make_tiny_lora(studio.vault, name="style-b", seed=2).name])
    recipe = tiny_recipe(steps=4)  # steps 0, 1 and 3 computed, 2 extrapolated
    with studio.device_lease("render") as lease:
        pipe = pipelines.warm_pipeline(lease, studio.vault, entry, "none")
        outputs = []
        for wanted in (a, b, a):
            assert pipelines.warm_pipeline(lease, studio.vault, entry, "none") is pipe
            loras.apply(pipe, studio.vault, wanted)
            outputs.append(render(pipe, recipe, fast=True))
    assert loads == [1]  # loaded once; the adapters were switched on the warm pipeline
    (fa1, _, c1), (fb, _, cb), (fa2, _, c2) = outputs
    assert c1.computed == cb.computed == c2.computed < c1.calls  # the cache survived the adapter changes
    assert not np.array_equal(fa1, fb) and np.array_equal(fa1, fa2)
